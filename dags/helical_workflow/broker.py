"""How long Redis lets a worker hold a task before handing it to another: longer than any task may run.

Celery on Redis redelivers a message its worker has not acknowledged within the visibility timeout (Airflow
acknowledges late: when the task ends). Measured on 3.3.2 (tests/e2e/test_chaos.py): a runner task still running
then is delivered again, the second delivery cannot start it, the Celery executor reports the task failed, and
the scheduler fails the running try ("reported that the task instance ... finished with state failed, but the
task instance's state attribute is running") and retries it: a task longer than the timeout never finishes. The
celery provider's default is 24 h; here the timeout is derived from the runner tasks' execution timeout
(TASK_EXECUTION_TIMEOUT), so Airflow times a task out before Redis would redeliver it, and a shorter timeout set
by hand is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_TASK_EXECUTION_TIMEOUT = 6 * 3600
# Past the execution timeout: a task's start after its delivery, and its teardown after the timeout fired.
VISIBILITY_MARGIN = 600
VISIBILITY_TIMEOUT_ENV = "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"


class VisibilityTimeoutError(ValueError):
    """A visibility timeout set by hand that a task could outlive."""


def task_execution_timeout(env: Mapping[str, str]) -> int:
    raw = (env.get("HELICAL_TASK_EXECUTION_TIMEOUT") or "").strip()
    if raw and not raw.isdigit():
        raise VisibilityTimeoutError(f"TASK_EXECUTION_TIMEOUT={raw!r} is not a number of seconds: fix it in .env")
    return int(raw) if raw else DEFAULT_TASK_EXECUTION_TIMEOUT


def visibility_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The visibility timeout to run with: derived, or the one set by hand when a task cannot outlive it."""
    needed = task_execution_timeout(env) + VISIBILITY_MARGIN
    given = (env.get(VISIBILITY_TIMEOUT_ENV) or "").strip()
    if not given:
        return {VISIBILITY_TIMEOUT_ENV: str(needed)}
    if not given.isdigit() or int(given) < needed:
        raise VisibilityTimeoutError(
            f"{VISIBILITY_TIMEOUT_ENV}={given} is shorter than a runner task may run (TASK_EXECUTION_TIMEOUT "
            f"{task_execution_timeout(env)} s + {VISIBILITY_MARGIN} s): Redis would hand a running task to a second "
            "worker and Airflow would fail the first. Unset it (it is derived), or raise it")
    return {}
