"""helical_model_workflow: scGPT embeddings (and an optional cell-type classifier) for every dataset in ./data.

discover_datasets -> choose_queue (branch) -> run_runner_cpu[] | run_runner_gpu[] -> summarize
One mapped runner container per dataset, so datasets spread over the workers of the chosen queue. The queue
is chosen at run time from the `device` param and the queues that live Celery workers consume.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from helical_workflow.contract import CLASSIFIER_MODES, CPU_QUEUE, DEVICE_PARAMS, GPU_QUEUE
from helical_workflow.operator import RunnerOperator
from helical_workflow.settings import RUNNER_POOL

RUNNER_TASK = {CPU_QUEUE: "run_runner_cpu", GPU_QUEUE: "run_runner_gpu"}

with DAG(
    dag_id="helical_model_workflow",
    description="Helical scGPT embeddings + cell-type classifier, one container per .h5ad in ./data",
    schedule=None,
    catchup=False,
    max_active_runs=16,
    tags=["helical", "scgpt"],
    default_args={
        "owner": "helical-platform",
        "queue": CPU_QUEUE,
        "retries": 2,
        "retry_delay": timedelta(seconds=15),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=6),
    },
    params={
        "data": Param("", type="string", title="Datasets",
                      description="A file, folder or glob under ./data (/data); empty = every .h5ad, or the demo "
                                  "dataset when ./data holds none."),
        "device": Param("auto", enum=list(DEVICE_PARAMS), title="Device",
                        description="gpu needs a live GPU worker; auto uses one when present, else cpu."),
        "max_cells": Param(0, type="integer", minimum=0, title="Max cells per dataset",
                           description="Seeded, label-stratified subsample; 0 keeps every cell."),
        "classifier": Param("auto", enum=list(CLASSIFIER_MODES), title="Cell-type classifier",
                            description="auto trains one when the dataset has labels with 2+ classes."),
        "batch_size": Param(None, type=["null", "integer"], minimum=1, maximum=1024, title="Batch size",
                            description="Cells per forward pass; empty = the runner's default."),
    },
    render_template_as_native_obj=True,
) as dag:

    @task
    def discover_datasets() -> list[dict[str, str | None]]:
        """Every selected .h5ad as the runner sees it (/data/...), with its output name, unique within the run."""
        from airflow.sdk.exceptions import AirflowFailException

        from helical_workflow.discovery import DataPatternError, plan_datasets
        from helical_workflow.discovery import discover_datasets as discover
        from helical_workflow.settings import load_settings

        params = get_current_context()["params"]
        try:
            return plan_datasets(discover(load_settings().worker_data_dir, params["data"]))
        except DataPatternError as err:
            raise AirflowFailException(str(err)) from err

    @task.branch
    def choose_queue(datasets: list[dict[str, str | None]]) -> str:
        """Ask Celery which queues live workers consume, then route; device=gpu without one fails fast."""
        from airflow.providers.celery.executors.celery_executor_utils import app as celery_app
        from airflow.sdk.exceptions import AirflowFailException

        from helical_workflow.routing import NoGpuWorkerError, live_queues, route_to_queue

        device = get_current_context()["params"]["device"]
        # Live workers answer a broadcast within milliseconds; the timeout bounds how long we wait for the rest.
        queues = live_queues(celery_app.control.inspect(timeout=2).active_queues())
        try:
            queue = route_to_queue(device, queues)
        except NoGpuWorkerError as err:
            raise AirflowFailException(str(err)) from err
        print(f"device={device}: live queues {sorted(queues)} -> queue {queue} for {len(datasets)} dataset(s)")
        return RUNNER_TASK[queue]

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarize(planned: list[dict[str, str | None]] | None) -> dict[str, Any]:
        """results/<run_id>/summary.json from the datasets' metrics.json and errors; fails if any dataset has none."""
        from airflow.sdk.exceptions import AirflowFailException

        from helical_workflow.discovery import safe_run_id
        from helical_workflow.settings import load_settings
        from helical_workflow.summary import (
            build_summary,
            collect_failures,
            collect_metrics,
            discovery_failed_summary,
            write_json_atomically,
        )

        run_id = safe_run_id(get_current_context()["run_id"])
        run_dir = load_settings().worker_results_dir / run_id
        if planned is None:  # discover_datasets failed, so it returned nothing
            summary = discovery_failed_summary(run_id)
            write_json_atomically(run_dir / "summary.json", summary)
            raise AirflowFailException(summary["error"])
        summary = build_summary(run_id, planned, collect_metrics(run_dir), collect_failures(run_dir))
        write_json_atomically(run_dir / "summary.json", summary)
        if summary["missing"]:
            reasons = "; ".join(f"{path}: {e['error']}" for path, e in summary["errors"].items())
            raise AirflowFailException(f"no outputs for {len(summary['missing'])} dataset(s): {reasons}")
        return summary

    datasets = discover_datasets()
    # The branch skips the runner task of the queue not chosen before it expands, so nothing waits there.
    # The pool bounds CPU runners to the host's CPUs; a backlog waits in `scheduled`, where no timeout applies.
    run_cpu = RunnerOperator.partial(task_id=RUNNER_TASK[CPU_QUEUE], queue=CPU_QUEUE, pool=RUNNER_POOL).expand_kwargs(
        datasets)
    run_gpu = RunnerOperator.partial(task_id=RUNNER_TASK[GPU_QUEUE], queue=GPU_QUEUE, gpu=True).expand_kwargs(datasets)
    choose_queue(datasets) >> [run_cpu, run_gpu] >> summarize(datasets)
