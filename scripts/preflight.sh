#!/usr/bin/env bash
# Checks before `make up`, each failure in plain words with the fix (as the official Airflow compose's init does).
# Usage: scripts/preflight.sh [--gpu]
set -uo pipefail
fail=0
problem() { printf 'preflight: %s\n' "$*" >&2; fail=1; }
warn() { printf 'preflight: warning: %s\n' "$*" >&2; }

command -v docker >/dev/null || problem "docker is not installed: install Docker Engine (https://docs.docker.com/engine/install/)."
docker info >/dev/null 2>&1 || problem "the Docker engine does not answer: start it, and make sure your user may use /var/run/docker.sock."
docker compose version >/dev/null 2>&1 || problem "Docker Compose v2 is missing: install the docker-compose-plugin package."
[ "$fail" = 0 ] || exit 1

mem_gib=$(docker info --format '{{.MemTotal}}' 2>/dev/null | awk '{printf "%d", $1 / 1073741824}')
cpus=$(docker info --format '{{.NCPU}}' 2>/dev/null)
(( mem_gib >= 4 )) || warn "Docker has ${mem_gib} GiB of memory; the stack wants 4 GiB or more (runners need more for big datasets)."
(( cpus >= 2 )) || warn "Docker has ${cpus} CPU; the stack wants at least 2."
free_gib=$(df -Pk "$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /)" 2>/dev/null | awk 'NR==2 {printf "%d", $4 / 1048576}')
(( ${free_gib:-99} >= 10 )) || warn "only ${free_gib} GiB free for Docker; the runner image alone takes ~9 GiB."

"$(dirname "$0")/check-credentials.sh" || fail=1

# Containers of this project name started from another checkout would be taken over, volumes and all.
project=${COMPOSE_PROJECT_NAME:-helical}
here=$(readlink -f "${PROJECT_DIR:-$PWD}")
while IFS= read -r dir; do
  [ -n "$dir" ] && [ "$(readlink -f "$dir")" != "$here" ] &&
    problem "the compose project '$project' belongs to the checkout in $dir: starting it here would take over its containers and volumes. Give this checkout its own name (empty COMPOSE_PROJECT_NAME in .env, then make env derives one) or stop the other one (make down there)." && break
done < <(docker ps -a --filter "label=com.docker.compose.project=$project" \
           --format '{{.Label "com.docker.compose.project.working_dir"}}' 2>/dev/null | sort -u)

if [ "${1:-}" = "--gpu" ]; then
  docker info --format '{{json .Runtimes}}' | grep -q nvidia ||
    problem "GPU=1 needs the NVIDIA Container Toolkit (nvidia runtime not found in 'docker info'): install it and restart Docker, or drop GPU=1."
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 ||
    problem "GPU=1 needs an NVIDIA driver (nvidia-smi failed): install the driver, or drop GPU=1."
fi
exit "$fail"
