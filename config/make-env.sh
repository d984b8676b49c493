#!/usr/bin/env bash
# Create .env from config/.env.example on first use, with every secret and password freshly generated and
# this host's facts derived (so plain `docker compose up` works); on later runs add the settings .env lacks
# (new in .env.example), generating or deriving them, and derive host facts left empty. It never changes a
# value already in .env, and never prints a secret.
# Usage: config/make-env.sh [ENV_FILE]
#        config/make-env.sh --derive KEY   prints one host fact (the Makefile asks this, so the rule is here once)
set -euo pipefail
example="$(dirname "$0")/.env.example"
checkout=$(cd "$(dirname "$0")/.." && pwd)

# No default exists for these anywhere: compose refuses to start without them.
GENERATED=(AIRFLOW_FERNET_KEY AIRFLOW_JWT_SECRET AIRFLOW_API_SECRET_KEY _AIRFLOW_WWW_USER_PASSWORD FLOWER_PASSWORD
           GRAFANA_ADMIN_PASSWORD POSTGRES_PASSWORD REDIS_PASSWORD HELICAL_CLUSTER_ID)
is_generated() { [[ " ${GENERATED[*]} " == *" $1 "* ]]; }
# Facts of this host that compose needs (the Makefile derives them again on every call, through --derive,
# except the project name, which must stay what it was when the volumes were made).
DERIVED=(PROJECT_DIR DOCKER_GID AIRFLOW_UID RUNNER_UID COMPOSE_PROJECT_NAME)
is_derived() { [[ " ${DERIVED[*]} " == *" $1 "* ]]; }
derive() {
  case $1 in
    PROJECT_DIR) echo "$checkout" ;;
    # One name per checkout, so two checkouts on one host never share volumes (docs/operations.md).
    COMPOSE_PROJECT_NAME) echo "helical-$(printf '%s' "$checkout" | sha256sum | cut -c1-8)" ;;
    DOCKER_GID) stat -c %g /var/run/docker.sock 2>/dev/null || echo 0 ;;
    AIRFLOW_UID) id -u ;;
    # Runners never run as root: the checkout's owner (results belong to them), or the image's user 1000.
    RUNNER_UID) owner=$(stat -c %u "$checkout"); if [ "$owner" = 0 ]; then echo 1000; else echo "$owner"; fi ;;
    # This host's GPUs as `nvidia-smi -L` lists them ("GPU 0: NVIDIA H100 ... (UUID: GPU-...)"), by index.
    GPU_DEVICES) { nvidia-smi -L 2>/dev/null || true; } | sed -n 's/^GPU \([0-9][0-9]*\):.*/\1/p' | paste -sd, - ;;
  esac
}
# The value a setting of .env.example gets in a new .env: generated, derived when empty, or as written.
fill() {
  local key=${1%%=*}
  if is_generated "$key"; then echo "$key=$(generate "$key")"
  elif is_derived "$key" && [ "$1" = "$key=" ]; then echo "$key=$(derive "$key")"
  else echo "$1"; fi
}

# A Fernet key is 32 random bytes in URL-safe base64; the rest are hex, safe inside URLs (broker, database).
generate() {
  if [ "$1" = AIRFLOW_FERNET_KEY ]; then head -c 32 /dev/urandom | base64 | tr '+/' '-_'
  else od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; fi
}

if [ "${1:-}" = --derive ]; then
  # GPU_DEVICES is found again on every call, never written into .env (a host's GPUs change with its hardware).
  is_derived "${2:-}" || [ "${2:-}" = GPU_DEVICES ] || { echo "make-env.sh --derive: one of ${DERIVED[*]} GPU_DEVICES" >&2; exit 2; }
  derive "$2"
  exit 0
fi
env_file=${1:-.env}

umask 077
if [ ! -f "$env_file" ]; then
  while IFS= read -r line; do
    [[ "$line" != \#* && "$line" == *=* ]] && line=$(fill "$line")
    printf '%s\n' "$line"
  done <"$example" >"$env_file"
  echo "created $env_file with generated passwords and secrets (read them there; edit it to change logins, ports and paths)"
  exit 0
fi

added=()
while IFS= read -r line; do
  [[ "$line" == \#* || "$line" != *=* ]] && continue
  key=${line%%=*}
  grep -q "^${key}=" "$env_file" && continue
  # An .env older than the setting made its volumes under compose.yaml's own name: keep that name.
  if [ "$key" = COMPOSE_PROJECT_NAME ]; then added+=("COMPOSE_PROJECT_NAME=helical"); continue; fi
  added+=("$(fill "$line")")
done <"$example"
if [ ${#added[@]} -gt 0 ]; then
  { echo "# added from config/.env.example on $(date -u +%F)"; printf '%s\n' "${added[@]}"; } >>"$env_file"
  echo "added to $env_file: ${added[*]%%=*}"
  [[ " ${added[*]} " == *" COMPOSE_PROJECT_NAME=helical "* ]] &&
    echo "COMPOSE_PROJECT_NAME=helical: the name this .env's containers and volumes already have (docs/operations.md)"
fi
# Host facts an older .env left empty.
for key in "${DERIVED[@]}"; do
  if grep -qx "${key}=" "$env_file"; then
    value=$(derive "$key")
    sed -i "s|^${key}=\$|${key}=${value}|" "$env_file"
    echo "derived in $env_file: $key"
  fi
done
touch "$env_file"
