"""Generate the Grafana dashboards of monitoring/grafana/dashboards/ from this one file.

    python3 monitoring/grafana/build_dashboards.py          # rewrite the JSON files
    python3 monitoring/grafana/build_dashboards.py --check  # exit 1 if they are stale

Every panel title is the question the panel answers. Queries prefer the recording rules of
monitoring/prometheus/rules/recording.yml, so dashboards and alerts compute a number once.
tests/monitoring checks that every query parses and uses only metrics this stack produces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "range": True,
    }


def panel(
    title: str,
    exprs: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    stack: bool = False,
) -> Panel:
    """One panel; `exprs` are (PromQL, legend) pairs."""
    custom: dict[str, Any] = {}
    if kind == "timeseries":
        custom = {
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": True,
        }
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": {"unit": unit, "noValue": "0", "custom": custom},
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            }
        }
        if kind == "timeseries"
        else {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}
        },
        "targets": [
            target(expr, legend, chr(ord("A") + i))
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def row(title: str) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"w": 24, "h": 1},
        "panels": [],
    }


def layout(panels: list[Panel]) -> list[Panel]:
    """Give panels ids and flow them left to right, top to bottom, on Grafana's 24-column grid."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > 24 or item["type"] == "row":
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        item["id"] = number
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        if item["type"] == "row":
            x, y, row_height = 0, y + grid["h"], 0
    return panels


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
        "hide": 0,
    }


def custom_variable(name: str, label: str, values: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"text": "All", "value": "$__all"},
        "hide": 0,
        "options": [],
    }


def query_variable(
    name: str, label: str, query: str, regex: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "regex": regex,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "sort": 1,
        "current": {"text": "All", "value": "$__all"},
        "hide": 0,
        "options": [],
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    panels: list[Panel],
) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["helical", "airflow"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "title": "Helical dashboards",
                "type": "dashboards",
                "tags": ["helical"],
                "asDropdown": True,
            }
        ],
        "panels": layout(panels),
    }


