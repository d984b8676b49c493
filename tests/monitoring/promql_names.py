"""Read the PromQL of this stack (rules, dashboards) and the metric names it uses.

Shared by the static tests and the e2e test. No PromQL parser exists for Python, so names are
found lexically: strings, label matchers, ranges and grouping clauses are cut out first, and
what remains that looks like an identifier, is not a keyword and is not called like a function
is a metric name. promtool (check rules) separately proves every expression parses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULE_FILES = sorted((MONITORING / "prometheus" / "rules").glob("*.yml"))
DASHBOARD_FILES = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))

# What Grafana puts in place of its variables before the query reaches Prometheus.
GRAFANA_SUBSTITUTES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)"
)
_NUMBER = re.compile(
    r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?)+(?![\w:])"
)
_IDENTIFIER = re.compile(r"(?<![\w:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip


def substitute_grafana_variables(expr: str) -> str:
    """The query as Prometheus receives it, with example values for dashboard variables."""

    def value(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return GRAFANA_SUBSTITUTES.get(name, "x")

    return _VARIABLE.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (Grafana variables already substituted)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    while _BRACKETS.search(text):
        text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for found in _IDENTIFIER.finditer(text):
        name, called = found.group(1), found.group(2)
        if not called and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(where, expr) for every recording and alerting rule."""
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule.get("alert")
                yield f"{path.name}: {name}", rule["expr"]


def rule_names(kind: str) -> set[str]:
    """Names of every rule of one kind ("record" or "alert") in the rule files."""
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names.update(rule[kind] for rule in group["rules"] if kind in rule)
    return names


def recorded_names() -> set[str]:
    return rule_names("record")


def dashboard_panels(path: Path) -> Iterator[dict]:
    for item in json.loads(path.read_text(encoding="utf-8"))["panels"]:
        yield item
        yield from item.get("panels", [])


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel query, Grafana variables substituted."""
    for path in DASHBOARD_FILES:
        for item in dashboard_panels(path):
            for query in item.get("targets", []):
                where = f"{path.name}: {item['title']} [{query['refId']}]"
                yield where, substitute_grafana_variables(query["expr"])
