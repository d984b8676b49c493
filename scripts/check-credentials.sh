#!/usr/bin/env bash
# Refuse to publish the UIs (BIND_ADDRESS other than loopback) while a login is empty or a well-known default.
# Reads the environment (make exports .env); exits 1 naming the settings to fix. Used by scripts/preflight.sh.
set -uo pipefail
case "${BIND_ADDRESS:-127.0.0.1}" in 127.0.0.1|localhost|::1) exit 0 ;; esac
weak=()
for name in _AIRFLOW_WWW_USER_PASSWORD FLOWER_PASSWORD GRAFANA_ADMIN_PASSWORD POSTGRES_PASSWORD REDIS_PASSWORD; do
  case "${!name:-}" in ""|admin|airflow|password|changeme|secret) weak+=("$name") ;; esac
done
[ ${#weak[@]} -eq 0 ] && exit 0
printf 'preflight: BIND_ADDRESS=%s publishes the UIs, but %s still hold a default or empty value: set strong ones in .env (or delete those lines and run make env to generate them).\n' \
  "$BIND_ADDRESS" "${weak[*]}" >&2
exit 1