def queues_and_workers() -> dict:
    panels = [
        row("Depth: how much work waits"),
        panel(
            "How many tasks wait in each broker queue (Redis)?",
            [('queue:redis_queue_depth:sum{queue=~"$queue"}', "{{queue}}")],
            description="LLEN of the Celery list in Redis db 0. Visible even when no worker is alive.",
        ),
        panel(
            "How many tasks does Airflow hold queued and running per queue?",
            [
                (
                    'queue:airflow_task_instances_queued:sum{queue=~"$queue"}',
                    "queued {{queue}}",
                ),
                (
                    'queue:airflow_task_instances_running:sum{queue=~"$queue"}',
                    "running {{queue}}",
                ),
            ],
            description="Scheduler view (ti.queued / ti.running), refreshed every ti_metrics_interval.",
        ),
        panel(
            "Is any queue growing (tasks per second)?",
            [('queue:redis_queue_depth:deriv10m{queue=~"$queue"}', "{{queue}}")],
            unit="short",
            width=8,
            description="Slope of the Redis depth over 10 minutes; above 0 for long fires CeleryQueueBacklogGrowing.",
        ),
        panel(
            "How long do tasks wait between queued and running (p95)?",
            [
                (
                    (
                        "histogram_quantile(0.95, sum by (le, dag_id, task_id) "
                        "(rate(airflow_task_queued_duration_seconds_bucket[$__rate_interval])))"
                    ),
                    "{{dag_id}}.{{task_id}}",
                )
            ],
            unit="s",
            width=8,
            description="Airflow task queued_duration: the age a task reached before a worker took it.",
        ),
        panel(
            "Which tasks wait longest right now?",
            [
                (
                    'topk(10, sum by (queue, dag_id, task_id) (airflow_task_instances{state="queued", queue=~"$queue"}))',
                    "{{queue}} {{dag_id}}.{{task_id}}",
                )
            ],
            kind="bargauge",
            width=8,
        ),
        row("Workers: who does the work"),
        panel(
            "How many workers are online per queue?",
            [('queue:flower_workers_online:sum{queue=~"$queue"}', "{{queue}}")],
            kind="stat",
            width=8,
        ),
        panel(
            "Which workers are online?",
            [('flower_worker_online{worker=~"$worker"}', "{{worker}}")],
            width=16,
            description="1 online, 0 offline, as Flower sees worker heartbeats.",
        ),
        panel(
            "How many tasks is each worker executing?",
            [
                (
                    'flower_worker_number_of_currently_executing_tasks{worker=~"$worker"}',
                    "{{worker}}",
                )
            ],
            stack=True,
        ),
        panel(
            "How many tasks has each worker prefetched?",
            [
                (
                    'sum by (worker) (flower_worker_prefetched_tasks{worker=~"$worker"})',
                    "{{worker}}",
                )
            ],
        ),
        row("Throughput: how fast it drains"),
        panel(
            "How many tasks finish per minute per queue?",
            [
                (
                    '60 * queue_type:flower_task_events:rate5m{queue=~"$queue", type=~"task-(succeeded|failed)"}',
                    "{{queue}} {{type}}",
                )
            ],
            unit="short",
        ),
        panel(
            "How many task instances finish per minute, by outcome?",
            [("60 * state:airflow_ti_finish:rate5m", "{{state}}")],
            stack=True,
        ),
        panel(
            "How long do tasks run on each worker (p95)?",
            [
                (
                    (
                        "histogram_quantile(0.95, sum by (le, worker) "
                        '(rate(flower_task_runtime_seconds_bucket{worker=~"$worker"}[$__rate_interval])))'
                    ),
                    "{{worker}}",
                )
            ],
            unit="s",
        ),
        panel(
            "How many executor slots are free, queued and running?",
            [
                ("sum(airflow_executor_open_slots)", "open"),
                ("sum(airflow_executor_queued_tasks)", "queued"),
                ("sum(airflow_executor_running_tasks)", "running"),
            ],
        ),
    ]
    variables = [
        datasource_variable(),
        custom_variable("queue", "Queue", ["cpu", "gpu", "default"]),
        query_variable(
            "worker", "Worker", "label_values(flower_worker_online, worker)"
        ),
    ]
    return dashboard(
        "helical-queues",
        "Queues & workers",
        "Per Celery queue: work waiting (Redis and Airflow), workers online, throughput.",
        variables,
        panels,
    )


