"""The StatsD mapping model itself, and monitoring/statsd/mapping.yml against real names."""

from __future__ import annotations

from collections import defaultdict

import pytest

from promql_names import MONITORING
from statsd_mapping import Mapper, MappingError, escape_metric_name, parse_line
from statsd_samples import EXPECTED_SHAPES, SAMPLES

MAPPING = MONITORING / "statsd" / "mapping.yml"


def mapper_of(*rules: dict, defaults: dict | None = None) -> Mapper:
    return Mapper({"defaults": defaults or {}, "mappings": list(rules)})


class TestModel:
    def test_star_matches_exactly_one_component(self) -> None:
        mapper = mapper_of({"match": "aa.*.cc", "name": "m", "labels": {"x": "$1"}})
        assert mapper.map("aa.bb.cc", "c").labels == {"x": "bb"}
        assert (
            mapper.map("aa.bb.bb.cc", "c").name == "aa_bb_bb_cc"
        )  # no match: escaped pass-through
        assert mapper.map("aa.cc", "c").name == "aa_cc"

    def test_first_matching_glob_wins(self) -> None:
        mapper = mapper_of(
            {"match": "aa.*.cc", "name": "wide", "labels": {"x": "$1"}},
            {"match": "aa.bb.cc", "name": "exact"},
        )
        assert mapper.map("aa.bb.cc", "g").name == "wide"

    def test_regex_only_when_no_glob_matches(self) -> None:
        mapper = mapper_of(
            {
                "match": r"^aa\.(.*)$",
                "match_type": "regex",
                "name": "re",
                "labels": {"rest": "$1"},
            },
            {"match": "aa.bb", "name": "glob"},
        )
        assert mapper.map("aa.bb", "c").name == "glob"
        assert mapper.map("aa.zz", "c").labels == {"rest": "zz"}

    def test_substitution_in_name_and_braced_form(self) -> None:
        mapper = mapper_of(
            {"match": "xx.*.*", "name": "m_$1", "labels": {"both": "${2}-$1"}}
        )
        found = mapper.map("xx.cpu.qq", "g")
        assert (found.name, found.labels) == ("m_cpu", {"both": "qq-cpu"})

    def test_match_metric_type_restricts_the_rule(self) -> None:
        mapper = mapper_of(
            {"match": "aa.bb", "name": "t", "match_metric_type": "observer"}
        )
        assert mapper.map("aa.bb", "ms").name == "t"
        assert mapper.map("aa.bb", "g").name == "aa_bb"

    def test_drop_action(self) -> None:
        mapper = mapper_of({"match": "aa.*", "name": "dropped", "action": "drop"})
        assert mapper.map("aa.bb", "c") is None

    def test_invalid_rules_are_refused(self) -> None:
        with pytest.raises(MappingError):
            mapper_of({"match": "aa.bb*", "name": "m"})
        with pytest.raises(MappingError):
            mapper_of({"match": "aa.b", "name": "m"})  # statsd-exporter wants 2+ chars
        with pytest.raises(MappingError):
            mapper_of({"match": "aa.bb", "name": "bad-name"})
        with pytest.raises(MappingError):
            mapper_of({"match": "aa.bb", "name": "m", "labels": {"0x": "y"}})

    def test_lines_parse_and_timers_become_seconds(self) -> None:
        assert parse_line("aa.bb:1|c|@0.5").sample_rate == 0.5
        assert (
            mapper_of({"match": "aa.bb", "name": "t"}).map_line("aa.bb:250|ms").value
            == 0.25
        )
        with pytest.raises(ValueError):
            parse_line("aa.bb 1")

    def test_unmatched_names_are_escaped(self) -> None:
        assert escape_metric_name("airflow.dag-x.1") == "airflow_dag_x_1"
        assert escape_metric_name("1a") == "_1a"


@pytest.fixture(scope="module")
def mapper() -> Mapper:
    return Mapper.from_file(MAPPING)


@pytest.mark.parametrize(
    ("line", "name", "labels"), SAMPLES, ids=[s[0].split(":")[0] for s in SAMPLES]
)
def test_real_names_map_to_what_dashboards_query(
    mapper: Mapper, line: str, name: str | None, labels: dict[str, str]
) -> None:
    found = mapper.map_line(line)
    if name is None:
        assert found is None, (
            f"{line} should be dropped (tag-less duplicate), became {found}"
        )
        return
    assert found is not None and found.rule is not None, f"{line} matched no rule"
    assert (found.name, found.labels) == (name, labels)


def test_rules_with_one_name_agree_on_type_labels_and_help(mapper: Mapper) -> None:
    """statsd-exporter refuses a second type or label set under one metric name."""
    seen: dict[str, set[tuple]] = defaultdict(set)
    for rule in mapper.rules:
        if rule.action == "map":
            seen[rule.name].add((rule.match_metric_type, tuple(sorted(rule.labels))))
    clashes = {name: shapes for name, shapes in seen.items() if len(shapes) > 1}
    assert clashes == {}


def test_every_map_rule_names_its_statsd_type(mapper: Mapper) -> None:
    untyped = [
        rule.match
        for rule in mapper.rules
        if rule.action == "map" and rule.match_metric_type is None
    ]
    assert untyped == []


def test_every_map_rule_is_reachable(mapper: Mapper) -> None:
    """An earlier, wider glob would shadow a rule; feed each glob its own shape."""
    for rule in mapper.rules:
        if rule.match_type != "glob":
            continue
        name = rule.match.replace("*", "probe")
        statsd_type = {"counter": "c", "gauge": "g", "observer": "ms", None: "c"}[
            rule.match_metric_type
        ]
        found = mapper.find(
            name, {"c": "counter", "g": "gauge", "ms": "observer"}[statsd_type]
        )
        assert found is not None and found[0].index == rule.index, (
            f"{rule.match} is shadowed by {found}"
        )


def test_expected_shapes_cover_every_runner_metric_of_the_contract() -> None:
    runner = {name for name in EXPECTED_SHAPES if name.startswith("helical_runner_")}
    assert runner == {
        "helical_runner_dataset_duration_seconds",
        "helical_runner_stage_duration_seconds",
        "helical_runner_cells_total",
        "helical_runner_cells_per_second",
        "helical_runner_classifier_accuracy",
        "helical_runner_classifier_macro_f1",
        "helical_runner_failures_total",
        "helical_runner_test_model",
    }
