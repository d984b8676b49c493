"""Every alert links to its section of docs/runbooks.md, and every section says what the alert means, how to
confirm it and what to do."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.monitoring.promql_names import MONITORING, REPO

RUNBOOKS = REPO / "docs" / "runbooks.md"
ALERTS = [rule for group in yaml.safe_load((MONITORING / "prometheus" / "rules" / "alerts.yml").read_text())["groups"]
          for rule in group["rules"] if "alert" in rule]
PARTS = ("**What it means.**", "**How to confirm.**", "**What to do.**")


def anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections() -> dict[str, str]:
    """{anchor: text} of the level-2 sections of docs/runbooks.md."""
    found, current = {}, None
    for line in RUNBOOKS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = anchor(line[3:])
            found[current] = ""
        elif current:
            found[current] += line + "\n"
    return found


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_every_alert_links_to_its_own_runbook_section(rule):
    url = rule["annotations"].get("runbook_url", "")
    assert url == f"docs/runbooks.md#{anchor(rule['alert'])}", f"{rule['alert']}: runbook_url {url!r}"
    section = sections().get(url.split("#", 1)[1])
    assert section is not None, f"docs/runbooks.md has no section #{url.split('#', 1)[1]}"
    missing = [part for part in PARTS if part not in section]
    assert missing == [], f"{rule['alert']}: its runbook section lacks {missing}"
    assert f"Severity {rule['labels']['severity']}." in section, "the section states the alert's severity"


def test_no_runbook_section_outlives_its_alert():
    assert set(sections()) == {anchor(rule["alert"]) for rule in ALERTS}
