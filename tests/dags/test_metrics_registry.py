"""The copy of Airflow's metrics registry that tests/monitoring maps is the one this image sends from."""

from __future__ import annotations

from pathlib import Path

COPY = Path("/opt/airflow/tests/airflow-metrics-registry.yaml")


def test_the_mapping_tests_read_this_airflows_metric_registry():
    from airflow._shared.observability.metrics import metrics_registry

    installed = Path(metrics_registry.__file__).with_name("metrics_template.yaml")
    assert installed.read_text() == COPY.read_text(), (
        f"Airflow's {installed.name} changed: copy it to tests/monitoring/fixtures/airflow-metrics-registry.yaml, "
        "then make test-monitoring shows which new names monitoring/statsd/mapping.yml must map or drop"
    )
