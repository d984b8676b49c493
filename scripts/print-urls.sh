#!/usr/bin/env bash
# What `make up` prints once every service is healthy: where to look and how to log in. It reads the settings
# make exports (.env's, with make's overrides such as GPU=1's profile).
set -euo pipefail
host=${BIND_ADDRESS:-127.0.0.1}; [ "$host" = 0.0.0.0 ] && host=localhost
profiles=",${COMPOSE_PROFILES:-},"

# profile (- for a service always started), label, URL, login
show() {
  local note=""
  [[ "$1" != - && "$profiles" != *",$1,"* ]] && note="   (off: add $1 to COMPOSE_PROFILES)"
  printf '  %-22s %-32s %s%s\n' "$2" "$3" "$4" "$note"
}

echo
echo "Helical platform is up."
# Passwords are never printed (they would land in terminal logs and CI output): only where to read them.
show - "Airflow UI / REST API" "http://$host:${AIRFLOW_PORT:-8080}" \
  "login ${_AIRFLOW_WWW_USER_USERNAME:-admin}, password _AIRFLOW_WWW_USER_PASSWORD in .env"
show flower "Flower" "http://$host:${FLOWER_PORT:-5555}" "login ${FLOWER_USER:-admin}, password FLOWER_PASSWORD in .env"
# No login, so on this host only whatever BIND_ADDRESS says (from elsewhere: Grafana, or an SSH tunnel).
show monitoring "Prometheus" "http://127.0.0.1:${PROMETHEUS_PORT:-9090}" "this host only"
# Where alerts go, as Alertmanager's configuration was just rendered from .env (no secret printed). No login either.
show monitoring "Alertmanager" "http://127.0.0.1:${ALERTMANAGER_PORT:-9093}" \
  "this host only; $(python3 "$(dirname "$0")/../monitoring/alertmanager/render_config.py" --describe 2>&1)"
show dashboards "Grafana" "http://$host:${GRAFANA_PORT:-3000}" "login ${GRAFANA_ADMIN_USER:-admin}, password GRAFANA_ADMIN_PASSWORD in .env"
show - "statsd-exporter" "http://127.0.0.1:${STATSD_EXPORTER_PORT:-9102}/metrics" "this host only"
echo
echo "Drop .h5ad files into ${HELICAL_DATA_DIR:-./data}, then: make trigger   (results land in ${HELICAL_RESULTS_DIR:-./results}/<run_id>/)"
if [ -z "$(ls -A "${HELICAL_MODELS_DIR:-models}" 2>/dev/null)" ]; then
  echo "No scGPT weights in ${HELICAL_MODELS_DIR:-./models}: run 'make models' (connected machine) or 'make test-model' (tiny random weights, smoke tests only)."
fi
