"""`--compare-workers 1,3`: the same load at several worker counts, and the throughput ratio."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helical_workflow.names import CPU_QUEUE, GPU_QUEUE

from .config import LoadConfig, timestamp
from .driver import run_load
from .flower import worker_status
from .stats import worker_queue

COMPARED = ("runs_per_min", "cells_per_s")
LATENCIES = ("trigger_to_runner_start", "queue_wait", "runner_duration", "end_to_end")


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    # `{n}` is replaced by the worker count; the lead's `make scale` returns once workers are healthy.
    command: str = "make scale WORKERS={n}"
    # Optional second check: poll Flower until that many workers of the queue are online.
    flower_url: str | None = None
    flower_user: str | None = None
    flower_password: str | None = None
    wait_s: float = 300.0


def online_workers(flower_url: str, queue: str, user: str | None, password: str | None) -> int:
    """Workers of `queue` that Flower reports online."""
    status = worker_status(flower_url, user, password)
    return sum(1 for name, up in status.items() if up and worker_queue(name) == queue)


def scale_to(n: int, scale: ScaleConfig, queue: str) -> None:
    cmd = scale.command.format(n=n)
    print(f"scaling workers: {cmd}", file=sys.stderr)
    done = subprocess.run(shlex.split(cmd), timeout=scale.wait_s, check=False)
    if done.returncode:
        raise RuntimeError(f"`{cmd}` exited {done.returncode}; fix it or pass --scale-cmd.")
    if not scale.flower_url:
        return
    deadline, seen = time.monotonic() + scale.wait_s, -1
    while time.monotonic() < deadline:
        seen = online_workers(scale.flower_url, queue, scale.flower_user, scale.flower_password)
        if seen == n:
            return
        time.sleep(5)
    raise RuntimeError(f"Flower shows {seen} `{queue}` workers online, not {n}, after {scale.wait_s:.0f}s.")


def comparison(reports: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Side-by-side numbers per worker count and the last/first throughput ratio (pure)."""
    rows = []
    for n, rep in reports:
        s = rep["summary"]
        rows.append({
            "workers": n,
            **{k: s["throughput"][k] for k in COMPARED},
            "succeeded": s["runs"]["succeeded"], "requested": s["runs"]["requested"],
            **{f"{k}_p50": s["latency_s"][k]["p50"] for k in LATENCIES},
            **{f"{k}_p95": s["latency_s"][k]["p95"] for k in LATENCIES},
        })
    first, last = rows[0], rows[-1]
    ratio = (last["runs_per_min"] / first["runs_per_min"]
             if first["runs_per_min"] and last["runs_per_min"] is not None else None)
    return {"rows": rows, "scaling_ratio": ratio,
            "ratio_of": f"runs/min at {last['workers']} workers / at {first['workers']} workers",
            "ideal_ratio": last["workers"] / first["workers"]}


def render_comparison(comp: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["# Worker scaling comparison", "",
             (f"**Scaling ratio** ({comp['ratio_of']}): **{f(comp['scaling_ratio'])}** "
             f"(ideal {f(comp['ideal_ratio'])})."), "",
             ("| workers | ok/runs | runs/min | cells/s | trigger→runner start p50/p95 | queue wait p50/p95 "
             "| runner p50/p95 | end-to-end p50/p95 |"), "|---|---|---|---|---|---|---|---|"]
    for r in comp["rows"]:
        lat = " | ".join(f"{f(r[f'{k}_p50'])} / {f(r[f'{k}_p95'])}" for k in LATENCIES)
        lines.append(f"| {r['workers']} | {r['succeeded']}/{r['requested']} | {f(r['runs_per_min'])} "
                     f"| {f(r['cells_per_s'])} | {lat} |")
    lines += ["", "Each row links to its full report: `workers-<n>/report.md`.", ""]
    return "\n".join(lines)


def compare_workers(config: LoadConfig, counts: Sequence[int], scale: ScaleConfig) -> Path:
    """Scale, load, repeat; writes comparison.json/.md beside one report dir per count."""
    base = config.out_dir or config.out_root / timestamp()
    queue = GPU_QUEUE if config.device == "gpu" else CPU_QUEUE
    reports = []
    for n in counts:
        scale_to(n, scale, queue)
        out = run_load(dataclasses.replace(config, out_dir=base / f"workers-{n}"))
        reports.append((n, json.loads((out / "report.json").read_text())))
    comp = comparison(reports)
    (base / "comparison.json").write_text(json.dumps(comp, indent=2) + "\n")
    (base / "comparison.md").write_text(render_comparison(comp))
    print(f"scaling ratio ({comp['ratio_of']}): {comp['scaling_ratio']}", file=sys.stderr)
    return base
