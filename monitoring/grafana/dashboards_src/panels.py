"""Building blocks shared by every dashboard: panels, rows, variables, grid layout.

A dashboard module writes only what its panels ask; where a panel sits, its id and the row headers
between the rows are decided here, once, by `dashboard()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Panel = dict[str, Any]

GRID_WIDTH = 24  # Grafana's dashboard grid has 24 columns


@dataclass(frozen=True)
class Row:
    """One row of a dashboard: a header titled `title`, then `panels` in reading order."""

    title: str
    panels: tuple[Panel, ...]


def row(title: str, *panels: Panel) -> Row:
    """A row; the panels as arguments so a row function reads as a flat list of them."""
    return Row(title, panels)


def quantile(
    histogram: str, by: str = "", *, q: float = 0.95, selector: str = "", window: str = "$__rate_interval"
) -> str:
    """PromQL for the q-quantile of a Prometheus histogram, per `by` labels (comma separated).

    Every latency panel reads its histogram the same way (rate of the buckets, summed by `le`), so
    the expression is spelled once here rather than in each panel.
    """
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{selector}[{window}])))"


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "range": True,
    }


def panel(
    title: str,
    exprs: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    width: int = 12,
    height: int = 8,
    stack: bool = False,
) -> Panel:
    """One panel; `exprs` are (PromQL, legend) pairs."""
    custom: dict[str, Any] = {}
    if kind == "timeseries":
        custom = {
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": True,
        }
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": {
            "defaults": {"unit": unit, "noValue": "0", "custom": custom},
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            }
        }
        if kind == "timeseries"
        else {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}
        },
        "targets": [
            target(expr, legend, chr(ord("A") + i))
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def _row_header(title: str) -> Panel:
    # Expanded, so the row's panels follow it at the top level: Grafana nests them in "panels" only when collapsed.
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"w": GRID_WIDTH, "h": 1},
        "panels": [],
    }


def layout(panels: list[Panel]) -> list[Panel]:
    """Give panels ids and flow them left to right, top to bottom, on Grafana's 24-column grid.

    Row headers need no case of their own: they are 24 wide, so they always fill a line alone.
    """
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        grid["x"], grid["y"] = x, y
        item["id"] = number
        x += grid["w"]
        line_height = max(line_height, grid["h"])
    return panels


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
        "hide": 0,
    }


def custom_variable(name: str, label: str, values: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"text": "All", "value": "$__all"},
        "hide": 0,
        "options": [],
    }


def query_variable(
    name: str, label: str, query: str, regex: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "regex": regex,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "sort": 1,
        "current": {"text": "All", "value": "$__all"},
        "hide": 0,
        "options": [],
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    rows: list[Row],
) -> dict:
    """The dashboard model: each row's header, then its panels, laid out and numbered in order."""
    panels = [item for row in rows for item in (_row_header(row.title), *row.panels)]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["helical", "airflow"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "title": "Helical dashboards",
                "type": "dashboards",
                "tags": ["helical"],
                "asDropdown": True,
            }
        ],
        "panels": layout(panels),
    }

