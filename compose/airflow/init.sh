#!/usr/bin/env bash
# One-time work before the stack starts: a preflight that warns in plain words, the metadata database
# migration, the admin user and its password (from .env, generated on first use), the runner pool.
set -euo pipefail

warn() { printf 'WARNING: %s\n' "$*" >&2; }
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
(( mem_kb >= 4 * 1024 * 1024 )) || warn "only $((mem_kb / 1024)) MiB of memory: the stack needs 4 GiB or more (raise Docker's memory limit)."
(( $(nproc) >= 2 )) || warn "only $(nproc) CPU: the stack needs at least 2 (raise Docker's CPU limit)."
disk_kb=$(df -Pk /opt/airflow | awk 'NR==2 {print $4}')
(( disk_kb >= 10 * 1024 * 1024 )) || warn "only $((disk_kb / 1024 / 1024)) GiB free disk: the runner image alone takes ~9 GiB."

airflow db migrate
# `users create` exits 0 when the user exists, so the password from .env is set in a second step: changing
# it in .env and running `make up` applies it. The password is read from the environment, never echoed.
airflow users create --role Admin \
  --username "${_AIRFLOW_WWW_USER_USERNAME}" --password "${_AIRFLOW_WWW_USER_PASSWORD}" \
  --firstname Admin --lastname User --email admin@example.org
airflow users reset-password --username "${_AIRFLOW_WWW_USER_USERNAME}" --password "${_AIRFLOW_WWW_USER_PASSWORD}"
# CPU runner containers run in this pool: RUNNER_SLOTS, the CPUs of the cluster (by default this host's), so
# however many workers and slots there are, runners never take more CPUs than there are; the rest wait in
# `scheduled`. Sized by the module every concurrency limit comes from (dags/helical_workflow/capacity.py).
# The pool's name is names.yaml's (compose passes it; the DAG reads helical_workflow.names).
airflow pools set "${HELICAL_CPU_RUNNER_POOL:?compose passes it}" "$(python -m helical_workflow.capacity)" "CPU runner containers at once (RUNNER_SLOTS in .env)"
# Cluster mode (compose/docker-compose.cluster.yaml): the marker that tells worker hosts they share our results.
if [ -n "${HELICAL_CLUSTER_ID:-}" ]; then python /opt/airflow/cluster_check.py write-marker; fi
airflow version
