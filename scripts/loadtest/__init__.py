"""Load test of `helical_model_workflow`: trigger runs, read them back, report latency and throughput.

Entry points: `run_load(LoadConfig(...)) -> Path` (report dir), `compare_workers(...)`,
`rebuild_report(records.json)`; the CLI is its __main__ (`python -m loadtest`).
"""

from .config import LoadConfig
from .driver import rebuild_report, run_load
from .scaling import ScaleConfig, compare_workers

__all__ = ["LoadConfig", "ScaleConfig", "compare_workers", "rebuild_report", "run_load"]
