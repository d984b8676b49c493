"""Replay StatsD lines Airflow 3.3.2 and the runner really sent through the mapping.

fixtures/statsd-live-sample.txt is a trimmed copy of one live end-to-end run (one line per
distinct name and type). Every metric a dashboard or rule uses that comes from the StatsD
mapping must be produced by one of its lines, so a query on a name Airflow 3.3.2 never sends
(its task queued_duration, celery.execute_command.failure) fails here instead of showing an
empty panel or an alert that can never fire.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promql_names import MONITORING, dashboard_expressions, metric_names, rule_expressions
from statsd_mapping import Mapper
from statsd_samples import EVENT_SAMPLES, LIVE_SAMPLES, NOT_SENT_SAMPLES

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "statsd-live-sample.txt"

# Used by a dashboard or rule, sent by Airflow 3.3.2 or the runner, but only on an event the
# live run did not have. Each needs a line in statsd_samples.EVENT_SAMPLES.
EVENT_ONLY = {
    # scheduler_job_runner: only for periodic runs the scheduler creates (the run was manual)
    "airflow_dagrun_schedule_delay_seconds",
    # celery_executor._send_workloads: only when publishing to Redis times out
    "airflow_celery_task_timeout_error_total",
    # the runner: only when a dataset fails (the run's datasets all succeeded)
    "helical_runner_failures_total",
}


def fixture_lines() -> list[str]:
    text = FIXTURE.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def mapper() -> Mapper:
    return Mapper.from_file(MONITORING / "statsd" / "mapping.yml")


def family(name: str, mapper: Mapper) -> str:
    """The mapped metric a query name belongs to (histogram series lose _bucket/_sum/_count)."""
    mapped = {rule.name for rule in mapper.rules if rule.action == "map"}
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in mapped:
            return name.removesuffix(suffix)
    return name


def used_mapped_names(mapper: Mapper) -> dict[str, list[str]]:
    """{mapped metric: [where used]} for every dashboard query and rule."""
    exported = mapper.exported_names()
    used: dict[str, list[str]] = {}
    for where, expr in [*rule_expressions(), *dashboard_expressions()]:
        for name in metric_names(expr) & exported:
            used.setdefault(family(name, mapper), []).append(where)
    return used


def produced(mapper: Mapper) -> set[str]:
    return {m.name for line in fixture_lines() if (m := mapper.map_line(line)) is not None and m.rule is not None}


def test_fixture_is_a_trimmed_capture() -> None:
    lines = fixture_lines()
    assert 50 <= len(lines) <= 300, f"{FIXTURE.name}: {len(lines)} lines, keep one per distinct name"
    assert len(set(lines)) == len(lines), f"{FIXTURE.name} repeats lines"


def test_every_mapped_name_a_query_uses_is_sent(mapper: Mapper) -> None:
    used = used_mapped_names(mapper)
    assert used, "no dashboard or rule uses a mapped metric: the name extraction broke"
    missing = {name: where for name, where in used.items() if name not in produced(mapper) and name not in EVENT_ONLY}
    assert missing == {}, f"used, but Airflow 3.3.2 / the runner sent no line for them: {missing}"


def test_event_only_names_are_used_unseen_and_mapped(mapper: Mapper) -> None:
    """The allow-list stays minimal: each entry is queried, absent from the capture, and mapped."""
    used, seen = used_mapped_names(mapper), produced(mapper)
    assert EVENT_ONLY - set(used) == set(), "allow-listed but no longer queried: drop from EVENT_ONLY"
    assert EVENT_ONLY & seen == set(), "allow-listed but in the capture: drop from EVENT_ONLY"
    assert EVENT_ONLY <= {name for _, name, _ in EVENT_SAMPLES}, "each EVENT_ONLY name needs a line in EVENT_SAMPLES"


def test_names_airflow_3_3_2_never_sends_are_not_queried(mapper: Mapper) -> None:
    used = used_mapped_names(mapper)
    queried = {name: used[name] for _, name, _ in NOT_SENT_SAMPLES if name in used}
    assert queried == {}


def test_live_samples_are_lines_of_the_capture() -> None:
    lines = set(fixture_lines())
    assert [line for line, _, _ in LIVE_SAMPLES if line not in lines] == []


def test_no_captured_name_with_an_id_passes_through_unmapped(mapper: Mapper) -> None:
    """A name that embeds a DAG, task, queue or dataset but matches no rule would grow one metric per id."""
    ids = ("helical_model_workflow", "pbmc_part", "synthetic_counts", "cpu", "gpu", "default_pool")
    leaks = [
        line
        for line in fixture_lines()
        if (m := mapper.map_line(line)) is not None and m.rule is None and any(i in m.name for i in ids)
    ]
    assert leaks == []
