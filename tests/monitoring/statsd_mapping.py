"""Pure-Python model of prom/statsd-exporter's mapping rules, to test monitoring/statsd/mapping.yml.

statsd-exporter cannot run on the development machine, so the tests map StatsD lines with this
model instead. It follows the exporter's documented semantics (pkg/mapper, README "Glob matching"):

- `match_type` is `glob` unless a rule (or `defaults`) says `regex`.
- A glob is split on `.`; `*` stands for exactly one whole component (any text without a dot),
  every other component must be equal. With ordering on (the default) the first glob rule in
  the file that matches wins.
- Regex rules (Python `re.search`, like Go's unanchored match) are tried only when no glob
  rule matched, in file order.
- `match_metric_type` (counter, gauge, observer; `timer` is an alias) restricts a rule to one
  StatsD type: `c` is a counter, `g` a gauge, `ms`/`h`/`d` an observer.
- `$1` / `${1}` in `name` and `labels` take the n-th capture; `action: drop` discards the line.
- Unmatched names are exported as-is with every character outside `[a-zA-Z0-9_]` turned into `_`.

Usage (also from the e2e test, with lines captured live):

    mapper = Mapper.from_file(REPO / "monitoring/statsd/mapping.yml")
    mapper.map_line("airflow.ti.queued.cpu.my_dag.my_task:1|g")
    # -> Mapped(name="airflow_task_instances", labels={"state": "queued", ...}, ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STATSD_TYPES = {
    "c": "counter",
    "g": "gauge",
    "ms": "observer",
    "h": "observer",
    "d": "observer",
}
_GLOB_COMPONENT = re.compile(r"^(\*|[a-zA-Z_](-?[a-zA-Z0-9_])+)$")
_METRIC_NAME = re.compile(r"^([a-zA-Z_]|\$\{?\d+\}?)([a-zA-Z0-9_]|\$\{?\d+\}?)*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TEMPLATE_REF = re.compile(r"\$\{(\d+)\}|\$(\d+)")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class MappingError(ValueError):
    """The mapping file is one statsd-exporter would refuse."""


@dataclass(frozen=True)
class Rule:
    """One entry of `mappings:`."""

    index: int
    match: str
    match_type: str
    name: str
    labels: dict[str, str]
    action: str
    match_metric_type: str | None
    observer_type: str
    buckets: tuple[float, ...] = ()
    regex: re.Pattern[str] | None = None

    def captures(self, statsd_name: str) -> list[str] | None:
        """The captured groups when this rule matches `statsd_name`, else None."""
        if self.regex is not None:
            found = self.regex.search(statsd_name)
            return None if found is None else [g or "" for g in found.groups()]
        pattern = self.match.split(".")
        parts = statsd_name.split(".")
        if len(pattern) != len(parts):
            return None
        captured: list[str] = []
        for want, got in zip(pattern, parts, strict=True):
            if want == "*":
                captured.append(got)
            elif want != got:
                return None
        return captured


@dataclass(frozen=True)
class Mapped:
    """What statsd-exporter exports for one StatsD line."""

    name: str
    labels: dict[str, str]
    metric_type: str  # counter | gauge | observer (from the StatsD line)
    value: float
    rule: Rule | None = field(default=None, compare=False)

    @property
    def is_histogram(self) -> bool:
        return self.metric_type == "observer" and (
            self.rule is None or self.rule.observer_type == "histogram"
        )


def _expand(template: str, captures: list[str]) -> str:
    def substitute(found: re.Match[str]) -> str:
        number = int(found.group(1) or found.group(2))
        return captures[number - 1] if 0 < number <= len(captures) else ""

    return _TEMPLATE_REF.sub(substitute, template)


def escape_metric_name(statsd_name: str) -> str:
    """The name statsd-exporter gives a metric no rule matched."""
    escaped = _INVALID_NAME_CHARS.sub("_", statsd_name)
    return "_" + escaped if escaped[:1].isdigit() else escaped


@dataclass(frozen=True)
class StatsdLine:
    name: str
    value: float
    statsd_type: str
    sample_rate: float = 1.0


def parse_line(line: str) -> StatsdLine:
    """Parse `name:value|type[|@rate][|#tags]` (tags are ignored: Airflow sends none)."""
    name, sep, rest = line.strip().partition(":")
    fields = rest.split("|")
    if not sep or not name or len(fields) < 2 or fields[1] not in STATSD_TYPES:
        raise ValueError(f"not a StatsD line (want name:value|c|g|ms|h|d): {line!r}")
    rate = 1.0
    for extra in fields[2:]:
        if extra.startswith("@"):
            rate = float(extra[1:])
    value_text = fields[0]
    return StatsdLine(
        name=name, value=float(value_text), statsd_type=fields[1], sample_rate=rate
    )


class Mapper:
    """The rules of one mapping file, applied the way statsd-exporter applies them."""

    def __init__(self, config: dict[str, Any], source: str = "<mapping>") -> None:
        defaults = config.get("defaults") or {}
        default_match_type = defaults.get("match_type", "glob")
        default_observer = (
            defaults.get("observer_type") or defaults.get("timer_type") or "summary"
        )
        default_buckets = tuple(
            (defaults.get("histogram_options") or {}).get("buckets") or ()
        )
        if defaults.get("glob_disable_ordering"):
            raise MappingError(
                f"{source}: glob_disable_ordering would make rule order meaningless"
            )
        self.rules: list[Rule] = []
        for index, raw in enumerate(config.get("mappings") or []):
            self.rules.append(
                self._rule(
                    index,
                    raw,
                    default_match_type,
                    default_observer,
                    default_buckets,
                    source,
                )
            )

    @staticmethod
    def _rule(
        index: int,
        raw: dict[str, Any],
        default_match_type: str,
        default_observer: str,
        default_buckets: tuple[float, ...],
        source: str,
    ) -> Rule:
        where = f"{source}: mapping #{index} ({raw.get('match')!r})"
        match = str(raw.get("match", ""))
        match_type = raw.get("match_type", default_match_type)
        action = raw.get("action", "map")
        name = str(raw.get("name", ""))
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        if match_type not in ("glob", "regex"):
            raise MappingError(f"{where}: match_type must be glob or regex")
        if action not in ("map", "drop"):
            raise MappingError(f"{where}: action must be map or drop")
        if not name or not _METRIC_NAME.match(name):
            raise MappingError(f"{where}: name {name!r} is not a valid metric name")
        for label in labels:
            if not _LABEL_NAME.match(label):
                raise MappingError(f"{where}: label name {label!r} is invalid")
        regex = None
        if match_type == "glob":
            if not all(_GLOB_COMPONENT.match(part) for part in match.split(".")):
                raise MappingError(
                    f"{where}: each glob component must be '*' or an identifier of 2+ chars"
                )
        else:
            regex = re.compile(match)
        metric_type = raw.get("match_metric_type")
        if metric_type == "timer":
            metric_type = "observer"
        if metric_type not in (None, "counter", "gauge", "observer"):
            raise MappingError(f"{where}: match_metric_type {metric_type!r} unknown")
        observer = raw.get("observer_type") or raw.get("timer_type") or default_observer
        buckets = tuple(
            (raw.get("histogram_options") or {}).get("buckets")
            or raw.get("buckets")
            or default_buckets
        )
        if list(buckets) != sorted(buckets):
            raise MappingError(f"{where}: histogram buckets must increase")
        return Rule(
            index,
            match,
            match_type,
            name,
            labels,
            action,
            metric_type,
            observer,
            buckets,
            regex,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Mapper:
        with open(path, encoding="utf-8") as handle:
            return cls(yaml.safe_load(handle) or {}, source=str(path))

    def find(self, statsd_name: str, metric_type: str) -> tuple[Rule, list[str]] | None:
        """The rule statsd-exporter applies to `statsd_name` and its captures, or None."""
        for want_type in ("glob", "regex"):
            for rule in self.rules:
                if rule.match_type != want_type:
                    continue
                if rule.match_metric_type not in (None, metric_type):
                    continue
                captures = rule.captures(statsd_name)
                if captures is not None:
                    return rule, captures
        return None

    def map(
        self, statsd_name: str, statsd_type: str, value: float = 1.0
    ) -> Mapped | None:
        """The exported metric for one sample; None when a rule drops it."""
        metric_type = STATSD_TYPES[statsd_type]
        found = self.find(statsd_name, metric_type)
        if found is None:
            return Mapped(escape_metric_name(statsd_name), {}, metric_type, value)
        rule, captures = found
        if rule.action == "drop":
            return None
        labels = {
            key: _expand(template, captures) for key, template in rule.labels.items()
        }
        return Mapped(_expand(rule.name, captures), labels, metric_type, value, rule)

    def map_line(self, line: str) -> Mapped | None:
        """Map one `name:value|type` line."""
        parsed = parse_line(line)
        value = parsed.value / 1000.0 if parsed.statsd_type == "ms" else parsed.value
        return self.map(parsed.name, parsed.statsd_type, value)

    def exported_names(self) -> set[str]:
        """Every series name the `map` rules produce; `_bucket`/`_sum`/`_count` for observer rules."""
        names: set[str] = set()
        for rule in self.rules:
            if rule.action != "map" or "$" in rule.name:
                continue
            names.add(rule.name)
            if (
                rule.match_metric_type == "observer"
                and rule.observer_type == "histogram"
            ):
                names.update(
                    rule.name + suffix for suffix in ("_bucket", "_sum", "_count")
                )
        return names