def helical_runs() -> dict:
    run_labels = "container_label_helical_dataset, container_label_helical_run_id"
    panels = [
        row("DAG runs"),
        panel(
            "How long do DAG runs take (p50 and p95)?",
            [
                (
                    (
                        "histogram_quantile(0.5, sum by (le, dag_id, state) "
                        '(rate(airflow_dagrun_duration_seconds_bucket{dag_id=~"$dag_id"}[1h])))'
                    ),
                    "p50 {{dag_id}} {{state}}",
                ),
                (
                    (
                        "histogram_quantile(0.95, sum by (le, dag_id, state) "
                        '(rate(airflow_dagrun_duration_seconds_bucket{dag_id=~"$dag_id"}[1h])))'
                    ),
                    "p95 {{dag_id}} {{state}}",
                ),
            ],
            unit="s",
        ),
        panel(
            "Is the last hour slower than the 7-day mean?",
            [
                (
                    'dag_id_state:airflow_dagrun_duration_seconds:avg1h{dag_id=~"$dag_id", state="success"}',
                    "last hour {{dag_id}}",
                ),
                (
                    'dag_id:airflow_dagrun_duration_seconds:avg7d{dag_id=~"$dag_id"}',
                    "7-day mean {{dag_id}}",
                ),
            ],
            unit="s",
        ),
        panel(
            "How did tasks end in the selected range?",
            [
                (
                    'sum by (state) (increase(airflow_ti_finish_total{dag_id=~"$dag_id"}[$__range]))',
                    "{{state}}",
                )
            ],
            kind="piechart",
            width=8,
        ),
        panel(
            "Which tasks failed?",
            [
                (
                    (
                        'sum by (dag_id, task_id) (increase(airflow_ti_finish_total{dag_id=~"$dag_id", state="failed"}'
                        "[$__range])) > 0"
                    ),
                    "{{dag_id}}.{{task_id}}",
                )
            ],
            kind="bargauge",
            width=8,
        ),
        panel(
            "How long does each task run (p95)?",
            [
                (
                    (
                        "histogram_quantile(0.95, sum by (le, dag_id, task_id) "
                        '(rate(airflow_task_duration_seconds_bucket{dag_id=~"$dag_id"}[$__rate_interval])))'
                    ),
                    "{{dag_id}}.{{task_id}}",
                )
            ],
            unit="s",
            width=8,
        ),
        row("Model quality and speed per dataset"),
        panel(
            "How many cells per second does each dataset embed?",
            [
                (
                    'helical_runner_cells_per_second{dataset=~"$dataset"}',
                    "{{dataset}} ({{device}})",
                )
            ],
            width=8,
        ),
        panel(
            "How accurate is the cell-type classifier per dataset?",
            [
                (
                    'helical_runner_classifier_accuracy{dataset=~"$dataset"}',
                    "accuracy {{dataset}}",
                ),
                (
                    'helical_runner_classifier_macro_f1{dataset=~"$dataset"}',
                    "macro F1 {{dataset}}",
                ),
            ],
            kind="bargauge",
            unit="percentunit",
            width=8,
        ),
        panel(
            "Did a run use a test checkpoint instead of real scGPT weights?",
            [
                (
                    'max by (dataset) (helical_runner_test_model{dataset=~"$dataset"})',
                    "{{dataset}}",
                )
            ],
            kind="stat",
            width=8,
            description="1: the metrics above come from a tiny test model.",
        ),
        panel(
            "Which runner stage takes the time?",
            [
                (
                    (
                        "sum by (stage) (rate(helical_runner_stage_duration_seconds_sum"
                        '{dataset=~"$dataset"}[$__rate_interval])) / sum by (stage) '
                        '(rate(helical_runner_stage_duration_seconds_count{dataset=~"$dataset"}[$__rate_interval]))'
                    ),
                    "{{stage}}",
                )
            ],
            unit="s",
            stack=True,
        ),
        panel(
            "How many cells were embedded and how many datasets failed?",
            [
                (
                    'sum by (dataset) (increase(helical_runner_cells_total{dataset=~"$dataset"}[$__range]))',
                    "cells {{dataset}}",
                ),
                (
                    'sum by (dataset) (increase(helical_runner_failures_total{dataset=~"$dataset"}[$__range]))',
                    "failures {{dataset}}",
                ),
            ],
            kind="stat",
        ),
        row("Runner containers"),
        panel(
            "How much CPU does each runner container use (cores)?",
            [
                (
                    (
                        f"sum by ({run_labels}) (helical_run:container_cpu_usage_seconds:rate1m"
                        '{container_label_helical_dataset=~"$dataset"})'
                    ),
                    "{{container_label_helical_dataset}} {{container_label_helical_run_id}}",
                )
            ],
        ),
        panel(
            "How much memory does each runner container use?",
            [
                (
                    (
                        f"max by ({run_labels}) (helical_run:container_memory_working_set_bytes:max"
                        '{container_label_helical_dataset=~"$dataset"})'
                    ),
                    "{{container_label_helical_dataset}} {{container_label_helical_run_id}}",
                )
            ],
            unit="bytes",
        ),
    ]
    variables = [
        datasource_variable(),
        query_variable(
            "dag_id", "DAG", "label_values(airflow_ti_finish_total, dag_id)"
        ),
        query_variable(
            "dataset",
            "Dataset",
            "label_values(helical_runner_cells_per_second, dataset)",
        ),
    ]
    return dashboard(
        "helical-runs",
        "Helical runs",
        "DAG-run durations, task outcomes, scGPT throughput and accuracy per dataset, runner containers.",
        variables,
        panels,
    )


