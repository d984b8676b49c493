"""What the docs state is kept true: every test they cite exists, every `make` target and `python -m` module they
tell a user to run exists, and every figure of the README's benchmark paragraph is in a file of docs/benchmarks/.
(Shared names in the docs are generated: tests/contract/test_generated.py; security.md: test_security_doc.py.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("*/README.md"))]
TEST_SOURCES = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("runner/tests/*.py")]


def defined_tests() -> set[str]:
    return {name for path in TEST_SOURCES for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.M)}


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_test_a_doc_cites_exists(doc):
    # A test is cited as `test_x`, `test_x[param]` or `path.py::test_x` (a field named test_model is no test).
    cited = set(re.findall(r"(?:`|::)(test_\w+)(?:\[[^\]]*\])?`", doc.read_text()))
    assert sorted(cited - defined_tests()) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_command_a_doc_gives_exists(doc):
    text = doc.read_text()
    # Commands are code: `make x ...` inline, or a line of a fenced block.
    code = re.findall(r"`([^`\n]+)`", text) + re.findall(r"^```\w*\n(.*?)^```", text, re.M | re.S)
    targets = {target for snippet in code for target in re.findall(r"(?:^|\s|;|&&)make ([a-z][a-z0-9-]+)", snippet, re.M)}
    assert sorted(targets - make_targets()) == [], "make targets the Makefile lacks"
    modules = {m for snippet in code for m in re.findall(r"python3? -m ([a-z_][\w.]*)", snippet)} - {"venv", "pip", "pytest"}
    assert sorted(m for m in modules if importlib.util.find_spec(m) is None) == [], "modules that do not import"


def test_the_readmes_benchmark_figures_come_from_docs_benchmarks():
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("## Benchmarks"):].split("\n## ", 1)[0]
    figures = set(re.findall(r"\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+", paragraph))
    measured = "\n".join(p.read_text(errors="replace") for p in (ROOT / "docs" / "benchmarks").rglob("*")
                         if p.suffix in (".md", ".txt", ".json"))
    assert len(figures) >= 5, figures
    assert sorted(f for f in figures if f not in measured) == [], "figures no docs/benchmarks file holds"
