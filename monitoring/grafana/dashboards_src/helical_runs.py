"""Helical runs: DAG-run durations, task outcomes, scGPT throughput and accuracy, runner containers."""

from __future__ import annotations

from .panels import Row, dashboard, datasource_variable, panel, quantile, query_variable, row

# cAdvisor names a container's Docker labels container_label_*; the runner's labels say which run it serves.
RUN_LABELS = "container_label_helical_dataset, container_label_helical_run_id"
RUN_LEGEND = "{{container_label_helical_dataset}} {{container_label_helical_run_id}}"
DAG_ID = '{dag_id=~"$dag_id"}'


def build() -> dict:
    return dashboard(
        "helical-runs",
        "Helical runs",
        "DAG-run durations, task outcomes, scGPT throughput and accuracy per dataset, runner containers.",
        [
            datasource_variable(),
            query_variable("dag_id", "DAG", "label_values(airflow_ti_finish_total, dag_id)"),
            query_variable("dataset", "Dataset", "label_values(helical_runner_cells_per_second, dataset)"),
        ],
        [row_how_do_dag_runs_end(), row_how_good_and_fast_is_the_model(), row_what_do_runner_containers_use()],
    )


def row_how_do_dag_runs_end() -> Row:
    return row(
        "DAG runs",
        panel(
            "How long do DAG runs take (p50 and p95)?",
            [
                # DAG runs are few and long: an hour of them, not a scrape interval, makes a meaningful quantile.
                (quantile("airflow_dagrun_duration_seconds", "dag_id, state", q=q, selector=DAG_ID, window="1h"), legend)
                for q, legend in ((0.5, "p50 {{dag_id}} {{state}}"), (0.95, "p95 {{dag_id}} {{state}}"))
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
                ('dag_id:airflow_dagrun_duration_seconds:avg7d{dag_id=~"$dag_id"}', "7-day mean {{dag_id}}"),
            ],
            unit="s",
        ),
        panel(
            "How did tasks end in the selected range?",
            [('sum by (state) (increase(airflow_ti_finish_total{dag_id=~"$dag_id"}[$__range]))', "{{state}}")],
            kind="piechart",
            width=8,
        ),
        panel(
            "Which tasks failed?",
            [
                (
                    'sum by (dag_id, task_id) (increase(airflow_ti_finish_total{dag_id=~"$dag_id", state="failed"}'
                    "[$__range])) > 0",
                    "{{dag_id}}.{{task_id}}",
                )
            ],
            kind="bargauge",
            width=8,
        ),
        panel(
            "How long does each task run (p95)?",
            [(quantile("airflow_task_duration_seconds", "dag_id, task_id", selector=DAG_ID), "{{dag_id}}.{{task_id}}")],
            unit="s",
            width=8,
        ),
    )


def row_how_good_and_fast_is_the_model() -> Row:
    return row(
        "Model quality and speed per dataset",
        panel(
            "How many cells per second does each dataset embed?",
            [('helical_runner_cells_per_second{dataset=~"$dataset"}', "{{dataset}} ({{device}})")],
            width=8,
        ),
        panel(
            "How accurate is the cell-type classifier per dataset?",
            [
                ('helical_runner_classifier_accuracy{dataset=~"$dataset"}', "accuracy {{dataset}}"),
                ('helical_runner_classifier_macro_f1{dataset=~"$dataset"}', "macro F1 {{dataset}}"),
            ],
            kind="bargauge",
            unit="percentunit",
            width=8,
        ),
        panel(
            "Did a run use a test checkpoint instead of real scGPT weights?",
            [('max by (dataset) (helical_runner_test_model{dataset=~"$dataset"})', "{{dataset}}")],
            kind="stat",
            width=8,
            description="1: the metrics above come from a tiny test model.",
        ),
        panel(
            "Which runner stage takes the time?",
            [
                (
                    "sum by (stage) (rate(helical_runner_stage_duration_seconds_sum"
                    '{dataset=~"$dataset"}[$__rate_interval])) / sum by (stage) '
                    '(rate(helical_runner_stage_duration_seconds_count{dataset=~"$dataset"}[$__rate_interval]))',
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
    )


def row_what_do_runner_containers_use() -> Row:
    return row(
        "Runner containers",
        panel(
            "How much CPU does each runner container use (cores)?",
            [
                (
                    f"sum by ({RUN_LABELS}) (helical_run:container_cpu_usage_seconds:rate1m"
                    '{container_label_helical_dataset=~"$dataset"})',
                    RUN_LEGEND,
                )
            ],
        ),
        panel(
            "How much memory does each runner container use?",
            [
                (
                    f"max by ({RUN_LABELS}) (helical_run:container_memory_working_set_bytes:max"
                    '{container_label_helical_dataset=~"$dataset"})',
                    RUN_LEGEND,
                )
            ],
            unit="bytes",
        ),
    )
