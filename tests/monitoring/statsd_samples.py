"""StatsD lines Airflow 3.3.2 and the Helical runner really send, and what they must become.

LIVE_SAMPLES are copied verbatim from a live end-to-end run and cover every mapped metric a
dashboard or rule uses. EVENT_SAMPLES are names whose code path exists in Airflow 3.3.2 (or the
runner, docs/contracts.md) but only runs on an event that run did not have. NOT_SENT_SAMPLES are
names the mapping keeps for other Airflow versions although 3.3.2 never sends them (see
monitoring/statsd/mapping.yml); nothing may query them. test_statsd_mapping.py sends them all
through the real statsd_exporter; the e2e compares the live exporter's series with EXPECTED_SHAPES.
"""

from __future__ import annotations

DAG = "helical_model_workflow"
TASK = "run_runner_cpu"  # a mapped task: one task_id, many map indexes, no index in the name

Sample = tuple[str, str | None, dict[str, str]]

# (StatsD line, exported metric name, labels); None = dropped on purpose (tag-less duplicate).
LIVE_SAMPLES: list[Sample] = [
    ("airflow.executor.open_slots.CeleryExecutor:32|g", "airflow_executor_open_slots", {"executor": "CeleryExecutor"}),
    ("airflow.executor.queued_tasks.CeleryExecutor:1|g", "airflow_executor_queued_tasks", {"executor": "CeleryExecutor"}),
    ("airflow.executor.running_tasks.CeleryExecutor:1|g", "airflow_executor_running_tasks", {"executor": "CeleryExecutor"}),
    ("airflow.executor.open_slots:32|g", None, {}),
    (f"airflow.ti.queued.cpu.{DAG}.discover_datasets:1.0|g", "airflow_task_instances",
     {"state": "queued", "queue": "cpu", "dag_id": DAG, "task_id": "discover_datasets"}),
    (f"airflow.ti.queued.cpu.{DAG}.discover_datasets:0|g", "airflow_task_instances",
     {"state": "queued", "queue": "cpu", "dag_id": DAG, "task_id": "discover_datasets"}),
    (f"airflow.ti.running.cpu.{DAG}.run_runner_cpu:3.0|g", "airflow_task_instances",
     {"state": "running", "queue": "cpu", "dag_id": DAG, "task_id": "run_runner_cpu"}),
    (f"airflow.ti.running.gpu.{DAG}.run_runner_gpu:1.0|g", "airflow_task_instances",
     {"state": "running", "queue": "gpu", "dag_id": DAG, "task_id": "run_runner_gpu"}),
    ("airflow.ti.queued:1.0|g", None, {}),
    ("airflow.ti.running:3.0|g", None, {}),
    (f"airflow.ti.start.{DAG}.{TASK}:1|c", "airflow_ti_start_total", {"dag_id": DAG, "task_id": TASK}),
    (f"airflow.ti.start.{DAG}.choose_queue:1|c", "airflow_ti_start_total", {"dag_id": DAG, "task_id": "choose_queue"}),
    (f"airflow.ti.finish.{DAG}.{TASK}.success:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": TASK, "state": "success"}),
    (f"airflow.ti.finish.{DAG}.run_runner_gpu.success:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": "run_runner_gpu", "state": "success"}),
    (f"airflow.ti.finish.{DAG}.choose_queue.failed:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": "choose_queue", "state": "failed"}),
    (f"airflow.ti.finish.{DAG}.summarize.failed:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": "summarize", "state": "failed"}),
    ("airflow.ti.finish:1|c", None, {}),
    ("airflow.ti.start:1|c", None, {}),
    (f"airflow.dag.{DAG}.{TASK}.duration:25337.539000|ms", "airflow_task_duration_seconds",
     {"dag_id": DAG, "task_id": TASK}),
    (f"airflow.dag.{DAG}.discover_datasets.duration:217.338000|ms", "airflow_task_duration_seconds",
     {"dag_id": DAG, "task_id": "discover_datasets"}),
    (f"airflow.dag.{DAG}.{TASK}.scheduled_duration:21.161000|ms", "airflow_task_scheduled_duration_seconds",
     {"dag_id": DAG, "task_id": TASK}),
    (f"airflow.dag.{DAG}.summarize.scheduled_duration:42.659000|ms", "airflow_task_scheduled_duration_seconds",
     {"dag_id": DAG, "task_id": "summarize"}),
    ("airflow.task.duration:217.338000|ms", None, {}),
    ("airflow.task.scheduled_duration:38.774000|ms", None, {}),
    (f"airflow.dagrun.duration.success.{DAG}:44093.554000|ms", "airflow_dagrun_duration_seconds",
     {"dag_id": DAG, "state": "success"}),
    (f"airflow.dagrun.duration.failed.{DAG}:14226.104000|ms", "airflow_dagrun_duration_seconds",
     {"dag_id": DAG, "state": "failed"}),
    ("airflow.dagrun.duration.success:44093.554000|ms", None, {}),
    (f"airflow.dagrun.dependency-check.{DAG}:49.646890|ms", "airflow_dagrun_dependency_check_seconds", {"dag_id": DAG}),
    ("airflow.pool.open_slots.default_pool:128|g", "airflow_pool_slots", {"pool": "default_pool", "state": "open"}),
    ("airflow.pool.queued_slots.default_pool:1|g", "airflow_pool_slots", {"pool": "default_pool", "state": "queued"}),
    ("airflow.pool.running_slots.default_pool:1|g", "airflow_pool_slots", {"pool": "default_pool", "state": "running"}),
    ("airflow.pool.deferred_slots.default_pool:0|g", "airflow_pool_slots", {"pool": "default_pool", "state": "deferred"}),
    ("airflow.pool.scheduled_slots.default_pool:0|g", "airflow_pool_slots", {"pool": "default_pool", "state": "scheduled"}),
    ("airflow.pool.starving_tasks.default_pool:0|g", "airflow_pool_starving_tasks", {"pool": "default_pool"}),
    ("airflow.pool.open_slots:128|g", None, {}),
    ("airflow.scheduler_heartbeat:1|c", "airflow_heartbeat_total", {"component": "scheduler"}),
    ("airflow.dag_processor_heartbeat:1|c", "airflow_heartbeat_total", {"component": "dag_processor"}),
    ("airflow.triggerer_heartbeat:1|c", "airflow_heartbeat_total", {"component": "triggerer"}),
    ("airflow.scheduler.scheduler_loop_duration:203.841968|ms", "airflow_scheduler_loop_duration_seconds", {}),
    ("airflow.scheduler.critical_section_duration:37.718816|ms", "airflow_scheduler_critical_section_duration_seconds", {}),
    ("airflow.scheduler.tasks.starving:0|g", "airflow_scheduler_tasks_starving", {}),
    ("airflow.scheduler.tasks.executable:1|g", "airflow_scheduler_tasks_executable", {}),
    ("airflow.scheduler.dagruns.running:1.0|g", "airflow_scheduler_dagruns_running", {}),
    ("airflow.dag_processing.import_errors:0|g", "airflow_dag_processing_import_errors", {}),
    ("airflow.dag_processing.total_parse_time:0.6660161140002856|g", "airflow_dag_processing_total_parse_time_seconds", {}),
    (f"airflow.dag_processing.last_run.seconds_ago.{DAG}:29.911323|g",
     "airflow_dag_processing_last_run_seconds_ago", {"file": DAG}),
    (f"airflow.dag_processing.last_duration.dags-folder.{DAG}:0.259408|ms",
     "airflow_dag_processing_last_duration_seconds", {"bundle": "dags-folder", "file": DAG}),
    ("airflow.dag_processing.last_run.seconds_ago:29.911323|g", None, {}),
    ("airflow.dagbag_size:1|g", "airflow_dagbag_size", {}),
    ("airflow.triggers.running.c9c262d9922f:0|g", "airflow_triggers_running", {"hostname": "c9c262d9922f"}),
    ("airflow.operator_successes_RunnerOperator:1|c", "airflow_operator_successes_total", {"operator": "RunnerOperator"}),
    ("airflow.operator_successes:1|c", None, {}),
    ("airflow.task_instance_created__PythonDecoratedOperator:2|c", "airflow_task_instance_created_total",
     {"operator": "_PythonDecoratedOperator"}),
    ("helical.runner.cpu.pbmc_part_a.duration:3913.032896|ms", "helical_runner_dataset_duration_seconds",
     {"device": "cpu", "dataset": "pbmc_part_a"}),
    ("helical.runner.cpu.pbmc_part_a.stage.embed:2690.900000|ms", "helical_runner_stage_duration_seconds",
     {"device": "cpu", "dataset": "pbmc_part_a", "stage": "embed"}),
    ("helical.runner.cpu.synthetic_counts.stage.classify:905.400000|ms", "helical_runner_stage_duration_seconds",
     {"device": "cpu", "dataset": "synthetic_counts", "stage": "classify"}),
    ("helical.runner.cpu.synthetic_counts.stage.startup:2160|ms", "helical_runner_stage_duration_seconds",
     {"device": "cpu", "dataset": "synthetic_counts", "stage": "startup"}),
    ("helical.runner.cpu.pbmc_part_a.cells:100|c", "helical_runner_cells_total",
     {"device": "cpu", "dataset": "pbmc_part_a"}),
    ("helical.runner.cpu.synthetic_counts.cells_per_second:16.978|g", "helical_runner_cells_per_second",
     {"device": "cpu", "dataset": "synthetic_counts"}),
    ("helical.runner.cpu.pbmc_part_a.classifier_accuracy:0.36|g", "helical_runner_classifier_accuracy",
     {"device": "cpu", "dataset": "pbmc_part_a"}),
    ("helical.runner.cpu.pbmc_part_a.classifier_macro_f1:0.07563025210084033|g", "helical_runner_classifier_macro_f1",
     {"device": "cpu", "dataset": "pbmc_part_a"}),
    ("helical.runner.cpu.pbmc_part_a.test_model:1|g", "helical_runner_test_model",
     {"device": "cpu", "dataset": "pbmc_part_a"}),
]  # fmt: skip

