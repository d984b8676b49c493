"""Queues & workers: work waiting per Celery queue (Redis and Airflow), workers, throughput."""

from __future__ import annotations

from helical_workflow.names import CELERY_DEFAULT_QUEUE, CPU_QUEUE, GPU_QUEUE

from .panels import Row, custom_variable, dashboard, datasource_variable, panel, quantile, query_variable, row


def build() -> dict:
    return dashboard(
        "helical-queues",
        "Queues & workers",
        "Per Celery queue: work waiting (Redis and Airflow), workers online, throughput.",
        [
            datasource_variable(),
            custom_variable("queue", "Queue", [CPU_QUEUE, GPU_QUEUE, CELERY_DEFAULT_QUEUE]),
            query_variable("worker", "Worker", "label_values(flower_worker_online, worker)"),
        ],
        [row_how_much_work_waits(), row_how_long_work_waits(), row_who_does_the_work(), row_how_fast_work_drains()],
    )


def row_how_much_work_waits() -> Row:
    return row(
        "Depth: how much work waits",
        panel(
            "How many tasks wait in each broker queue (Redis)?",
            [('queue:redis_queue_depth:sum{queue=~"$queue"}', "{{queue}}")],
            description="LLEN of the Celery list in Redis db 0. Visible even when no worker is alive.",
        ),
        panel(
            "How many tasks does Airflow hold queued and running per queue?",
            [
                ('queue:airflow_task_instances_queued:sum{queue=~"$queue"}', "queued {{queue}}"),
                ('queue:airflow_task_instances_running:sum{queue=~"$queue"}', "running {{queue}}"),
            ],
            description="Scheduler view (ti.queued / ti.running), refreshed every ti_metrics_interval.",
        ),
        panel(
            "Is any queue growing (tasks per second)?",
            [('queue:redis_queue_depth:deriv10m{queue=~"$queue"}', "{{queue}}")],
            unit="short",
            description="Slope of the Redis depth over 10 minutes; above 0 for long fires CeleryQueueBacklogGrowing.",
        ),
        panel(
            "Which tasks have the most instances queued right now?",
            [
                (
                    'topk(10, sum by (queue, dag_id, task_id) (airflow_task_instances{state="queued", queue=~"$queue"}))',
                    "{{queue}} {{dag_id}}.{{task_id}}",
                )
            ],
            kind="bargauge",
            description="Task instances in state queued (ti.queued), by queue, DAG and task: a count, not a wait time.",
        ),
    )


def row_how_long_work_waits() -> Row:
    return row(
        "Wait: how long work waits",
        panel(
            "How long has each queue held work without draining?",
            [('queue:redis_queue_seconds_since_empty:cap6h{queue=~"$queue"}', "{{queue}}")],
            unit="s",
            description=(
                "Seconds since the queue's Redis list was last empty (0 while empty, at most 6 h): the oldest "
                "waiting task has waited at most this long. Over 1 h with a worker online fires "
                "CeleryQueueNotDraining. Airflow 3.3.2 sends no queued-to-running duration per task."
            ),
        ),
        panel(
            "How long do tasks wait to be queued once scheduled (p95)?",
            [(quantile("airflow_task_scheduled_duration_seconds", "dag_id, task_id"), "{{dag_id}}.{{task_id}}")],
            unit="s",
            description=(
                "Airflow's scheduled_duration: from scheduled (dependencies met) to queued (sent to Celery); "
                "long when pools, concurrency limits or executor slots hold tasks back."
            ),
        ),
    )


def row_who_does_the_work() -> Row:
    return row(
        "Workers: who does the work",
        panel(
            # Per machine: the core is "core", worker hosts go by their name (docs/scale-out.md).
            "How many workers are online per host and queue?",
            [('host_queue:flower_workers_online:sum{queue=~"$queue"}', "{{host}} {{queue}}")],
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
            [('flower_worker_number_of_currently_executing_tasks{worker=~"$worker"}', "{{worker}}")],
            stack=True,
        ),
        panel(
            "How many tasks has each worker prefetched?",
            [('sum by (worker) (flower_worker_prefetched_tasks{worker=~"$worker"})', "{{worker}}")],
        ),
    )


def row_how_fast_work_drains() -> Row:
    return row(
        "Throughput: how fast it drains",
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
            [(quantile("flower_task_runtime_seconds", "worker", selector='{worker=~"$worker"}'), "{{worker}}")],
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
    )
