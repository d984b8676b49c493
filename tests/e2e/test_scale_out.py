"""Two hosts (docs/scale-out.md): a second compose project, on its own network, joins the core through the core's
published, authenticated ports (TLS for Redis and the execution API), using nothing but the worker.env that
`make worker-env` wrote, from a copy of the checkout without .env, as a second machine would. The shared
filesystem is the same folder. Runs last in `make test`: it adds workers the other tests do not count.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from helical_workflow.names import GPU_QUEUE
from loadtest.flower import worker_status
from loadtest.stats import hosts_by_container
from tests.compose_config import CORE_SECRETS
from tests.harness import E2E, ROOT, env_file, make

HOST2, GPU_HOST = "host2", "host2gpu"
SCALE_OUT = "scaleout"  # the datasets of these runs: copies of synthetic_counts in data/scaleout/


def worker_host(checkout: Path, *args: str, env_file: str = "worker.env", **variables: str
                ) -> subprocess.CompletedProcess:
    """make in the second checkout, with a clean environment: nothing of the core's .env leaks in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_HOST") if k in os.environ}
    flags = [f"{k}={v}" for k, v in {"WORKER_ENV": env_file, "WORKER_HOST_PROFILES": "", **variables}.items()]
    return subprocess.run(["make", *args, *flags], cwd=checkout, env=env, text=True, capture_output=True)


@pytest.fixture(scope="module")
def checkout(stack, tmp_path_factory) -> Iterator[Path]:
    """The repository as a second machine has it (tracked and new files, no .env), plus worker.env."""
    dest = tmp_path_factory.mktemp("second-machine")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    make("worker-env", WORKER_ENV=str(dest / "worker.env"))
    assert (dest / "worker.env").stat().st_mode & 0o777 == 0o600
    assert not (dest / ".env").exists()
    folder = E2E / "data" / SCALE_OUT
    folder.mkdir(exist_ok=True)
    for i in range(10):
        shutil.copy(E2E / "data" / "synthetic_counts.h5ad", folder / f"s{i}.h5ad")
    yield dest
    for host in (HOST2, GPU_HOST):
        worker_host(dest, "worker-host-down", HOST_NAME=host)
    shutil.rmtree(folder)


def project_started(name: str) -> bool:
    return bool(subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
                               capture_output=True, text=True, check=True).stdout.split())


@pytest.fixture(scope="module")
def hosts(checkout) -> dict[str, float]:
    """Two worker hosts: host2 (2 CPU workers) and host2gpu (one gpu-test worker), their `up`s overlapping (each
    builds first: the second starts once the first is past its builds). {host: seconds make worker-host took}."""
    def join(queue: str, workers: str, host: str) -> float:
        started = time.monotonic()
        result = worker_host(checkout, "worker-host", QUEUE=queue, WORKERS=workers, HOST_NAME=host)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        return time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        cpu = pool.submit(join, "cpu", "2", HOST2)
        while not (cpu.done() or project_started(f"helical-{HOST2}")):
            time.sleep(1)
        gpu = pool.submit(join, "gpu-test", "1", GPU_HOST)
        return {HOST2: cpu.result(), GPU_HOST: gpu.result()}


def worker_hosts(stack, online: bool = False) -> dict[str, str]:
    """{container hostname: host name} of the workers Flower knows, as the load test's report reads them."""
    status = worker_status(stack.flower, *stack.flower_auth)
    return hosts_by_container(name for name, up in status.items() if up or not online)


def runners(stack, run_id: str, task_id: str = "run_runner_cpu") -> list[dict]:
    return [ti for ti in stack.task_instances(run_id) if ti["task_id"] == task_id]


def host_of(stack, ti: dict) -> str:
    return worker_hosts(stack).get(ti["hostname"] or "", ti["hostname"] or "(none)")


def start_with_a_wrong(checkout: Path, setting: str, value: str, host: str) -> str:
    """make worker-host with worker.env's `setting` replaced: its output (it must fail, and start no worker)."""
    lines = (checkout / "worker.env").read_text().splitlines()
    wrong = [f"{setting}={value}" if line.startswith(f"{setting}=") else line for line in lines]
    (checkout / "bad.env").write_text("\n".join(wrong) + "\n")
    try:
        result = worker_host(checkout, "worker-host", env_file="bad.env", QUEUE="cpu", WORKERS="1", HOST_NAME=host)
    finally:
        worker_host(checkout, "worker-host-down", env_file="bad.env", HOST_NAME=host)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    return out


def test_wrong_credentials_fail_at_start_naming_them(stack, checkout, tmp_path):
    out = start_with_a_wrong(checkout, "REDIS_PASSWORD", "wrong", "badcreds")
    assert "REDIS_PASSWORD in worker.env was refused by the broker" in out, out[-3000:]
    # Another cluster's CA: neither the broker nor the execution API is trusted (both TLS, checked against it alone).
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another CA",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.crt")], capture_output=True, check=True)
    out = start_with_a_wrong(checkout, "CLUSTER_CA_CERT", base64.b64encode((tmp_path / "ca.crt").read_bytes()).decode(),
                             "badca")
    assert "TLS to the broker" in out and "TLS to the execution API" in out, out[-3000:]
    assert "CLUSTER_CA_CERT in worker.env is not the CA of the core's certificate" in out, out[-3000:]
    assert not {"badcreds", "badca"} & set(worker_hosts(stack).values())


