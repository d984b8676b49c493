"""The image's `kubernetes` target answers the official chart as the official image does: its containers run
`bash -c "exec airflow ..."`, its probes `/entrypoint python ...`, a bare subcommand is airflow's (docs/kubernetes.md).
The test image is built on that target."""

from __future__ import annotations

import subprocess

import pytest


@pytest.mark.parametrize(("args", "says"), [
    (["bash", "-c", "echo from bash"], "from bash"),
    (["python", "-c", "print('from python')"], "from python"),
    (["airflow", "version"], "3.3.2"),
    (["version"], "3.3.2"),
])
def test_the_chart_entrypoint_runs_what_the_chart_asks(args, says):
    run = subprocess.run(["/entrypoint", *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == says
