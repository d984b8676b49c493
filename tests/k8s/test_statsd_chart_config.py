"""The chart's exporter config made of values-statsd.yaml exports what monitoring/statsd/mapping.yml exports: the
same pinned statsd_exporter runs each, is fed the same lines, and the two pages are compared series by series."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.k8s.k8s_files import values
from tests.monitoring.statsd_exporter import MAPPING, OWN_PREFIXES, STRAY_LINES, StatsdExporter
from tests.monitoring.statsd_samples import SAMPLES

LINES = [line for line, _name, _labels in SAMPLES] + STRAY_LINES


def chart_config(path: Path) -> Path:
    """The mappings.yml the chart's statsd ConfigMap holds with statsd.overrideMappings set: `mappings:` only."""
    path.write_text(yaml.safe_dump({"mappings": values("values-statsd.yaml")["statsd"]["overrideMappings"]}))
    return path


def exported(mapping: Path) -> list[str]:
    with StatsdExporter(mapping) as exporter:
        exporter.send(LINES)
        page = exporter.scrape()
    assert page.status == 200, page.body[:500]
    return sorted(line for line in page.body.splitlines()
                  if not line.removeprefix("# HELP ").removeprefix("# TYPE ").startswith(OWN_PREFIXES))


def test_the_pinned_exporter_accepts_the_chart_config(tmp_path):
    image = StatsdExporter().image
    run = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{chart_config(tmp_path / 'm.yml')}:/m.yml:ro",
                          image, "--statsd.mapping-config=/m.yml", "--check-config"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_chart_config_exports_what_our_mapping_exports(tmp_path):
    ours, charts = exported(MAPPING), exported(chart_config(tmp_path / "m.yml"))
    assert len(ours) > 100
    assert charts == ours
