"""The DAG reads what the runner writes: each schema's examples (runner/schemas/) go through the DAG's readers.

The runner's tests check that everything it writes validates against the same schemas, so a change on either
side that breaks the other fails one of the two suites.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema
import pytest

from helical_workflow.contract import runner_summary
from helical_workflow.discovery import plan_datasets
from helical_workflow.summary import build_summary, collect_failures, collect_metrics

SCHEMAS = Path(__file__).resolve().parents[2] / "runner" / "schemas"


@functools.cache
def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


@pytest.mark.parametrize("name", ["summary", "metrics", "failure"])
def test_each_schema_is_valid_and_its_examples_follow_it(name):
    jsonschema.Draft202012Validator.check_schema(schema(name))
    assert schema(name)["examples"]
    for example in schema(name)["examples"]:
        jsonschema.validate(example, schema(name))


def test_the_operator_finds_the_summary_line_among_the_log_lines():
    for example in schema("summary")["examples"]:
        lines = ["2026-11-27 10:00:00 INFO helical_runner: run r: 1 dataset(s)", json.dumps(example),
                 "2026-11-27 10:00:09 WARNING helical_runner: a stderr line interleaved after it"]
        assert runner_summary(lines) == example
        # Seen in a load test: stdout's JSON and its newline arrived in two frames, a stderr line between them.
        joined = [json.dumps(example) + "2026-11-27 10:00:09 INFO helical_runner.pipeline: dataset x: ok", ""]
        assert runner_summary(joined) == example


def test_the_run_summary_reads_published_metrics_and_failure_files(tmp_path):
    (metrics,) = schema("metrics")["examples"]
    (failure,) = schema("failure")["examples"]
    published = tmp_path / metrics["dataset"]
    published.mkdir()
    (published / "metrics.json").write_text(json.dumps(metrics))
    failed_name = "lab2__y"
    (tmp_path / f"{failed_name}.failed.json").write_text(json.dumps({**failure, "dataset": failed_name}))
    planned = plan_datasets([metrics["source"], "/data/lab2/y.h5ad"])
    summary = build_summary("r1", planned, collect_metrics(tmp_path), collect_failures(tmp_path))
    assert summary["datasets_done"] == 1 and summary["missing"] == ["/data/lab2/y.h5ad"]
    assert summary["errors"]["/data/lab2/y.h5ad"] == {"error": failure["error"], "exit_class": failure["exit_class"]}
    assert summary["cells"] == metrics["cells"]
