# Helical platform: `make up WORKERS=3` starts the stack, `make test` proves it. `make help` lists the rest.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# .env is the one source of settings (created on first use); its variables reach compose and the scripts.
-include .env
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
PYTHON ?= python3
# scGPT's gene vocabulary, for the runner's tests and benchmark (test checkpoints map real genes with it).
SCGPT_VOCAB ?= $(abspath ../shared/scgpt-vocab/default_census_vocab.json)

# compose.yaml (the repository root's) plus, for the tests, override files.
COMPOSE := docker compose -f compose.yaml $(COMPOSE_EXTRA_FILES)
RUNNER_BUILD := docker compose --project-directory $(CURDIR) -f compose/runner-images.yaml
VENV := .venv
DAG_ID := helical_model_workflow

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------------------------- the stack
# Created on first use with generated passwords; settings new in config/.env.example are added later on.
.env: config/.env.example
	@config/make-env.sh .env

.PHONY: env
env: ## Create .env (generated passwords and secrets), or add the settings it lacks; values are never printed
	@config/make-env.sh .env

.PHONY: preflight
preflight: .env
	@scripts/preflight.sh $(if $(GPU),--gpu)

.PHONY: dirs
dirs:
	@mkdir -p $(or $(HELICAL_DATA_DIR),data) $(or $(HELICAL_RESULTS_DIR),results) $(or $(HELICAL_MODELS_DIR),models)
	@# The runner writes results and (make test-model) models: a root-made folder is handed to its uid.
	@for d in $(or $(HELICAL_RESULTS_DIR),results) $(or $(HELICAL_MODELS_DIR),models); do \
	  [ "$$(stat -c %u "$$d")" = 0 ] && [ "$(RUNNER_UID)" != 0 ] && chown "$(RUNNER_UID)" "$$d" || true; done

.PHONY: images
images: .env runner-image $(if $(GPU),runner-image-gpu) ## Build the Airflow, Docker-policy and runner images
	$(COMPOSE) build airflow-init docker-policy

.PHONY: up
up: preflight dirs images ## Start the stack: make up WORKERS=3 [GPU=1] (profiles: COMPOSE_PROFILES in .env)
	$(COMPOSE) up -d --wait --wait-timeout 600 --remove-orphans
	@scripts/print-urls.sh

.PHONY: down
down: ## Stop the stack and remove its containers (volumes are kept; make clean removes them)
	$(COMPOSE) --profile '*' down --remove-orphans
	@# Failed runner containers are kept for `docker logs`; they go with the stack.
	@docker ps -aq --filter label=helical.dag_id | xargs -r docker rm -f >/dev/null

.PHONY: clean
clean: ## Stop the stack and delete its volumes (metadata DB, logs, Prometheus data)
	$(COMPOSE) --profile '*' down --remove-orphans --volumes
	@docker ps -aq --filter label=helical.dag_id | xargs -r docker rm -f >/dev/null

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
	@$(VENV)/bin/python scripts/trigger.py --dag $(DAG_ID) --conf '$(or $(CONF),{})'

.PHONY: models
models: dirs ## Fetch the real scGPT weights into ./models (needs a connected machine)
	docker run --rm -v $(abspath $(or $(HELICAL_MODELS_DIR),models)):/models --user $(RUNNER_UID) $(RUNNER_CPU_IMAGE) \
	  helical-runner fetch-model

.PHONY: test-model
test-model: dirs ## Write a tiny random-weight scGPT checkpoint into ./models (smoke tests only)
	docker run --rm --network none -v $(abspath $(or $(HELICAL_MODELS_DIR),models)):/models --user $(RUNNER_UID) \
	  $(RUNNER_CPU_IMAGE) helical-runner test-model --out /models

# --------------------------------------------------------------------------------------------- the images
.PHONY: runner-image
runner-image: ## Build RUNNER_CPU_IMAGE (see .env; also tagged :latest)
	$(RUNNER_BUILD) build runner-cpu
	docker tag $(RUNNER_CPU_IMAGE) $(firstword $(subst :, ,$(RUNNER_CPU_IMAGE))):latest

.PHONY: runner-image-gpu
runner-image-gpu: ## Build RUNNER_GPU_IMAGE (CUDA torch)
	$(RUNNER_BUILD) build runner-gpu

# ---------------------------------------------------------------------------------------------- the tests
$(VENV)/.done: requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes -r requirements-dev.lock
	touch $@

.PHONY: venv
venv: $(VENV)/.done

.PHONY: test
test: lint test-unit test-contract test-dags test-runner test-monitoring test-stack ## Everything: unit, contracts, in-image tests, then e2e, security and chaos on the stack

.PHONY: test-unit
test-unit: venv ## Pure-logic tests, seconds, no Docker
	$(VENV)/bin/pytest -q tests/unit

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
E2E_TESTS := tests/e2e/test_stack.py tests/e2e/test_stack_observability.py
SECURITY_TESTS := tests/security
CHAOS_TESTS := tests/e2e/test_chaos.py

.PHONY: e2e
e2e: venv ## The whole stack on this machine through the REST API (replaces a running stack)
	$(VENV)/bin/pytest -q -x -rP $(E2E_TESTS)

.PHONY: security
security: venv ## Least-privilege checks on the real stack: Docker API proxy, runner isolation, logins
	$(VENV)/bin/pytest -q -x -rP $(SECURITY_TESTS)

.PHONY: chaos
chaos: venv ## Faults on the real stack: killed and stopped workers, scale-down, restarts, backlog, OOM
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(CHAOS_TESTS)

.PHONY: test-stack
test-stack: venv ## e2e, security, then chaos on one stack
	$(VENV)/bin/pytest -q -x -rP --durations=0 $(E2E_TESTS) $(SECURITY_TESTS) $(CHAOS_TESTS)

.PHONY: bench-runner
bench-runner: ## Runner vs naive Helical path at real scGPT dims, in the runner image; output to docs/benchmarks/
	$(RUNNER_BUILD) build runner-test
	docker run --rm -v $(SCGPT_VOCAB):/vocab.json:ro -e HELICAL_TEST_VOCAB=/vocab.json helical-runner:test \
	  python /app/bench/bench_runner.py $(BENCH_ARGS) | tee docs/benchmarks/runner.txt

.PHONY: load-test
load-test: venv ## make load-test RUNS=20 CONCURRENCY=5 DEVICE=auto [MAX_CELLS=100 DATA=glob COMPARE_WORKERS=1,3]
	$(VENV)/bin/python scripts/load_test.py --runs $(or $(RUNS),10) --concurrency $(or $(CONCURRENCY),5) \
	  --device $(or $(DEVICE),auto) $(if $(MAX_CELLS),--max-cells $(MAX_CELLS)) $(if $(DATA),--data '$(DATA)') \
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
	uv pip compile --generate-hashes --custom-compile-command 'make lock' -q $(if $(UPGRADE),--upgrade) \
	  --python-version 3.11 requirements-dev.in -o requirements-dev.lock
