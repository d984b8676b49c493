"""helical_model_workflow: scGPT embeddings (and an optional cell-type classifier) for every dataset in ./data.

discover_datasets + choose_queue (branch, beside it) -> run_runner_cpu[] | run_runner_gpu[] -> summarize
One mapped runner container per pack of `datasets_per_task` datasets (default one each), so datasets spread over
the workers of the chosen queue; packing many small files pays a container's start-up once per pack. The queue
is chosen at run time from the `device` param and the queues that live Celery workers consume.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from helical_workflow import capacity
from helical_workflow.broker import task_execution_timeout
from helical_workflow.contract import CLASSIFIER_MODES, CPU_QUEUE, DEVICE_PARAMS, GPU_QUEUE, RunParams
from helical_workflow.names import DAG_ID
from helical_workflow.runner_launch import runner_operator_class
from helical_workflow.settings import RUNNER_POOL, load_settings

DEFAULTS = RunParams()
RUNNER_TASK = {CPU_QUEUE: "run_runner_cpu", GPU_QUEUE: "run_runner_gpu"}
# A container on the Docker engine, or a Kubernetes pod (RUNNER_LAUNCH_MODE): the same contract, runner_launch.py.
RunnerOperator = runner_operator_class(load_settings().launch_mode)

with DAG(
    dag_id=DAG_ID,
    description="Helical scGPT embeddings + cell-type classifier, one container per .h5ad (or pack) in ./data",
    schedule=None,
    catchup=False,
    max_active_runs=capacity.MAX_ACTIVE_RUNS,
    # Per run (Airflow 3): one run may fill every runner slot of the cluster (helical_workflow/capacity.py).
    max_active_tasks=capacity.from_environment(os.environ).max_active_tasks_per_run,
    tags=["helical", "scgpt"],
    default_args={
        "owner": "helical-platform",
        "queue": CPU_QUEUE,
        "retries": 2,
        "retry_delay": timedelta(seconds=15),
        "retry_exponential_backoff": True,
        # TASK_EXECUTION_TIMEOUT; Celery's visibility timeout is derived to outlast it (helical_workflow/broker.py).
        "execution_timeout": timedelta(seconds=task_execution_timeout(os.environ)),
    },
    # RunParams (contract.py) has the same names and defaults, and is how the tasks read them.
    params={
        "data": Param(DEFAULTS.data, type="string", title="Datasets",
                      description="A file, folder or glob under ./data (/data); empty = every .h5ad, or the demo "
                                  "dataset when ./data holds none."),
        "device": Param(DEFAULTS.device, enum=list(DEVICE_PARAMS), title="Device",
                        description="gpu needs a live GPU worker; auto uses one when present, else cpu."),
        "max_cells": Param(DEFAULTS.max_cells, type="integer", minimum=0, title="Max cells per dataset",
                           description="Seeded, label-stratified subsample; 0 keeps every cell."),
        "classifier": Param(DEFAULTS.classifier, enum=list(CLASSIFIER_MODES), title="Cell-type classifier",
                            description="auto trains one when the dataset has labels with 2+ classes."),
        "datasets_per_task": Param(DEFAULTS.datasets_per_task, type="integer", minimum=1, title="Datasets per container",
                                   description="Pack small datasets so a container's start-up is paid once per "
                                               "pack; outputs, errors and metrics stay per dataset."),
        "batch_size": Param(DEFAULTS.batch_size, type=["null", "integer"], minimum=1, maximum=1024, title="Batch size",
                            description="Cells per forward pass; empty = the runner's default."),
    },
    render_template_as_native_obj=True,
) as dag:

    @task
    def discover_datasets() -> list[dict[str, Any]]:
        """Every selected .h5ad as the runner sees it (/data/...), with its output name, unique within the run,
        in packs of `datasets_per_task`, or larger ones past MAX_RUNNER_TASKS packs: one mapped runner task each."""
        from airflow.sdk.exceptions import AirflowFailException

        from helical_workflow.discovery import DataPatternError, TooManyDatasetsError, plan_datasets, plan_packs
        from helical_workflow.discovery import discover_datasets as discover
        from helical_workflow.settings import load_settings

        params = RunParams.of(get_current_context()["params"])
        settings = load_settings()
        try:  # a planning error fails the run at once: no retry can change the data folder or the settings
            planned = plan_datasets(discover(settings.worker_data_dir, params.data))
            return plan_packs(planned, params.datasets_per_task, settings.max_runner_tasks,
                              settings.max_datasets_per_run)
        except (DataPatternError, TooManyDatasetsError) as err:
            raise AirflowFailException(str(err)) from err

    @task.branch
    def choose_queue() -> str:
        """Ask Celery which queues live workers consume, then route; device=gpu without one fails fast.

        Beside discover_datasets, not after it: a run reaches its runners one task start sooner.
        """
        from airflow.providers.celery.executors.celery_executor_utils import app as celery_app
        from airflow.sdk.exceptions import AirflowFailException

        from helical_workflow.routing import NoGpuWorkerError, live_queues, registered_workers, route_to_queue

        device = RunParams.of(get_current_context()["params"]).device
        queues: set[str] = set()
        if device != "cpu":  # cpu needs no worker census
            # Live workers answer within milliseconds: wait for as many replies as workers registered, and
            # bound the wait for the rest (a worker killed without shutting down stays registered).
            inspect = celery_app.control.inspect(timeout=2, limit=registered_workers(celery_app))
            queues = live_queues(inspect.active_queues())
        try:
            queue = route_to_queue(device, queues)
        except NoGpuWorkerError as err:
            raise AirflowFailException(str(err)) from err
        print(f"device={device}: live queues {sorted(queues) or 'not asked'} -> queue {queue}")
        return RUNNER_TASK[queue]

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarize(packs: list[dict[str, Any]] | None) -> dict[str, Any]:
        """results/<run_id>/summary.json from the datasets' metrics.json and errors; fails if any dataset has none."""
        from airflow.sdk.exceptions import AirflowFailException

        from helical_workflow.discovery import describe_packing, planned_of, run_folder
        from helical_workflow.settings import load_settings
        from helical_workflow.summary import (
            build_summary,
            collect_failures,
            collect_metrics,
            discovery_failed_summary,
            write_json_atomically,
        )

        context = get_current_context()
        settings = load_settings()
        run_dir = run_folder(settings.worker_results_dir, context["run_id"])
        run_id = run_dir.name  # the runners' --run-id (the runner operators pass safe_run_id too)
        if packs is None:  # discover_datasets failed, so it returned nothing
            summary = discovery_failed_summary(run_id)
            write_json_atomically(run_dir / "summary.json", summary)
            raise AirflowFailException(summary["error"])
        summary = build_summary(run_id, planned_of(packs), collect_metrics(run_dir), collect_failures(run_dir))
        summary["packing"] = describe_packing(packs, RunParams.of(context["params"]).datasets_per_task,
                                              settings.max_runner_tasks)
        write_json_atomically(run_dir / "summary.json", summary)
        if summary["missing"]:
            reasons = "; ".join(f"{path}: {e['error']}" for path, e in list(summary["errors"].items())[:20])
            raise AirflowFailException(f"no outputs for {len(summary['missing'])} dataset(s) (summary.json names "
                                       f"each): {reasons}")
        # The totals only: summary.json holds every dataset's metrics, too much for an XCom at 10,000 datasets.
        return {key: value for key, value in summary.items() if key != "datasets"}

    packs = discover_datasets()
    # The branch skips the runner task of the queue not chosen before it expands, so nothing waits there.
    # The pool bounds CPU runners to the host's CPUs; a backlog waits in `scheduled`, where no timeout applies.
    run_cpu = RunnerOperator.partial(task_id=RUNNER_TASK[CPU_QUEUE], queue=CPU_QUEUE, pool=RUNNER_POOL).expand_kwargs(
        packs)
    run_gpu = RunnerOperator.partial(task_id=RUNNER_TASK[GPU_QUEUE], queue=GPU_QUEUE, gpu=True).expand_kwargs(packs)
    choose_queue() >> [run_cpu, run_gpu] >> summarize(packs)
