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
from collections.abc import Callable
from typing import Any

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
