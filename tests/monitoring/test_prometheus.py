"""Prometheus config, rules and alert tests, checked with promtool; metric names enumerated."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.promql_names import (
    MONITORING,
    RULE_FILES,
    dashboard_expressions,
    metric_names,
    recorded_names,
    rule_expressions,
    rule_names,
)
from tests.monitoring.promtool import promtool

PROMETHEUS_DIR = MONITORING / "prometheus"
ALERT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))

# Series the exporters of this stack export (only those the rules and dashboards may use).
REDIS_EXPORTER = {
    "redis_up",
    "redis_key_size",
    "redis_db_keys",
    "redis_connected_clients",
}
FLOWER = {
    "flower_events_total",
    "flower_task_runtime_seconds_bucket",
    "flower_task_runtime_seconds_sum",
    "flower_task_runtime_seconds_count",
    "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks",
    "flower_worker_online",
    "flower_worker_number_of_currently_executing_tasks",
}
CADVISOR = {
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_memory_usage_bytes",
    "container_spec_memory_limit_bytes",
    "container_last_seen",
    "container_start_time_seconds",
}
PROMETHEUS = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "ALERTS",
    "ALERTS_FOR_STATE",
}


def statsd_mapped_names() -> set[str]:
    """Series names the mapping's rules export (timers are histograms: _bucket, _sum, _count)."""
    mapping = yaml.safe_load((MONITORING / "statsd" / "mapping.yml").read_text(encoding="utf-8"))
    names = set()
    for rule in mapping["mappings"]:
        if rule.get("action") == "drop" or "$" in rule["name"]:
            continue  # the catch-all's statsd_unmapped_<name> is read by nothing
        if rule.get("match_metric_type") == "observer":
            names.update(f"{rule['name']}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(rule["name"])
    return names


def check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"promtool failed:\n{result.stdout}\n{result.stderr}"


def test_config_is_valid() -> None:
    check(promtool("check", "config", "/m/prometheus/prometheus.yml"))


def test_rule_files_are_valid() -> None:
    check(
        promtool(
            "check", "rules", *(f"/m/prometheus/rules/{p.name}" for p in RULE_FILES)
        )
    )


def test_alert_unit_tests_pass() -> None:
    assert ALERT_TESTS, "no promtool tests in monitoring/prometheus/tests"
    check(
        promtool(
            "test", "rules", *(f"/m/prometheus/tests/{p.name}" for p in ALERT_TESTS)
        )
    )


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool has no 'parse this query' command, so each query becomes a recording rule."""
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": expr}
        for i, (_, expr) in enumerate(dashboard_expressions())
    ]
    assert rules, "no dashboard queries found"
    (tmp_path / "dashboards.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})
    )
    tmp_path.chmod(0o755)
    (tmp_path / "dashboards.yml").chmod(0o644)
    result = promtool("check", "rules", "/t/dashboards.yml", extra_dir=tmp_path)
    where = [w for w, _ in dashboard_expressions()]
    check_detail = "\n".join(f"query_{i}: {w}" for i, w in enumerate(where))
    assert result.returncode == 0, (
        f"{result.stdout}\n{result.stderr}\nqueries:\n{check_detail}"
    )


def _alerts() -> set[str]:
    return rule_names("alert")


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in ALERT_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check_ in case.get("alert_rule_test", []):
                (fires if check_.get("exp_alerts") else quiet).add(check_["alertname"])
    alerts = _alerts()
    assert alerts - fires == set(), (
        f"alerts without a case that fires: {sorted(alerts - fires)}"
    )
    assert alerts - quiet == set(), (
        f"alerts without a case that stays quiet: {sorted(alerts - quiet)}"
    )


def test_recording_rules_follow_level_metric_operations() -> None:
    bad = [
        name
        for name in recorded_names()
        if not re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name)
    ]
    assert bad == [], f"recording rules not named level:metric:operations: {bad}"


def produced_names() -> dict[str, set[str]]:
    return {
        "statsd-exporter mapping": statsd_mapped_names(),
        "redis_exporter": REDIS_EXPORTER,
        "flower": FLOWER,
        "cadvisor": CADVISOR,
        "prometheus": PROMETHEUS,
        "recording rules": recorded_names(),
    }


@pytest.mark.parametrize(
    ("where", "expr"),
    [*rule_expressions(), *dashboard_expressions()],
    ids=lambda value: value[:60],
)
def test_every_metric_used_is_produced(where: str, expr: str) -> None:
    known = set().union(*produced_names().values())
    unknown = metric_names(expr) - known
    assert unknown == set(), (
        f"{where}: no mapping rule, exporter or recording rule produces {sorted(unknown)}"
    )


def test_cadvisor_series_used_survive_the_scrape_filter() -> None:
    config = yaml.safe_load(
        (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    )
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cadvisor")
    keep = re.compile(job["metric_relabel_configs"][0]["regex"])
    dropped = [name for name in CADVISOR if not keep.fullmatch(name)]
    assert dropped == [], (
        f"cadvisor metric_relabel_configs drops series the stack uses: {dropped}"
    )


def test_every_scrape_target_is_a_contract_service() -> None:
    config = yaml.safe_load(
        (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    )
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert targets == {
        "localhost:9090",
        "statsd-exporter:9102",
        "redis-exporter:9121",
        "flower:5555",
        "cadvisor:8080",
    }
