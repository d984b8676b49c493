"""Every Airflow service's entrypoint (compose: `python -m helical_workflow.launch airflow ...`): the settings
Airflow cannot derive itself, put into the environment of the Airflow process this one then becomes.

- Concurrency limits from the cluster's runner slots, and a GPU worker's concurrency from its GPUs (capacity.py).
- Celery's visibility timeout from the runner tasks' execution timeout (broker.py).

It says what it derived on stderr, first thing in the service's log, and refuses a setting that cannot work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from helical_workflow import broker, capacity


def derived_environment(env: Mapping[str, str]) -> dict[str, str]:
    return (capacity.from_environment(env).scheduler_environment() | capacity.worker_environment(env)
            | broker.visibility_environment(env))


def main(command: list[str]) -> None:
    if not command:
        raise SystemExit("usage: python -m helical_workflow.launch COMMAND [ARG...]")
    env = dict(os.environ)
    try:
        derived = derived_environment(env)
        slots = capacity.from_environment(env)
    except (capacity.CapacityError, broker.VisibilityTimeoutError) as err:
        raise SystemExit(f"helical launch: {err}") from err
    print(f"helical launch: {slots.cpu_slots} CPU + {slots.gpu_slots} GPU runner slots -> "
          + ", ".join(f"{key}={value}" for key, value in derived.items()), file=sys.stderr, flush=True)
    os.execvpe(command[0], command, {**env, **derived})


if __name__ == "__main__":
    main(sys.argv[1:])
