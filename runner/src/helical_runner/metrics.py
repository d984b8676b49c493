"""StatsD metrics `helical.runner.<device>.<dataset>.*` (docs/contracts.md); silent without STATSD_HOST."""

from __future__ import annotations

import logging
from typing import Any

from helical_runner.discover import metric_name

LOG = logging.getLogger(__name__)

PREFIX = "helical.runner"


class Metrics:
    def __init__(self, host: str | None, port: int, device: str) -> None:
        self.device = device
        self.client: Any = None
        if not host:
            return
        try:
            import statsd

            self.client = statsd.StatsClient(host, port, prefix=PREFIX)
            LOG.info("sending StatsD metrics %s.* to %s:%d/udp", PREFIX, host, port)
        except Exception as exc:
            LOG.warning("StatsD disabled: cannot use %s:%d (%s)", host, port, exc)

    def _name(self, dataset: str, metric: str) -> str:
        return f"{self.device}.{metric_name(dataset)}.{metric}"

    def _send(self, kind: str, dataset: str, metric: str, value: float) -> None:
        if self.client is None:
            return
        try:
            getattr(self.client, kind)(self._name(dataset, metric), value)
        except Exception as exc:
            LOG.warning("StatsD send failed for %s: %s", metric, exc)

    def dataset_ok(self, dataset: str, stage_seconds: dict[str, float], total_seconds: float, cells: int,
                   cells_per_second: float, test_model: bool, classifier: dict[str, Any],
                   startup_seconds: float | None = None) -> None:
        self._send("timing", dataset, "duration", total_seconds * 1000)
        for stage, seconds in stage_seconds.items():
            self._send("timing", dataset, f"stage.{stage}", seconds * 1000)
        if startup_seconds is not None:  # once per container, with the dataset that waited for it
            self._send("timing", dataset, "stage.startup", startup_seconds * 1000)
        self._send("incr", dataset, "cells", cells)
        self._send("gauge", dataset, "cells_per_second", cells_per_second)
        self._send("gauge", dataset, "test_model", 1 if test_model else 0)
        if classifier.get("status") == "ok":
            self._send("gauge", dataset, "classifier_accuracy", classifier["accuracy"])
            self._send("gauge", dataset, "classifier_macro_f1", classifier["macro_f1"])

    def dataset_failed(self, dataset: str, total_seconds: float, test_model: bool | None) -> None:
        self._send("incr", dataset, "failures", 1)
        self._send("timing", dataset, "duration", total_seconds * 1000)
        if test_model is not None:
            self._send("gauge", dataset, "test_model", 1 if test_model else 0)
