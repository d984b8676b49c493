"""docs/security.md backs each line with a named test: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_the_threat_model_names_exists():
    named, path = set(), None
    # `tests/x.py::test_a` names a test; a `::test_b` after it names another of the same file.
    for found in re.finditer(r"`((?:tests|runner/tests)/[\w/]+\.py)?::(\w+)`", (ROOT / "docs" / "security.md").read_text()):
        path = found.group(1) or path
        named.add((path, found.group(2)))
    assert len(named) >= 30, named
    missing = [f"{path}::{name}" for path, name in sorted(named)
               if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE)]
    assert missing == []
