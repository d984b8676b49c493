"""Make the helpers of this folder (statsd_exporter, promql_names, live_checks) importable."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