def airflow_health() -> dict:
    panels = [
        row("Scheduler"),
        panel(
            "Is every Airflow component heartbeating (beats per second)?",
            [("component:airflow_heartbeat:rate2m", "{{component}}")],
            width=8,
        ),
        panel(
            "How long does a scheduler loop take (p95)?",
            [
                ("airflow:scheduler_loop_duration_seconds:p95_5m", "loop p95"),
                (
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(airflow_scheduler_critical_section_duration_seconds_bucket[$__rate_interval])))"
                    ),
                    "critical section p95",
                ),
            ],
            unit="s",
            width=8,
        ),
        panel(
            "How late do scheduled DAG runs start (p95)?",
            [
                (
                    (
                        "histogram_quantile(0.95, sum by (le, dag_id) "
                        "(rate(airflow_dagrun_schedule_delay_seconds_bucket[$__rate_interval])))"
                    ),
                    "{{dag_id}}",
                )
            ],
            unit="s",
            width=8,
        ),
        panel(
            "How many tasks are ready to queue, and how many starve?",
            [
                ("airflow_scheduler_tasks_executable", "executable"),
                ("airflow_scheduler_tasks_starving", "starving"),
                ("airflow_scheduler_dagruns_running", "DAG runs running"),
            ],
        ),
        panel(
            "Are any scrape targets down?",
            [("up", "{{job}}")],
            kind="stat",
            description="0: the service is down or not part of this stack.",
        ),
        row("DAG processing"),
        panel(
            "Do DAG files fail to import?",
            [("airflow_dag_processing_import_errors", "import errors")],
            kind="stat",
            width=6,
        ),
        panel(
            "How many DAGs were parsed?",
            [("airflow_dagbag_size", "DAGs")],
            kind="stat",
            width=6,
        ),
        panel(
            "How long does parsing every DAG file take?",
            [("airflow_dag_processing_total_parse_time_seconds", "total parse time")],
            unit="s",
            width=12,
        ),
        panel(
            "How long ago was each DAG file parsed?",
            [("airflow_dag_processing_last_run_seconds_ago", "{{file}}")],
            unit="s",
        ),
        panel(
            "How long does each DAG file take to parse (p95)?",
            [
                (
                    (
                        "histogram_quantile(0.95, sum by (le, file) "
                        "(rate(airflow_dag_processing_last_duration_seconds_bucket[$__rate_interval])))"
                    ),
                    "{{file}}",
                )
            ],
            unit="s",
        ),
        row("Pools and executor"),
        panel(
            "How are pool slots used?",
            [("sum by (pool, state) (airflow_pool_slots)", "{{pool}} {{state}}")],
            stack=True,
        ),
        panel(
            "Which pools starve tasks?", [("airflow_pool_starving_tasks", "{{pool}}")]
        ),
        panel(
            "Do Celery commands fail or time out?",
            [
                (
                    "sum(rate(airflow_celery_execute_command_failure_total[$__rate_interval]))",
                    "command failures",
                ),
                (
                    "sum(rate(airflow_celery_task_timeout_error_total[$__rate_interval]))",
                    "publish timeouts",
                ),
            ],
        ),
        panel(
            "Which alerts are firing?",
            [
                (
                    'ALERTS{alertstate="firing"}',
                    "{{alertname}} {{queue}}{{dag_id}}{{dataset}}",
                )
            ],
            kind="table",
        ),
    ]
    return dashboard(
        "helical-airflow-health",
        "Airflow health",
        "Scheduler loop and heartbeats, DAG processing, pools and executor.",
        [datasource_variable()],
        panels,
    )


DASHBOARDS = {
    "queues-workers.json": queues_and_workers,
    "helical-runs.json": helical_runs,
    "airflow-health.json": airflow_health,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as checked in."""
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the checked-in JSON is stale"
    )
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            "stale dashboards (run python3 monitoring/grafana/build_dashboards.py):",
            *stale,
            sep="\n  ",
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
