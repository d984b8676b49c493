"""Writes a load test's report: report.json, report.md and three PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from .stats import executing_series, in_flight_series

PLOTS = ("latency.png", "in_flight.png", "per_worker.png")
LATENCY_LABELS = {
    "trigger_to_run_start": "trigger → run start",
    "trigger_to_runner_start": "trigger → runner start",
    "schedule_delay": "scheduled → queued",
    "queue_wait": "queued → running (queue wait)",
    "runner_duration": "runner duration",
    "end_to_end": "end-to-end (trigger → run end)",
}


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_markdown(report: dict[str, Any]) -> str:
    s, meta = report["summary"], report["meta"]
    runs, tp = s["runs"], s["throughput"]
    lines = [
        f"# Load test `{meta['run_id_prefix']}*` against {meta['url']}",
        "",
        (f"{runs['requested']} runs of `{meta['dag_id']}` requested, {runs['triggered']} triggered, "
        f"**{runs['succeeded']} succeeded**, {runs['failed']} did not "
        f"(states: {', '.join(f'{k} {v}' for k, v in runs['states'].items()) or 'none'})."),
        (f"Load: concurrency {fmt(meta['config']['concurrency'])}, rate "
        f"{fmt(meta['config']['rate'])} runs/min, conf `{json.dumps(meta['conf_example'])}`."),
        "",
        "## Throughput",
        "",
        "| window s | runs/min | runner tasks/min | cells | cells/s overall | runner cells/s p50 |",
        "|---|---|---|---|---|---|",
        (f"| {fmt(tp['window_s'], 1)} | {fmt(tp['runs_per_min'])} | {fmt(tp['runner_tasks_per_min'])} "
        f"| {fmt(tp['cells_total'])} | {fmt(tp['cells_per_s'], 1)} "
        f"| {fmt(tp['runner_cells_per_s']['p50'], 1)} |"),
        "",
        "## Latency (seconds)",
        "",
        "| measure | n | p50 | p95 | max | mean |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in LATENCY_LABELS.items():
        d = s["latency_s"][key]
        lines.append(f"| {label} | {d['n']} | {fmt(d['p50'])} | {fmt(d['p95'])} | {fmt(d['max'])} "
                     f"| {fmt(d['mean'])} |")
    lines += ["", "## Hosts", "", "| host | workers | runner tasks | busy s | failed |", "|---|---|---|---|---|"]
    lines += [f"| {h} | {v['workers']} | {v['tasks']} | {fmt(v['busy_s'], 1)} | {v['failed']} |"
              for h, v in s.get("hosts", {}).items()]
    lines += ["", "## Workers", "", "| worker | host | queue | runner tasks | busy s | failed |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {w} | {v.get('host', '(unknown)')} | {', '.join(map(str, v['queues']))} | {v['tasks']} "
              f"| {fmt(v['busy_s'], 1)} | {v['failed']} |" for w, v in s["workers"].items()]
    lines += ["", "## Queues", "", "| queue | runner tasks | queue wait p50 | p95 | workers |",
              "|---|---|---|---|---|"]
    lines += [f"| {q} | {v['tasks']} | {fmt(v['queue_wait']['p50'])} | {fmt(v['queue_wait']['p95'])} "
              f"| {len(v['workers'])} |" for q, v in s["queues"].items()]
    lines += ["", f"## Failures ({len(s['failures'])})", ""]
    lines += [f"- `{f['run_id']}` {f['task'] or '(run)'} **{f['state']}**: {f['reason']}"
              for f in s["failures"]] or ["None."]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in meta.get("notes", [])] + [
        ("- Latencies use server timestamps: run `queued_at` (trigger), run/TI `start_date`, "
        "TI `queued_when`, `end_date`."),
        "- Plots: ![latency](latency.png) ![in flight](in_flight.png) ![per worker](per_worker.png)",
        "",
    ]
    return "\n".join(lines)


def plot_latency(summary: dict[str, Any], path: Path) -> None:
    keys = [k for k in LATENCY_LABELS if k != "schedule_delay"]
    values = {
        "trigger_to_run_start": [r["trigger_to_run_start"] for r in summary["per_run"]],
        "trigger_to_runner_start": [r["trigger_to_runner_start"] for r in summary["per_run"]],
        "queue_wait": [t["queue_wait"] for t in summary["per_task"]],
        "runner_duration": [t["runner_duration"] for t in summary["per_task"]],
        "end_to_end": [r["end_to_end"] for r in summary["per_run"]],
    }
    data = [[v for v in values[k] if v is not None] or [0.0] for k in keys]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), showmeans=True)
    ax.set_yticks(range(1, len(keys) + 1), [LATENCY_LABELS[k] for k in keys])
    ax.set_xlabel("seconds (whiskers p5–p95, triangle = mean)")
    ax.set_title("How long does each stage of a run take?")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_in_flight(series: Sequence[tuple[float, int, int]],
                   executing: Sequence[tuple[float, int]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    if series:
        t = [p[0] for p in series]
        ax.step(t, [p[1] for p in series], where="post", label="runs queued or running")
        ax.step(t, [p[2] for p in series], where="post", label="runs running")
    if executing:
        ax.step([p[0] for p in executing], [p[1] for p in executing], where="post",
                label="runner tasks executing (worker slots busy)")
    if series or executing:
        ax.legend()
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("seconds since first trigger")
    ax.set_ylabel("count")
    ax.set_title("How many runs were in flight over time?")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_per_worker(workers: dict[str, dict[str, Any]], path: Path) -> None:
    names = list(workers) or ["(none)"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, max(3.0, 0.5 * len(names) + 1.5)))
    left.barh(names, [workers.get(n, {}).get("tasks", 0) for n in names])
    left.set_xlabel("runner tasks")
    right.barh(names, [workers.get(n, {}).get("busy_s", 0.0) for n in names], color="tab:orange")
    right.set_xlabel("busy seconds")
    right.set_yticks([])
    fig.suptitle("How evenly did the workers share the load?")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, report: dict[str, Any], records: Sequence[dict[str, Any]]) -> Path:
    """Write every report file into out_dir; returns the report.json path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Raw records let `--from-records` rebuild the report, and tests check numbers against the API.
    (out_dir / "records.json").write_text(json.dumps(list(records), indent=1) + "\n")
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))
    plot_latency(report["summary"], out_dir / "latency.png")
    runner_task = report["meta"].get("config", {}).get("runner_task")
    plot_in_flight(in_flight_series(records), executing_series(records, runner_task),
                   out_dir / "in_flight.png")
    plot_per_worker(report["summary"]["workers"], out_dir / "per_worker.png")
    return path
