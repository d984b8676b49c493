"""Policies over every DAG (Astronomer's template style) and the workflow's params, under Airflow 3.3.2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helical_workflow.contract import QUEUES, RUN_PARAM_NAMES
from helical_workflow.names import CPU_QUEUE, DAG_ID, GPU_QUEUE


def test_every_dag_imports_without_errors_or_warnings(dag_bag_load):
    bag, our_warnings, _ = dag_bag_load
    assert not bag.import_errors, bag.import_errors
    assert not our_warnings, [f"{w.filename}:{w.lineno} {w.message}" for w in our_warnings]
    assert DAG_ID in bag.dags


def test_parsing_takes_under_a_second(dag_bag_load):
    assert dag_bag_load[2] < 1.0, f"DagBag fill took {dag_bag_load[2]:.2f}s: a heavy import at parse time?"


def test_no_heavy_imports_at_parse_time():
    # A fresh interpreter, so modules imported by other tests do not count.
    code = (
        "import sys; sys.path.insert(0, '/opt/airflow/dags'); import helical_model_workflow; "
        "print('HEAVY:', *(m for m in ('torch', 'scanpy', 'helical', 'anndata', 'pandas', 'celery') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy = out[out.rindex("HEAVY:"):].split()[1:]
    assert heavy == [], f"imported at parse time: {heavy}"


def test_every_task_names_a_real_queue(dag_bag):
    for dag in dag_bag.dags.values():
        for task in dag.tasks:
            assert task.queue in QUEUES, f"{dag.dag_id}.{task.task_id} is on queue {task.queue!r}"


def test_every_task_retries(dag_bag):
    for dag in dag_bag.dags.values():
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has no retry policy"


def test_runner_tasks_are_mapped_per_dataset_and_routed(workflow):
    cpu, gpu = workflow.get_task("run_runner_cpu"), workflow.get_task("run_runner_gpu")
    assert cpu.queue == CPU_QUEUE and gpu.queue == GPU_QUEUE
    assert cpu.is_mapped and gpu.is_mapped
    # CPU runners take a slot of the pool that bounds them to the host's CPUs (compose/airflow/init.sh).
    from helical_workflow.settings import RUNNER_POOL

    assert cpu.pool == RUNNER_POOL and gpu.pool == "default_pool"
    assert workflow.get_task("choose_queue").downstream_task_ids == {"run_runner_cpu", "run_runner_gpu"}
    # Routing runs beside discovery, not after it: the runners wait for both, one task start after the trigger.
    assert workflow.get_task("choose_queue").upstream_task_ids == set()
    assert workflow.get_task("run_runner_cpu").upstream_task_ids == {"discover_datasets", "choose_queue"}
    assert workflow.get_task("summarize").upstream_task_ids >= {"run_runner_cpu", "run_runner_gpu"}


def test_params_schema(workflow):
    params = workflow.params
    assert tuple(params.keys()) == RUN_PARAM_NAMES  # what RunParams reads, and the load test sends
    assert params.get_param("device").schema["enum"] == ["auto", "cpu", "gpu"]
    assert params.get_param("classifier").schema["enum"] == ["auto", "on", "off"]
    params.validate()  # the defaults are valid


@pytest.mark.parametrize(
    ("name", "value"),
    [("device", "tpu"), ("max_cells", -1), ("classifier", "maybe"), ("batch_size", 0), ("data", 3),
     ("datasets_per_task", 0)],
)
def test_params_reject_bad_values(workflow, name, value):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(workflow.params)
    with pytest.raises(ParamValidationError):
        params[name] = value
