"""Airflow health: scheduler loop and heartbeats, DAG processing, pools and executor, alerts."""

from __future__ import annotations

from .panels import Row, dashboard, datasource_variable, panel, quantile, row


def build() -> dict:
    return dashboard(
        "helical-airflow-health",
        "Airflow health",
        "Scheduler loop and heartbeats, DAG processing, pools and executor.",
        [datasource_variable()],
        [row_is_the_scheduler_keeping_up(), row_do_dag_files_parse(), row_do_pools_and_executor_hold_work_back()],
    )


def row_is_the_scheduler_keeping_up() -> Row:
    return row(
        "Scheduler",
        panel(
            "Is every Airflow component heartbeating (beats per second)?",
            [("component:airflow_heartbeat:rate2m", "{{component}}")],
            width=8,
        ),
        panel(
            "How long does a scheduler loop take (p95)?",
            [
                ("airflow:scheduler_loop_duration_seconds:p95_5m", "loop p95"),
                (quantile("airflow_scheduler_critical_section_duration_seconds"), "critical section p95"),
            ],
            unit="s",
            width=8,
        ),
        panel(
            "How late do scheduled DAG runs start (p95)?",
            [(quantile("airflow_dagrun_schedule_delay_seconds", "dag_id"), "{{dag_id}}")],
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
    )


def row_do_dag_files_parse() -> Row:
    return row(
        "DAG processing",
        panel(
            "Do DAG files fail to import?",
            [("airflow_dag_processing_import_errors", "import errors")],
            kind="stat",
            width=6,
        ),
        panel("How many DAGs were parsed?", [("airflow_dagbag_size", "DAGs")], kind="stat", width=6),
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
            [(quantile("airflow_dag_processing_last_duration_seconds", "file"), "{{file}}")],
            unit="s",
        ),
    )


def row_do_pools_and_executor_hold_work_back() -> Row:
    return row(
        "Pools and executor",
        panel(
            "How are pool slots used?",
            [("sum by (pool, state) (airflow_pool_slots)", "{{pool}} {{state}}")],
            stack=True,
        ),
        panel("Which pools starve tasks?", [("airflow_pool_starving_tasks", "{{pool}}")]),
        panel(
            "Do Celery tasks fail on workers or time out when published?",
            [
                ('sum(queue_type:flower_task_events:rate5m{type="task-failed"})', "Celery task failures (Flower)"),
                ("sum(rate(airflow_celery_task_timeout_error_total[$__rate_interval]))", "publish timeouts"),
            ],
            description=(
                "Per second. Failures: Flower task-failed events, the Celery task itself raised (a failed "
                "Airflow task still ends as a Celery success). Publish timeouts: Airflow's "
                "celery.task_timeout_error, sent only when sending to Redis times out."
            ),
        ),
        panel(
            "Which alerts are firing?",
            [('ALERTS{alertstate="firing"}', "{{alertname}} {{queue}}{{dag_id}}{{dataset}}")],
            kind="table",
        ),
    )
