"""Grafana dashboards and provisioning: generated, checked in, and wired to the datasource."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import dashboards_src
from tests.monitoring.promql_names import DASHBOARD_FILES, MONITORING, dashboard_panels

GRAFANA = MONITORING / "grafana"


def test_checked_in_json_equals_generated() -> None:
    rendered = dashboards_src.render()
    assert sorted(rendered) == sorted(p.name for p in DASHBOARD_FILES)
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run make generate"
        )


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_shape(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables
    for item in dashboard_panels(path):
        if item["type"] == "row":
            continue
        assert item["title"].endswith("?"), (
            f"{path.name}: panel title is not a question: {item['title']}"
        )
        assert item["datasource"]["uid"] == "${datasource}"
        assert item["targets"], f"{path.name}: {item['title']} has no query"
        for query in item["targets"]:
            for used in ("$queue", "$worker", "$dag_id", "$dataset"):
                if used in query["expr"]:
                    assert used[1:] in variables, (
                        f"{path.name}: {used} used but not defined"
                    )


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_rows_tile_the_grid(path: Path) -> None:
    """panels.layout places every panel once: no overlap, inside 24 columns, between its row header and the next.

    Grafana silently moves overlapping panels, and a row function that returns no panel leaves an empty header.
    """
    items = json.loads(path.read_text(encoding="utf-8"))["panels"]
    assert [item["id"] for item in items] == list(range(1, len(items) + 1))
    assert items[0]["type"] == "row", f"{path.name}: the first panel has no row"
    cells: dict[tuple[int, int], str] = {}
    bottom = 0  # the lowest edge of everything placed so far
    for item, following in zip(items, [*items[1:], None], strict=True):
        grid, title = item["gridPos"], item["title"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"{path.name}: {title} leaves the grid"
        if item["type"] == "row":
            assert (grid["x"], grid["w"]) == (0, 24), f"{path.name}: row {title} is not full width"
            assert following and following["type"] != "row", f"{path.name}: row {title} has no panels"
            assert grid["y"] >= bottom, f"{path.name}: row {title} starts above the end of the row before"
        bottom = max(bottom, grid["y"] + grid["h"])
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{path.name}: {title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = title


def test_titles_and_uids_are_unique() -> None:
    boards = [json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARD_FILES]
    assert {b["title"] for b in boards} == {
        "Queues & workers",
        "Helical runs",
        "Airflow health",
    }
    assert len({b["uid"] for b in boards}) == len(boards)


def test_provisioning_points_at_the_dashboards_and_a_fixed_datasource_uid() -> None:
    provisioning = GRAFANA / "provisioning"
    datasource = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert (datasource["uid"], datasource["url"]) == (
        "prometheus",
        "http://prometheus:9090",
    )
    provider = yaml.safe_load(
        (provisioning / "dashboards" / "helical.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    for path in DASHBOARD_FILES:
        board = json.loads(path.read_text(encoding="utf-8"))
        default = next(
            v for v in board["templating"]["list"] if v["name"] == "datasource"
        )
        assert default["current"]["value"] == datasource["uid"]
