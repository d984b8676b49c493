"""Alerts reach a person (docs/operations.md#alerts), on the live stack: a queue that holds work with no worker
makes the real CeleryQueueHasNoWorker rule fire in Prometheus, even when a worker died without telling Flower
(SIGKILL: no worker-offline event, so only Flower's purge of silent workers ends its flower_worker_online 1);
Alertmanager, configured from .env at start (ALERT_WEBHOOK_URL), routes it to the critical receiver and POSTs it
to a webhook receiver on the stack's network (tests/e2e/compose.test.yaml), which gets it with its labels and its runbook link.

Here the rule fires after 30 s instead of 5 min, and Alertmanager sends a group again after 30 s instead of 5 min
(harness.write_faster_alerting); everything else is the production configuration.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from helical_workflow.names import CPU_QUEUE
from tests.harness import ALERT_UNDER_TEST, E2E, ROOT, compose, docker, make

RECORD = E2E / "alerts" / "alerts.jsonl"  # what the receiver got, one POST body a line


def received_firing(since: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(notification, alert) for each firing ALERT_UNDER_TEST on queue cpu that the webhook got after `since`."""
    lines = RECORD.read_text().splitlines() if RECORD.exists() else []
    found = []
    for record in map(json.loads, lines):
        for alert in record["body"]["alerts"] if record["received_at"] >= since else []:
            labels = alert["labels"]
            if (labels.get("alertname"), labels.get("queue"), alert["status"]) == (ALERT_UNDER_TEST, CPU_QUEUE, "firing"):
                found.append((record["body"], alert))
    return found


def test_a_queue_without_workers_pages_through_alertmanager_with_its_runbook(stack):
    since = time.time()
    dies = compose("ps", "-q", "airflow-worker").split()[0]
    docker("update", "--restart", "no", dies)  # stays dead, as a lost host does
    docker("kill", dies)
    make("scale", WORKERS="0")
    try:
        run_id = stack.trigger("alert", device="cpu", data="pbmc_part_b.h5ad", max_cells=50)
        deadline, started = time.monotonic() + 600, time.monotonic()
        while not (got := received_firing(since)):
            assert time.monotonic() < deadline, f"no {ALERT_UNDER_TEST} reached the webhook in 10 min: {RECORD}"
            time.sleep(5)
        print(f"\n{ALERT_UNDER_TEST} reached the webhook {time.monotonic() - started:.0f} s after the trigger")
        # Alertmanager's own view (its UI and API) shows it while it fires.
        shown = requests.get(f"{stack.alertmanager}/api/v2/alerts", params={"filter": f'alertname="{ALERT_UNDER_TEST}"'},
                             timeout=30).json()
        assert [a["labels"]["queue"] for a in shown if a["status"]["state"] == "active"] == [CPU_QUEUE], shown
    finally:
        make("scale", WORKERS="2")
    notification, alert = got[0]
    assert notification["receiver"] == "critical" and notification["status"] == "firing", notification
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["stack"] == "helical-airflow", alert
    assert alert["annotations"]["summary"].startswith("Queue cpu has "), alert
    runbook = alert["annotations"]["runbook_url"]
    assert runbook == f"docs/runbooks.md#{ALERT_UNDER_TEST.lower()}", alert
    assert f"\n## {ALERT_UNDER_TEST}\n" in (ROOT / "docs" / "runbooks.md").read_text()
    assert stack.wait(run_id) == "success", stack.explain(run_id)
