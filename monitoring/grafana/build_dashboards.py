"""Generate the Grafana dashboards of monitoring/grafana/dashboards/ from dashboards_src/.

    python3 monitoring/grafana/build_dashboards.py          # rewrite the JSON files
    python3 monitoring/grafana/build_dashboards.py --check  # exit 1 if they are stale

The dashboards are code in dashboards_src/ (panels.py: shared building blocks; one module per
dashboard). Every panel title is the question the panel answers. Queries prefer the recording
rules of monitoring/prometheus/rules/recording.yml, so dashboards and alerts compute a number
once. tests/monitoring checks that every query parses and uses only metrics this stack produces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards_src import render

OUT_DIR = Path(__file__).resolve().parent / "dashboards"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the checked-in JSON is stale")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale dashboards (run python3 monitoring/grafana/build_dashboards.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
