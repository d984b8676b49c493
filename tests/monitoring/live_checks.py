"""Helpers for the e2e test: query the running Prometheus and wait for a condition.

    from live_checks import query, wait_for, by_label
    rows = wait_for(PROM, 'queue:redis_queue_depth:sum{queue="cpu"}', lambda r: value(r) >= 3, 120)

Standard library only (urllib), so the e2e test needs nothing beyond pytest.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from statsd_mapping import Mapped, Mapper

Result = list[dict[str, Any]]


class PrometheusError(RuntimeError):
    """Prometheus answered with an error, or not at all."""


def query(prom_url: str, promql: str, timeout: float = 10.0) -> Result:
    """The instant-vector result of `promql`: [{"metric": {...}, "value": [ts, "1"]}, ...]."""
    url = f"{prom_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
        raise PrometheusError(f"{url}: {error}") from error
    if body.get("status") != "success":
        raise PrometheusError(
            f"{promql!r}: {body.get('errorType')}: {body.get('error')}"
        )
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def value(result: Result, default: float = 0.0) -> float:
    """The sum of a result's sample values (0 for an empty result)."""
    return sum(float(row["value"][1]) for row in result) if result else default


def by_label(result: Result, label: str) -> dict[str, float]:
    """{label value: sample value}, e.g. by_label(rows, "queue") -> {"cpu": 3.0}."""
    return {row["metric"].get(label, ""): float(row["value"][1]) for row in result}


def wait_for(
    prom_url: str,
    promql: str,
    predicate: Callable[[Result], bool],
    timeout: float = 120.0,
    interval: float = 5.0,
) -> Result:
    """Poll `promql` until `predicate(result)` holds; raise TimeoutError with the last result."""
    deadline = time.monotonic() + timeout
    last: Result | str = "no answer yet"
    while True:
        try:
            last = query(prom_url, promql)
            if predicate(last):
                return last
        except PrometheusError as error:
            last = str(error)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"after {timeout:.0f}s {promql!r} still gives {last!r}")
        time.sleep(interval)


def targets_up(prom_url: str) -> dict[str, bool]:
    """{job: up} for every scrape job (excluded services show False)."""
    return {job: bool(v) for job, v in by_label(query(prom_url, "up"), "job").items()}


def map_captured(lines: Iterable[str], mapper: Mapper) -> dict[str, list[Mapped]]:
    """Map StatsD lines captured live; {exported name: [Mapped, ...]} (dropped lines left out).

    One UDP datagram may hold several lines separated by newlines; pass them split.
    """
    exported: dict[str, list[Mapped]] = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        mapped = mapper.map_line(line)
        if mapped is not None:
            exported.setdefault(mapped.name, []).append(mapped)
    return exported


def shape_problems(
    exported: dict[str, list[Mapped]], expected: dict[str, set[str]]
) -> list[str]:
    """For each expected metric present in `exported`, label keys that differ; and unmapped names.

    `expected` is statsd_samples.EXPECTED_SHAPES (or a subset the e2e run must produce).
    """
    problems = []
    for name, samples in exported.items():
        if name in expected:
            for sample in samples:
                if set(sample.labels) != expected[name] or any(
                    v == "" for v in sample.labels.values()
                ):
                    problems.append(
                        f"{name}: labels {sample.labels} (want keys {sorted(expected[name])})"
                    )
        elif all(s.rule is None for s in samples) and name.startswith(
            ("airflow_", "helical_")
        ):
            problems.append(
                f"{name}: no mapping rule (exported with dots turned into underscores)"
            )
    return problems
