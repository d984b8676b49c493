"""One GPU per GPU runner: a task holds a slot (a GPU of its host, and a seat on it) from before its container is
created until the task ends, so the runners of a host spread over its GPUs.

Docker turns `DeviceRequest(count=1)` into device "0" (moby's countToDevices takes the first *count*), so every
runner asking for "one GPU" lands on GPU 0. Runners ask for a device id instead, chosen here.

A slot is taken with a lock file (flock) in a folder every GPU worker of the host shares: the kernel releases it
when the task's process ends, however it ends (success, failure, or its worker killed). A runner container an
ended task left running (its worker died) still uses its GPU: running containers labelled with a slot count as
taken too, until the next try of that task stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from helical_workflow.names import RUNNER_LABELS

# On every GPU runner container: its slot (`<device>.<seat>`) and its device, for the next allocation and for people.
SLOT_LABEL = RUNNER_LABELS["gpu_slot"]
DEVICE_LABEL = RUNNER_LABELS["gpu_device"]
ALLOCATION_LOCK = ".allocate.lock"


class NoFreeGpuError(RuntimeError):
    """Every slot of the host stayed taken for the whole wait."""


@dataclass(frozen=True)
class GpuSlot:
    device: str
    seat: int

    @property
    def name(self) -> str:
        return f"{self.device}.{self.seat}"


def slots_in_order(devices: list[str] | tuple[str, ...], per_gpu: int) -> list[GpuSlot]:
    """Every slot, first seats first: with two runners per GPU, two tasks get two GPUs, not two seats of one."""
    return [GpuSlot(device, seat) for seat in range(per_gpu) for device in devices]


def try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None when another process holds it."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def take_free_slot(candidates: list[GpuSlot], lock_dir: Path, running_slots: Callable[[], set[str]]
                   ) -> tuple[GpuSlot, int] | None:
    """The first slot no running container names and no process holds, with the descriptor that now holds it.
    Allocations on one host take turns (a lock of their own), so two tasks never pick the same free slot."""
    with open(lock_dir / ALLOCATION_LOCK, "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        in_use = running_slots()
        for slot in candidates:
            if slot.name not in in_use and (fd := try_lock(lock_dir / f"{slot.name}.lock")) is not None:
                return slot, fd
    return None


@contextlib.contextmanager
def hold_gpu_slot(devices: list[str] | tuple[str, ...], per_gpu: int, lock_dir: Path,
                  running_slots: Callable[[], set[str]], wait_seconds: float = 1800,
                  poll_seconds: float = 2.0) -> Iterator[GpuSlot]:
    """The first free slot, held until the block ends; waits while all are taken, then NoFreeGpuError.

    `running_slots` names the slots of running runner containers on this host's engine (their SLOT_LABEL).
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    candidates = slots_in_order(devices, per_gpu)
    deadline = time.monotonic() + wait_seconds
    while (taken := take_free_slot(candidates, lock_dir, running_slots)) is None:
        if time.monotonic() > deadline:
            raise NoFreeGpuError(f"all {len(candidates)} GPU slots of this host ({', '.join(devices)} x {per_gpu}) "
                                 f"stayed taken for {wait_seconds:.0f}s; retried while tries remain")
        time.sleep(poll_seconds)
    slot, fd = taken
    try:
        yield slot
    finally:
        os.close(fd)
