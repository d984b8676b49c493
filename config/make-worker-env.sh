#!/usr/bin/env bash
# worker.env: all a worker host needs to join this core, in one file (mode 600: it holds the broker's password).
# Usage: config/make-worker-env.sh OUT     (make worker-env, which exports .env's settings to it)
# Only what workers use goes in: the broker's password and the cluster's CA certificate; no database login, no
# Fernet key, JWT or API secret, no admin, Flower or Grafana login (docs/security.md, "Who holds which secret").
set -euo pipefail
out=$1
[ -n "${CLUSTER_BIND_ADDRESS:-}" ] || {
  echo "CLUSTER_BIND_ADDRESS is empty in .env: set it to an address of this machine, run make up, then make worker-env (docs/scale-out.md)" >&2
  exit 2
}
address=${CLUSTER_ADVERTISE_ADDRESS:-$CLUSTER_BIND_ADDRESS}
if [[ $address == 0.0.0.0 || $address == :: ]]; then
  echo "CLUSTER_BIND_ADDRESS=$address is no address to reach: set CLUSTER_ADVERTISE_ADDRESS in .env to the one worker hosts use" >&2
  exit 2
fi
[ -f certs/ca.crt ] || { echo "no certs/ca.crt: run make up (or make certs) first" >&2; exit 2; }

# The host folders as the core sees them: worker hosts mount the shared filesystem at the same paths, and write
# there as the same uid.
HELICAL_DATA_DIR=${HELICAL_DATA_DIR:-$PROJECT_DIR/data}
HELICAL_RESULTS_DIR=${HELICAL_RESULTS_DIR:-$PROJECT_DIR/results}
HELICAL_MODELS_DIR=${HELICAL_MODELS_DIR:-$PROJECT_DIR/models}
HELICAL_LOGS_DIR=${HELICAL_LOGS_DIR:-$PROJECT_DIR/logs}
CLUSTER_CORE_ADDRESS=$address
CLUSTER_CA_CERT=$(base64 -w0 certs/ca.crt)
KEYS=(CLUSTER_CORE_ADDRESS CLUSTER_REDIS_PORT CLUSTER_API_PORT CLUSTER_STATSD_PORT CADVISOR_PORT
      HELICAL_CLUSTER_ID CLUSTER_CA_CERT REDIS_PASSWORD
      HELICAL_DATA_DIR HELICAL_RESULTS_DIR HELICAL_MODELS_DIR HELICAL_LOGS_DIR AIRFLOW_UID
      RUNNER_CPU_IMAGE RUNNER_GPU_IMAGE RUNNER_UID RUNNER_CPUS RUNNER_MEMORY WORKER_CONCURRENCY
      TASK_EXECUTION_TIMEOUT RUNNERS_PER_GPU)
umask 077
{
  echo "# worker.env of the Helical core at $address, written by make worker-env on $(date -u +%F)."
  echo "# Copy it beside the Makefile of a worker host's checkout, then: make worker-host QUEUE=cpu|gpu WORKERS=N"
  echo "# It holds the broker's password: keep it mode 600, never in git."
  for key in "${KEYS[@]}"; do printf '%s=%s\n' "$key" "${!key-}"; done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out (mode 600): copy it to the worker host, beside its Makefile, and run make worker-host there"
