"""A hostile task on the running stack (issue 20, classes 1-6): from inside a worker, raw requests to DOCKER_HOST
that reached dockerd through the old filter. Each must be refused for its reason, and the engine's record must
show that none of them created anything (tests/security/hostile_task_probe.py names and labels each one)."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from tests.gateway_harness import unexpected_answers
from tests.harness import ROOT, compose, docker

CLASSES = {1: "path forms", 2: "request smuggling", 3: "JSON the engine reads differently",
           4: "values past a runner", 5: "bind sources", 6: "the ID prefix race"}


@pytest.fixture(scope="module")
def report(stack) -> dict:
    worker = compose("ps", "-q", "airflow-worker").split()[0]
    probe = (ROOT / "tests" / "security" / "hostile_task_probe.py").read_text()
    done = subprocess.run(["docker", "exec", "-i", worker, "python", "-", secrets.token_hex(4)], input=probe,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_every_request_of_the_class_is_refused_for_its_reason(report, klass):
    cases = {name: case for name, case in report["cases"].items() if case["class"] == klass}
    assert cases, f"no request of class {klass} ({CLASSES[klass]}) was sent"
    assert unexpected_answers({"cases": cases}) == {}


def test_the_engine_created_nothing_for_them(report):
    nonce = report["nonce"]
    assert docker("ps", "-aq", "--filter", f"label=helical.probe={nonce}") == ""
    assert docker("ps", "-aq", "--filter", f"name=hx-hostile-{nonce}") == ""
    assert docker("volume", "ls", "-q", "--filter", f"name=hx-hostile-{nonce}") == ""


def test_a_runner_still_passes_and_is_removed_by_the_full_id_the_gateway_checked(report):
    """The control: a runner created and removed by name. The gateway forwarded the remove by its full ID."""
    controls = report["controls"]
    assert controls["create"] == 201 and controls["remove"] == 204, controls
    forwarded = compose("logs", "--no-log-prefix", "docker-policy")
    assert f"DELETE {report['api']}/containers/{controls['id']}?force=1 from" in forwarded
    assert f"DELETE {report['api']}/containers/hx-hostile-{report['nonce']}-control?force=1 from" not in forwarded
