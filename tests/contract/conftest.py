"""The contract tests read both sides' definitions (plain Python, no Airflow, no torch) and the files that
cannot import them."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in ("dags", "runner/src"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))
