"""Unit tests run on the host without Airflow: the DAG's helper package, the load-test package and the Docker
API policy are plain Python."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in ("dags", "scripts", "compose/docker-policy"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))
