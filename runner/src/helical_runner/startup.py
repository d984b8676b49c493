"""Seconds from the container's start to its first embedded batch, per stage (metrics.json `startup`).

The runner is PID 1 of its container, so the process's start is the container's: the clock's origin is read
from /proc (10 ms resolution), which also counts the interpreter's own start-up before any of our code runs.
"""

from __future__ import annotations

import os
import time

# In the order a run reaches them: Python up and the CLI parsed; torch, Helical's model code and the readers
# imported; the model loaded onto its device; the first dataset opened and its first batch embedded.
STAGES = ("python", "imports", "model", "first_batch")


def process_age() -> float:
    """Seconds since this process started, from /proc/self/stat's starttime; 0.0 where /proc cannot tell."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5), counted from its 3rd
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class StartupClock:
    def __init__(self) -> None:
        self.origin = time.perf_counter() - process_age()
        self.marks: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        """The end of `stage`; only its first end counts (every dataset of a pack reaches `first_batch`)."""
        if stage not in STAGES:
            raise ValueError(f"unknown start-up stage {stage!r}")
        self.marks.setdefault(stage, time.perf_counter())

    def report(self) -> dict[str, float]:
        """Seconds per stage reached so far, and `to_first_batch` (all of them) once the first batch is done."""
        seconds: dict[str, float] = {}
        previous = self.origin
        for stage in STAGES:
            if stage not in self.marks:
                break
            seconds[stage] = round(self.marks[stage] - previous, 3)
            previous = self.marks[stage]
        if "first_batch" in self.marks:
            seconds["to_first_batch"] = round(self.marks["first_batch"] - self.origin, 3)
        return seconds
