#!/usr/bin/env bash
# Create .env from config/.env.example on first use, with every secret and password freshly generated; on
# later runs add the settings .env lacks (new in .env.example), generating those that are secrets. It never
# changes a value already in .env, and never prints one.
# Usage: config/make-env.sh [ENV_FILE]
set -euo pipefail
env_file=${1:-.env}
example="$(dirname "$0")/.env.example"

# No default exists for these anywhere: compose refuses to start without them.
GENERATED=(AIRFLOW_FERNET_KEY AIRFLOW_JWT_SECRET AIRFLOW_API_SECRET_KEY _AIRFLOW_WWW_USER_PASSWORD FLOWER_PASSWORD
           GRAFANA_ADMIN_PASSWORD POSTGRES_PASSWORD REDIS_PASSWORD)
is_generated() { [[ " ${GENERATED[*]} " == *" $1 "* ]]; }

# A Fernet key is 32 random bytes in URL-safe base64; the rest are hex, safe inside URLs (broker, database).
generate() {
  if [ "$1" = AIRFLOW_FERNET_KEY ]; then head -c 32 /dev/urandom | base64 | tr '+/' '-_'
  else od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; fi
}

umask 077
if [ ! -f "$env_file" ]; then
  while IFS= read -r line; do
    key=${line%%=*}
    if [[ "$line" != \#* && "$line" == *=* ]] && is_generated "$key"; then
      line="$key=$(generate "$key")"
    fi
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
  is_generated "$key" && line="$key=$(generate "$key")"
  added+=("$line")
done <"$example"
if [ ${#added[@]} -gt 0 ]; then
  { echo "# added from config/.env.example on $(date -u +%F)"; printf '%s\n' "${added[@]}"; } >>"$env_file"
  echo "added to $env_file: ${added[*]%%=*}"
fi
touch "$env_file"