# Sent by Airflow 3.3.2 or the runner only on events the live run did not have.
EVENT_SAMPLES: list[Sample] = [
    # scheduler_job_runner: periodic, non-manual, non-asset-triggered runs only
    (f"airflow.dagrun.schedule_delay.{DAG}:1200|ms", "airflow_dagrun_schedule_delay_seconds", {"dag_id": DAG}),
    (f"airflow.dagrun.{DAG}.first_task_scheduling_delay:300|ms",
     "airflow_dagrun_first_task_scheduling_delay_seconds", {"dag_id": DAG}),
    (f"airflow.ti.scheduled.default.{DAG}.discover_datasets:1|g", "airflow_task_instances",
     {"state": "scheduled", "queue": "default", "dag_id": DAG, "task_id": "discover_datasets"}),
    ("airflow.ti.deferred.cpu.my__dotted__dag.group__task:0|g", "airflow_task_instances",
     {"state": "deferred", "queue": "cpu", "dag_id": "my__dotted__dag", "task_id": "group__task"}),
    (f"airflow.ti.finish.{DAG}.{TASK}.up_for_retry:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": TASK, "state": "up_for_retry"}),
    # celery_executor._send_workloads: publishing to the broker timed out
    ("airflow.celery.task_timeout_error:1|c", "airflow_celery_task_timeout_error_total", {}),
    # task_runner (task SDK): a task raised
    ("airflow.operator_failures_RunnerOperator:1|c", "airflow_operator_failures_total", {"operator": "RunnerOperator"}),
    ("airflow.operator_failures:1|c", None, {}),
    ("airflow.ti_failures:1|c", "airflow_ti_failures_total", {}),
    # the runner on a failed dataset, and on a GPU worker
    ("helical.runner.cpu.pbmc_part_a.failures:1|c", "helical_runner_failures_total",
     {"device": "cpu", "dataset": "pbmc_part_a"}),
    ("helical.runner.cuda.pbmc68k_reduced.stage.embed:61000|ms", "helical_runner_stage_duration_seconds",
     {"device": "cuda", "dataset": "pbmc68k_reduced", "stage": "embed"}),
]  # fmt: skip

# Mapped for other Airflow versions, never sent by 3.3.2: no dashboard or rule may use them.
NOT_SENT_SAMPLES: list[Sample] = [
    (f"airflow.dag.{DAG}.{TASK}.queued_duration:2500|ms", "airflow_task_queued_duration_seconds",
     {"dag_id": DAG, "task_id": TASK}),
    ("airflow.celery.execute_command.failure:1|c", "airflow_celery_execute_command_failure_total", {}),
    (f"airflow.local_task_job.task_exit.42.{DAG}.{TASK}.0:1|c", "airflow_task_exit_total",
     {"dag_id": DAG, "task_id": TASK, "return_code": "0"}),
]  # fmt: skip

SAMPLES: list[Sample] = [*LIVE_SAMPLES, *EVENT_SAMPLES, *NOT_SENT_SAMPLES]

# Label keys each exported metric the dashboards use must carry (for lines captured live).
EXPECTED_SHAPES: dict[str, set[str]] = {}
for _line, _name, _labels in SAMPLES:
    if _name is not None:
        EXPECTED_SHAPES.setdefault(_name, set(_labels))
