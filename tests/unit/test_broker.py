"""Celery's visibility timeout outlasts every runner task (helical_workflow/broker.py)."""

from __future__ import annotations

import pytest

from helical_workflow.broker import VISIBILITY_TIMEOUT_ENV, VisibilityTimeoutError, visibility_environment


def test_derived_from_the_execution_timeout_with_a_margin():
    assert visibility_environment({}) == {VISIBILITY_TIMEOUT_ENV: str(6 * 3600 + 600)}
    assert visibility_environment({"HELICAL_TASK_EXECUTION_TIMEOUT": "172800"}) == {VISIBILITY_TIMEOUT_ENV: "173400"}


def test_a_longer_one_set_by_hand_is_kept_and_a_shorter_one_refused():
    assert visibility_environment({VISIBILITY_TIMEOUT_ENV: "86400"}) == {}
    with pytest.raises(VisibilityTimeoutError, match=r"shorter than a runner task may run \(TASK_EXECUTION_TIMEOUT"):
        visibility_environment({VISIBILITY_TIMEOUT_ENV: "3600"})
    with pytest.raises(VisibilityTimeoutError, match="not a number of seconds"):
        visibility_environment({"HELICAL_TASK_EXECUTION_TIMEOUT": "6h"})
