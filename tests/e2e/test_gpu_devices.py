"""Every GPU of a host, one runner per GPU (issue 21), on a machine without one: the test GPU worker is told of
four fake GPUs (compose.gpu-devices.yaml), so its runner tasks create containers whose DeviceRequests name a
device id, which the engine records; they cannot start here (no NVIDIA runtime), so each task fails and retries.

Other holders of GPU slots are played deterministically: a process inside the worker holding slots through the
same lock files (as concurrent tasks do), and a running runner container labelled with a slot (as a runner left
by a dead worker is). tests/unit/test_gpu_slots.py races real processes for the same slots.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.harness import compose, docker

GPU_DEVICES = ["0", "1", "2", "3"]
PROFILE = ("--profile", "gpu-test")
OVERRIDE = ("tests/e2e/compose.gpu-devices.yaml",)
# Run inside the worker: hold the named slots through gpu_slots' own lock files until killed.
HOLDER_MARK = "helical-test-slot-holder"
KILL_HOLDER = """
import os, signal, sys
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as cmdline:
            argv = cmdline.read().split(b'\\0')
    except OSError:  # ended meanwhile
        continue
    if sys.argv[1].encode() in argv and int(pid) != os.getpid():
        os.kill(int(pid), signal.SIGKILL)
"""
HOLDER = """
import contextlib, sys, time
from pathlib import Path
from helical_workflow.gpu_slots import try_lock
held = [try_lock(Path('/opt/airflow/gpu-slots') / f'{name}.lock') for name in sys.argv[2:]]
assert None not in held, 'a slot was already held'
print('holding', flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def gpu_worker(stack) -> Iterator[str]:
    compose(*PROFILE, "up", "-d", "--no-deps", "--wait", "airflow-worker-gpu-test", extra_files=OVERRIDE)
    try:
        yield compose(*PROFILE, "ps", "-q", "airflow-worker-gpu-test", extra_files=OVERRIDE).strip()
    finally:
        compose(*PROFILE, "rm", "-sf", "airflow-worker-gpu-test", extra_files=OVERRIDE)


def hold_slots(worker: str, *slots: str) -> subprocess.Popen:
    holder = subprocess.Popen(["docker", "exec", "-i", worker, "python", "-", HOLDER_MARK, *slots],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    holder.stdin.write(HOLDER)
    holder.stdin.close()
    assert holder.stdout.readline().strip() == "holding"
    return holder


def release(worker: str, holder: subprocess.Popen) -> None:
    """SIGKILL for the holder, as a worker can die: nothing of it runs any cleanup (the image has no pkill)."""
    docker("exec", worker, "python", "-c", KILL_HOLDER, HOLDER_MARK)
    holder.wait(30)


def first_try_devices(stack, run_id: str, count: int) -> dict[str, list[str]]:
    """{container name: DeviceIDs} of the run's first-try runner containers, once `count` were created."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        names = [n for n in docker("ps", "-a", "--filter", f"label=helical.run_id={run_id}", "--format",
                                   "{{.Names}}").split() if n.endswith(".try1")]
        if len(names) >= count:
            devices = {}
            for name in names:
                requests = json.loads(docker("inspect", "-f", "{{json .HostConfig.DeviceRequests}}", name))
                (request,) = requests
                assert request["Count"] == 0 and request["Capabilities"] == [["gpu"]], request
                devices[name] = request["DeviceIDs"]
            return devices
        time.sleep(2)
    raise TimeoutError(f"{run_id}: {count} first-try runner containers never appeared\n{stack.explain(run_id)}")


def end_run(stack, run_id: str) -> None:
    """Its tasks cannot start a GPU container here: no retry would either."""
    stack.api.fail_run("helical_model_workflow", run_id, "test: GPU containers cannot start without a GPU")


def test_gpu_tasks_get_free_gpus_by_id_and_a_dead_holder_frees_its_gpus(stack, gpu_worker):
    holder = hold_slots(gpu_worker, "0.0", "1.0")  # two tasks hold GPUs 0 and 1
    try:
        run_id = stack.trigger("gpu_devices", device="gpu", data="pbmc_part_*.h5ad", max_cells=20)
        devices = first_try_devices(stack, run_id, 2)
        # One id each, never a held one (two tasks at once get 2 and 3; one after the other, 2 twice).
        assert all(len(ids) == 1 and ids[0] in ("2", "3") for ids in devices.values()), devices
        end_run(stack, run_id)
    finally:
        release(gpu_worker, holder)
    # The holder died without any cleanup: its GPUs are free again, and the lowest is taken first.
    run_id = stack.trigger("gpu_devices_freed", device="gpu", data="synthetic_counts.h5ad", max_cells=20)
    assert list(first_try_devices(stack, run_id, 1).values()) == [["0"]]
    end_run(stack, run_id)


def test_a_gpu_a_runner_left_running_still_uses_is_not_handed_out(stack, gpu_worker):
    # A runner whose worker died keeps running (and keeps its GPU) until the next try of its task stops it.
    orphan = docker("run", "-d", "--rm", "--network", "none", "--label", "helical.dag_id=helical_model_workflow",
                    "--label", "helical.gpu_slot=0.0", "--label", "helical.gpu_device=0", "--entrypoint", "sleep",
                    "helical-runner:cpu", "600").strip()
    try:
        run_id = stack.trigger("gpu_devices_orphan", device="gpu", data="synthetic_counts.h5ad", max_cells=20)
        assert list(first_try_devices(stack, run_id, 1).values()) == [["1"]]
        end_run(stack, run_id)
    finally:
        docker("rm", "-f", orphan, check=False)
