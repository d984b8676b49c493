#!/usr/bin/env bash
# Create .env from config/.env.example on first use, with fresh secrets. Never overwrites an existing .env.
# Usage: config/make-env.sh [ENV_FILE]
set -euo pipefail
env_file=${1:-.env}
[ -f "$env_file" ] && exit 0

# A Fernet key is 32 random bytes in URL-safe base64; coreutils is all this needs.
random_key() { head -c 32 /dev/urandom | base64 | tr '+/' '-_'; }

sed -e "s|^AIRFLOW_FERNET_KEY=.*|AIRFLOW_FERNET_KEY=$(random_key)|" \
    -e "s|^AIRFLOW_JWT_SECRET=.*|AIRFLOW_JWT_SECRET=$(random_key)|" \
    -e "s|^AIRFLOW_API_SECRET_KEY=.*|AIRFLOW_API_SECRET_KEY=$(random_key)|" \
    "$(dirname "$0")/.env.example" >"$env_file"
chmod 600 "$env_file"
echo "created $env_file with fresh secrets (edit it to change logins, ports and paths)"
