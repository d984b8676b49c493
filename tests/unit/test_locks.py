"""Supply chain: every lock file pins each requirement with hashes, and every install checks them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCKS = sorted(path for path in ROOT.glob("**/*.lock") if ".venv" not in path.parts and ".e2e" not in path.parts)
INSTALLERS = [ROOT / "Makefile", ROOT / "runner" / "install-deps.sh", *ROOT.glob("*/Dockerfile"),
              *ROOT.glob("compose/*/Dockerfile")]


def requirements(lock: Path) -> list[str]:
    """Each requirement of a lock with its continuation lines, comments dropped."""
    blocks: list[str] = []
    for line in lock.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            blocks[-1] += " " + line.strip()
        else:
            blocks.append(line.strip())
    return blocks


def test_every_lock_pins_each_requirement_with_a_hash():
    assert len(LOCKS) >= 6, LOCKS
    for lock in LOCKS:
        blocks = requirements(lock)
        assert blocks, lock
        for block in blocks:
            assert re.match(r"^[A-Za-z0-9_.\-\[\],]+==\S+ \\", block), f"{lock}: not pinned: {block[:80]}"
            assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"{lock}: no hash: {block[:80]}"


def test_every_pip_install_of_a_lock_requires_hashes():
    installs = [line for path in INSTALLERS for line in path.read_text().splitlines()
                if re.search(r"pip install .*-r ", line)]
    assert len(installs) >= 6, installs
    assert [line for line in installs if "--require-hashes" not in line] == []


def pinned(lock: Path) -> dict[str, str]:
    return dict(block.split(" ", 1)[0].split("==") for block in requirements(lock))


def test_the_host_venv_tests_the_gateway_with_the_versions_the_images_run():
    """The gateway's tests run in the host venv: its parser is the docker-policy image's, and the docker-py
    whose requests they replay is the Airflow image's. `make lock` keeps them equal; this says when not."""
    dev = pinned(ROOT / "requirements-dev.lock")
    assert dev["h11"] == pinned(ROOT / "compose" / "docker-policy" / "requirements.lock")["h11"]
    assert dev["docker"] == pinned(ROOT / "compose" / "airflow" / "requirements.lock")["docker"]


def test_the_runners_test_extra_is_what_its_test_image_installs():
    """`pip install -e 'runner[test]'` (runner/README.md) gets what the runner's tests import."""
    extra = re.search(r'^test = \[(.*)\]$', (ROOT / "runner" / "pyproject.toml").read_text(), re.M).group(1)
    image = [line.strip() for line in (ROOT / "runner" / "requirements-test.in").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert re.findall(r'"([^"]+)"', extra) == image
