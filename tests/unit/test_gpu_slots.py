"""GPU slots held by real processes with real lock files: distinct while held, free again once the holder ends."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from helical_workflow.gpu_slots import NoFreeGpuError, hold_gpu_slot, slots_in_order

DEVICES = ("0", "1", "2", "3")


def hold(lock_dir: str, seconds: float, taken: multiprocessing.Queue, running: tuple[str, ...] = ()) -> None:
    with hold_gpu_slot(DEVICES, 1, Path(lock_dir), lambda: set(running), wait_seconds=30, poll_seconds=0.05) as slot:
        taken.put(slot.name)
        time.sleep(seconds)


def start_holders(lock_dir: Path, count: int, seconds: float) -> tuple[list[multiprocessing.Process], list[str]]:
    taken: multiprocessing.Queue = multiprocessing.Queue()
    holders = [multiprocessing.Process(target=hold, args=(str(lock_dir), seconds, taken)) for _ in range(count)]
    for process in holders:
        process.start()
    return holders, sorted(taken.get(timeout=30) for _ in holders)


def test_slots_spread_over_gpus_before_sharing_one():
    assert [s.name for s in slots_in_order(["0", "1"], 2)] == ["0.0", "1.0", "0.1", "1.1"]


def test_concurrent_holders_get_distinct_gpus(tmp_path):
    holders, names = start_holders(tmp_path, 4, seconds=2)
    assert names == ["0.0", "1.0", "2.0", "3.0"]
    for process in holders:
        process.join()


def test_a_killed_holder_releases_its_gpu_and_a_waiting_one_gets_it(tmp_path):
    holders, names = start_holders(tmp_path, 4, seconds=60)
    assert len(set(names)) == 4
    with pytest.raises(NoFreeGpuError, match="all 4 GPU slots"):
        with hold_gpu_slot(DEVICES, 1, tmp_path, set, wait_seconds=0.3, poll_seconds=0.05):
            pass
    os.kill(holders[2].pid, signal.SIGKILL)  # a worker dying mid-task: nothing runs its cleanup
    holders[2].join()
    with hold_gpu_slot(DEVICES, 1, tmp_path, set, wait_seconds=10, poll_seconds=0.05) as slot:
        assert slot.name in names
    for process in holders:
        process.kill()
        process.join()


def test_a_slot_a_running_container_still_uses_is_skipped(tmp_path):
    with hold_gpu_slot(DEVICES, 1, tmp_path, lambda: {"0.0", "1.0"}) as slot:
        assert slot.name == "2.0"
    with hold_gpu_slot(DEVICES, 1, tmp_path, set) as slot:  # released when the block ended
        assert slot.name == "0.0"