def test_a_worker_host_holds_the_broker_password_and_no_core_secret(stack, checkout, hosts):
    worker_env = (checkout / "worker.env").read_text()
    core = env_file()
    assert [name for name in CORE_SECRETS if f"{name}=" in worker_env or core[name] in worker_env] == []
    assert f"REDIS_PASSWORD={core['REDIS_PASSWORD']}" in worker_env
    containers = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project=helical-{HOST2}",
                                 "--filter", "label=com.docker.compose.service=airflow-worker"], capture_output=True,
                                text=True, check=True).stdout.split()
    assert len(containers) == 2
    for container in containers:
        env = dict(line.split("=", 1) for line in json.loads(subprocess.run(
            ["docker", "inspect", "-f", "{{json .Config.Env}}", container], capture_output=True, text=True,
            check=True).stdout))
        assert [name for name in CORE_SECRETS if core[name] in "\n".join(env.values())] == [], container
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("https://")  # task tokens cross hosts in TLS
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("rediss://")


def test_a_cpu_host_joins_takes_tasks_and_its_logs_are_read_by_the_core(stack, hosts):
    joined = hosts[HOST2]
    online = list(worker_hosts(stack, online=True).values())
    assert online.count(HOST2) == 2 and online.count(GPU_HOST) == 1, online
    started = datetime.now(UTC)
    run_id = stack.trigger("scaleout", device="cpu", data=SCALE_OUT, max_cells=40, classifier="off")
    assert stack.wait(run_id) == "success", stack.explain(run_id)
    tasks = runners(stack, run_id)
    per_host = {host: [ti for ti in tasks if host_of(stack, ti) == host] for host in ("core", HOST2)}
    first = min((datetime.fromisoformat(ti["start_date"]) for ti in per_host[HOST2]), default=None)
    print(f"\nmake worker-host: healthy workers after {joined:.0f}s (gpu-test host: {hosts[GPU_HOST]:.0f}s); the "
          f"first runner task on {HOST2} started {(first - started).total_seconds() if first else float('nan'):.0f}s "
          f"after the trigger; runner tasks per host: { {h: len(t) for h, t in per_host.items()} }")
    assert all(per_host.values()) and sum(map(len, per_host.values())) == 10, per_host
    for i in range(10):
        assert (stack.results / run_id / f"{SCALE_OUT}__s{i}" / "metrics.json").is_file(), i
    log = stack.api.log_tail(per_host[HOST2][0], 50) or ""
    assert '"ok":true' in log and "Could not read served logs" not in log, log[-2000:]
    # The worker host's runners reached the core's statsd-exporter through its relay.
    metrics = requests.get(stack.statsd_metrics, timeout=30).text
    for i in range(10):
        assert f'helical_runner_cells_per_second{{dataset="{SCALE_OUT}__s{i}",device="cpu"}}' in metrics, i


def test_device_auto_routes_to_a_gpu_host(stack, checkout, hosts):
    try:
        run_id = stack.trigger("scaleout_auto", device="auto", data=f"{SCALE_OUT}/s0.h5ad", max_cells=40)
        assert stack.wait(run_id) == "success", stack.explain(run_id)
        (runner,) = runners(stack, run_id, "run_runner_gpu")
        assert runner["queue"] == GPU_QUEUE and host_of(stack, runner) == GPU_HOST, runner
        assert "gpu mode test" in (stack.api.log_tail(runner, 400) or "")
    finally:
        worker_host(checkout, "worker-host-down", HOST_NAME=GPU_HOST)


def test_a_host_that_dies_mid_run_leaves_a_successful_run(stack, hosts):
    run_id = stack.trigger("scaleout_dies", device="cpu", data=SCALE_OUT, max_cells=40, classifier="off")
    deadline = time.monotonic() + 300
    while not any(ti["state"] == "running" and host_of(stack, ti) == HOST2 for ti in runners(stack, run_id)):
        assert time.monotonic() < deadline, f"no task ran on {HOST2}:\n{stack.explain(run_id)}"
        time.sleep(1)
    # A machine dying: its workers and its runner containers stop at once, nothing shuts down cleanly.
    project = f"helical-{HOST2}"
    containers = [c for flt in (f"label=com.docker.compose.project={project}", f"network={project}_runners")
                  for c in subprocess.run(["docker", "ps", "-q", "--filter", flt], capture_output=True, text=True,
                                          check=True).stdout.split()]
    subprocess.run(["docker", "kill", *containers], capture_output=True, check=True)
    killed = time.monotonic()
    assert stack.wait(run_id) == "success", stack.explain(run_id)
    tasks = runners(stack, run_id)
    retried = [ti for ti in tasks if ti["try_number"] > 1]
    print(f"\n{HOST2} killed mid-run: the run succeeded {time.monotonic() - killed:.0f}s later; "
          f"{len(retried)} runner task(s) retried, on {sorted({host_of(stack, ti) for ti in retried})}")
    assert retried and {host_of(stack, ti) for ti in retried} == {"core"}, retried
    assert all(ti["state"] == "success" for ti in tasks) and len(tasks) == 10
    for i in range(10):
        assert (stack.results / run_id / f"{SCALE_OUT}__s{i}" / "metrics.json").is_file(), i
