"""Load every DAG file once, as the dag-processor would, recording the warnings our files raise."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pytest

DAGS_FOLDER = Path("/opt/airflow/dags")
sys.path.insert(0, str(DAGS_FOLDER))  # Airflow puts the DAGs folder on sys.path; the DAG imports its package.


@pytest.fixture(scope="session")
def dag_bag_load():
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        bag = DagBag(str(DAGS_FOLDER))
        seconds = time.perf_counter() - started
    ours = [w for w in caught if str(DAGS_FOLDER) in str(w.filename)]
    return bag, ours, seconds


@pytest.fixture(scope="session")
def dag_bag(dag_bag_load):
    return dag_bag_load[0]


@pytest.fixture(scope="session")
def workflow(dag_bag):
    return dag_bag.dags["helical_model_workflow"]
