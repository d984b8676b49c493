"""The Grafana dashboards of monitoring/grafana/dashboards/, as code: one module per dashboard.

panels.py holds the shared building blocks and the layout; each dashboard module has a short
`build()` that lists its variables and its rows, and one `row_<question>()` function per row that
returns the row's title and panels. `make generate` (helical_tools/generate.py) writes (or checks) the JSON files.
"""

from __future__ import annotations

import json

from . import airflow_health, helical_runs, queues_workers

DASHBOARDS = {
    "queues-workers.json": queues_workers.build,
    "helical-runs.json": helical_runs.build,
    "airflow-health.json": airflow_health.build,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as checked in."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}
