"""Representative StatsD lines of Airflow 3.3.2 and the Helical runner, and what they must become.

Names are taken from Airflow's metrics registry (airflow/_shared/observability/metrics/
metrics_template.yaml: each `legacy_name`) and from docs/contracts.md for the runner. The e2e
test maps the lines it captures live with the same Mapper and compares with EXPECTED_SHAPES.
"""

from __future__ import annotations

DAG = "helical_model_workflow"
TASK = "run_runner_cpu"  # a mapped task: one task_id, many map indexes, no index in the name

# (StatsD line, exported metric name, labels); None = dropped on purpose (tag-less duplicate).
SAMPLES: list[tuple[str, str | None, dict[str, str]]] = [
    ("airflow.executor.open_slots.CeleryExecutor:32|g", "airflow_executor_open_slots", {"executor": "CeleryExecutor"}),
    ("airflow.executor.queued_tasks.CeleryExecutor:2|g", "airflow_executor_queued_tasks", {"executor": "CeleryExecutor"}),
    ("airflow.executor.running_tasks.CeleryExecutor:1|g", "airflow_executor_running_tasks", {"executor": "CeleryExecutor"}),
    ("airflow.executor.open_slots:32|g", None, {}),
    (f"airflow.ti.queued.cpu.{DAG}.{TASK}:3|g", "airflow_task_instances",
     {"state": "queued", "queue": "cpu", "dag_id": DAG, "task_id": TASK}),
    (f"airflow.ti.running.gpu.{DAG}.{TASK}:1|g", "airflow_task_instances",
     {"state": "running", "queue": "gpu", "dag_id": DAG, "task_id": TASK}),
    (f"airflow.ti.scheduled.default.{DAG}.discover_datasets:1|g", "airflow_task_instances",
     {"state": "scheduled", "queue": "default", "dag_id": DAG, "task_id": "discover_datasets"}),
    ("airflow.ti.deferred.cpu.my__dotted__dag.group__task:0|g", "airflow_task_instances",
     {"state": "deferred", "queue": "cpu", "dag_id": "my__dotted__dag", "task_id": "group__task"}),
    ("airflow.ti.queued:3|g", None, {}),
    (f"airflow.ti.start.{DAG}.{TASK}:1|c", "airflow_ti_start_total", {"dag_id": DAG, "task_id": TASK}),
    (f"airflow.ti.finish.{DAG}.{TASK}.success:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": TASK, "state": "success"}),
    (f"airflow.ti.finish.{DAG}.{TASK}.up_for_retry:1|c", "airflow_ti_finish_total",
     {"dag_id": DAG, "task_id": TASK, "state": "up_for_retry"}),
    ("airflow.ti.finish:1|c", None, {}),
    ("airflow.ti.start:1|c", None, {}),
    (f"airflow.dag.{DAG}.{TASK}.duration:41234.5|ms", "airflow_task_duration_seconds",
     {"dag_id": DAG, "task_id": TASK}),
    (f"airflow.dag.{DAG}.{TASK}.queued_duration:2500|ms", "airflow_task_queued_duration_seconds",
     {"dag_id": DAG, "task_id": TASK}),
    (f"airflow.dag.{DAG}.{TASK}.scheduled_duration:800|ms", "airflow_task_scheduled_duration_seconds",
     {"dag_id": DAG, "task_id": TASK}),
    ("airflow.task.duration:41234.5|ms", None, {}),
    (f"airflow.dagrun.duration.success.{DAG}:600000|ms", "airflow_dagrun_duration_seconds",
     {"dag_id": DAG, "state": "success"}),
    (f"airflow.dagrun.duration.failed.{DAG}:60000|ms", "airflow_dagrun_duration_seconds",
     {"dag_id": DAG, "state": "failed"}),
    ("airflow.dagrun.duration.success:600000|ms", None, {}),
    (f"airflow.dagrun.schedule_delay.{DAG}:1200|ms", "airflow_dagrun_schedule_delay_seconds", {"dag_id": DAG}),
    (f"airflow.dagrun.{DAG}.first_task_scheduling_delay:300|ms",
     "airflow_dagrun_first_task_scheduling_delay_seconds", {"dag_id": DAG}),
    (f"airflow.dagrun.dependency-check.{DAG}:12|ms", "airflow_dagrun_dependency_check_seconds", {"dag_id": DAG}),
    ("airflow.pool.open_slots.default_pool:128|g", "airflow_pool_slots", {"pool": "default_pool", "state": "open"}),
    ("airflow.pool.running_slots.gpu_pool:1|g", "airflow_pool_slots", {"pool": "gpu_pool", "state": "running"}),
    ("airflow.pool.starving_tasks.default_pool:0|g", "airflow_pool_starving_tasks", {"pool": "default_pool"}),
    ("airflow.pool.open_slots:128|g", None, {}),
    ("airflow.scheduler_heartbeat:1|c", "airflow_heartbeat_total", {"component": "scheduler"}),
    ("airflow.dag_processor_heartbeat:1|c", "airflow_heartbeat_total", {"component": "dag_processor"}),
    ("airflow.triggerer_heartbeat:1|c", "airflow_heartbeat_total", {"component": "triggerer"}),
    ("airflow.scheduler.scheduler_loop_duration:35.2|ms", "airflow_scheduler_loop_duration_seconds", {}),
    ("airflow.scheduler.critical_section_duration:4.1|ms", "airflow_scheduler_critical_section_duration_seconds", {}),
    ("airflow.scheduler.tasks.starving:0|g", "airflow_scheduler_tasks_starving", {}),
    ("airflow.scheduler.tasks.executable:2|g", "airflow_scheduler_tasks_executable", {}),
    ("airflow.dag_processing.import_errors:0|g", "airflow_dag_processing_import_errors", {}),
    ("airflow.dag_processing.total_parse_time:1.7|g", "airflow_dag_processing_total_parse_time_seconds", {}),
    ("airflow.dag_processing.last_run.seconds_ago.helical_scgpt:12.5|g",
     "airflow_dag_processing_last_run_seconds_ago", {"file": "helical_scgpt"}),
    ("airflow.dag_processing.last_duration.dags-folder.helical_scgpt:830|ms",
     "airflow_dag_processing_last_duration_seconds", {"bundle": "dags-folder", "file": "helical_scgpt"}),
    ("airflow.dagbag_size:2|g", "airflow_dagbag_size", {}),
    ("airflow.celery.execute_command.failure:1|c", "airflow_celery_execute_command_failure_total", {}),
    ("airflow.operator_failures_DockerOperator:1|c", "airflow_operator_failures_total", {"operator": "DockerOperator"}),
    ("airflow.operator_failures:1|c", None, {}),
    ("airflow.local_task_job.task_exit.42.helical_model_workflow.run_runner_cpu.0:1|c", "airflow_task_exit_total",
     {"dag_id": DAG, "task_id": TASK, "return_code": "0"}),
    ("helical.runner.cpu.pbmc68k_reduced.duration:95000|ms", "helical_runner_dataset_duration_seconds",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
    ("helical.runner.cuda.pbmc68k_reduced.stage.embed:61000|ms", "helical_runner_stage_duration_seconds",
     {"device": "cuda", "dataset": "pbmc68k_reduced", "stage": "embed"}),
    ("helical.runner.cpu.pbmc68k_reduced.cells:700|c", "helical_runner_cells_total",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
    ("helical.runner.cpu.pbmc68k_reduced.cells_per_second:7.4|g", "helical_runner_cells_per_second",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
    ("helical.runner.cpu.pbmc68k_reduced.classifier_accuracy:0.81|g", "helical_runner_classifier_accuracy",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
    ("helical.runner.cpu.pbmc68k_reduced.classifier_macro_f1:0.62|g", "helical_runner_classifier_macro_f1",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
    ("helical.runner.cpu.pbmc68k_reduced.failures:1|c", "helical_runner_failures_total",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
    ("helical.runner.cpu.pbmc68k_reduced.test_model:1|g", "helical_runner_test_model",
     {"device": "cpu", "dataset": "pbmc68k_reduced"}),
]  # fmt: skip

# Label keys each exported metric the dashboards use must carry (for lines captured live).
EXPECTED_SHAPES: dict[str, set[str]] = {}
for _line, _name, _labels in SAMPLES:
    if _name is not None:
        EXPECTED_SHAPES.setdefault(_name, set(_labels))
