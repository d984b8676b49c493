"""Names the DAG package defines and files that cannot import it repeat."""

from pathlib import Path

from helical_workflow.settings import RUNNER_POOL

ROOT = Path(__file__).resolve().parents[2]


def test_init_creates_the_pool_the_runner_tasks_use():
    init = (ROOT / "compose" / "airflow" / "init.sh").read_text()
    assert f"airflow pools set {RUNNER_POOL} " in init
    # make bench-orchestration widens the pool, then sets it back as init.sh does.
    makefile = (ROOT / "Makefile").read_text()
    assert f"airflow pools set {RUNNER_POOL}\n" in makefile
