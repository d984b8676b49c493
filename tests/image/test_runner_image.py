"""The built helical-runner:cpu image, as a user runs it: no network, demo data, the tiny test model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VOCAB = ROOT.parent / "shared" / "scgpt-vocab" / "default_census_vocab.json"
IMAGE = os.environ.get("RUNNER_IMAGE", "helical-runner:cpu")


def docker_run(*args: str, volumes: dict[Path, str], user: bool = True) -> subprocess.CompletedProcess:
    mounts = [flag for host, target in volumes.items() for flag in ("-v", f"{host}:{target}")]
    as_user = ["--user", f"{os.getuid()}:{os.getgid()}"] if user else []
    return subprocess.run(["docker", "run", "--rm", "--network", "none", *as_user, *mounts, IMAGE, *args],
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    made = docker_run("helical-runner", "test-model", "--out", "/models", "--vocab", "/vocab.json",
                      volumes={folder: "/models", VOCAB: "/vocab.json:ro"})
    assert made.returncode == 0, made.stderr[-3000:]
    return folder


def test_default_command_embeds_the_demo_data_offline(models, tmp_path):
    data, out = tmp_path / "data", tmp_path / "results"
    data.mkdir(), out.mkdir()
    # The image's default command (python run_helical.py), as the original documented, with no flags at all.
    done = docker_run(volumes={models: "/models", out: "/results", data: "/data:ro"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] and len(summary["datasets"]) == 1
    (run_dir,) = out.iterdir()
    metrics = json.loads((run_dir / "pbmc68k_reduced" / "metrics.json").read_text())
    assert metrics["cells"] == 700 and metrics["model"]["test_model"] is True
    assert (run_dir / "pbmc68k_reduced" / "embeddings.h5ad").stat().st_size > 0
    assert "TEST MODEL" in done.stderr.upper()


def test_a_run_imports_only_what_it_needs_and_reports_its_startup(models, tmp_path):
    """Helical's package, scanpy and transformers cost seconds of CPU per container and a run needs none."""
    out = tmp_path / "results"
    out.mkdir()
    done = docker_run("python", "-X", "importtime", "run_helical.py", "--max-cells", "50", "--classifier", "off",
                      volumes={models: "/models", out: "/results"})
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and "helical.models.scgpt.model_dir.model" in imported  # TransformerModel
    heavy = {"scanpy", "transformers", "datasets", "matplotlib", "helical.models.scgpt.model", "sklearn"}
    assert not heavy & imported, heavy & imported
    (metrics_file,) = out.glob("*/pbmc68k_reduced/metrics.json")
    startup = json.loads(metrics_file.read_text())["startup"]
    stages = ("python", "imports", "model", "first_batch")
    assert startup["to_first_batch"] == pytest.approx(sum(startup[s] for s in stages), abs=0.01), startup


def test_the_runner_code_is_byte_compiled_in_the_image():
    """The root filesystem is read-only at run time: code not compiled in the image is compiled in every run."""
    check = ("import pathlib, sys, helical, helical_runner, torch\n"
             "missing = [str(py) for pkg in (helical, helical_runner, torch)\n"
             "           for py in pathlib.Path(pkg.__file__).parent.rglob('*.py')\n"
             "           if not (py.parent / '__pycache__' / f'{py.stem}.{sys.implementation.cache_tag}.pyc').is_file()]\n"
             "print(len(missing), missing[:5])")
    done = subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "python", "-c", check],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("0 "), done.stdout


def test_missing_model_files_fail_naming_the_fix(tmp_path):
    empty = tmp_path / "models"
    empty.mkdir()
    done = docker_run(volumes={empty: "/models", tmp_path: "/results"})
    assert done.returncode == 2
    assert "make models" in done.stderr


def test_image_runs_as_non_root_by_default():
    done = subprocess.run(["docker", "run", "--rm", IMAGE, "id", "-u"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() != "0"


def test_docker_stop_ends_the_runner_at_once_with_its_own_exit_code(models, tmp_path):
    # The runner is PID 1: without its SIGTERM handler, docker stop would wait 10 s and SIGKILL it (137).
    out, data = tmp_path / "results", tmp_path / "data"
    out.mkdir(), data.mkdir()
    # 30,000 cells: a run that lasts long enough to be stopped mid-way (the chaos suite's dataset maker).
    made = docker_run("python", "/e2e/make_datasets.py", "/data", "--big", "30000",
                      volumes={ROOT / "tests" / "e2e": "/e2e:ro", data: "/data"})
    assert made.returncode == 0, made.stderr[-2000:]
    name = f"runner-stop-test-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
                    "-v", f"{models}:/models", "-v", f"{out}:/results", "-v", f"{data}:/data:ro", IMAGE],
                   check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 120
        while "big: embedded" not in docker_logs(name):  # well into the run
            assert time.monotonic() < deadline, docker_logs(name)[-2000:]
            time.sleep(0.5)
        started = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "30", name], check=True, capture_output=True)
        stopped_in = time.monotonic() - started
        code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name], check=True,
                              capture_output=True, text=True).stdout.strip()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert code == "143" and stopped_in < 10, (code, stopped_in)
    (run_dir,) = out.iterdir()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # its staging folder went with it


def docker_logs(name: str) -> str:
    done = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return done.stdout + done.stderr


def test_a_full_results_filesystem_fails_one_dataset_clearly_and_spares_the_others(models, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for args in ((), ("--big", "30000")):  # three small datasets, and big.h5ad whose embeddings do not fit
        made = docker_run("python", "/e2e/make_datasets.py", "/data", *args,
                          volumes={ROOT / "tests" / "e2e": "/e2e:ro", data: "/data"})
        assert made.returncode == 0, made.stderr[-2000:]
    # /results is a 1 MiB filesystem; the shell reports what the runner left there before it vanishes.
    script = ("helical-runner --run-id r --classifier off; echo EXIT=$?; ls -A /results/r; "
              "cat /results/r/big.failed.json")
    done = subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
                           "--mount", "type=tmpfs,destination=/results,tmpfs-size=1048576,tmpfs-mode=1777",
                           "-v", f"{models}:/models", "-v", f"{data}:/data:ro", "--entrypoint", "sh", IMAGE, "-c", script],
                          capture_output=True, text=True, timeout=600)
    lines = done.stdout.splitlines()
    assert "EXIT=3" in lines, done.stdout + done.stderr[-3000:]  # unexpected, so the workflow retries it
    listing = lines[lines.index("EXIT=3") + 1:-1]
    assert sorted(listing) == ["big.failed.json", "pbmc_part_a", "pbmc_part_b", "synthetic_counts"], listing
    failure = json.loads(lines[-1])
    assert failure["exit_class"] == "unexpected" and "filesystem is full" in failure["error"], failure


def test_the_image_is_the_size_the_readme_says():
    stated = float(re.search(r"the runner image is ~(\d+) GiB", (ROOT / "README.md").read_text()).group(1))
    size = int(subprocess.run(["docker", "image", "inspect", IMAGE, "-f", "{{.Size}}"], capture_output=True,
                              text=True, check=True).stdout) / 2**30
    assert abs(size - stated) < 1, f"{IMAGE} is {size:.1f} GiB; README.md says ~{stated:.0f} GiB"
