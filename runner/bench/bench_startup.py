"""Seconds from `docker run` to the runner's first embedded batch, per stage, on this machine (make bench-startup).

Runs the runner image as the workflow does (read-only root, /tmp on tmpfs, no network, the tiny test model, one
CPU quota of RUNNER_CPUS), on the demo dataset subsampled to --cells, --repeat times, and prints the median of
each stage: docker's own create + start, then the runner's `startup` stages from metrics.json (the runner counts
from its process's start, read from /proc). Host side: needs only the Docker CLI and the image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

STAGES = ("python", "imports", "model", "first_batch", "to_first_batch")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def iso_seconds(value: str) -> float:
    """Docker's RFC 3339 timestamps carry nanoseconds; Python parses microseconds."""
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def one_run(image: str, models: Path, results: Path, cells: int, cpus: str, uid: str, index: int) -> dict[str, float]:
    run_id = f"startup-{index}"
    started = time.time()
    container = docker(
        "run", "-d", "--network", "none", "--read-only", "--tmpfs", "/tmp:size=2g", "--cpus", cpus, "--user", uid,
        "-v", f"{models}:/models:ro", "-v", f"{results}:/results", image,
        "helical-runner", "run", "--data", "/data", "--run-id", run_id, "--max-cells", str(cells),
        "--classifier", "off", "--device", "cpu")
    try:
        if docker("wait", container) != "0":
            raise SystemExit(f"the runner failed:\n{docker('logs', container)}")
        state = json.loads(docker("inspect", "-f", "{{json .State}}", container))
    finally:
        docker("rm", "-f", container)
    metrics = json.loads(next((results / run_id).glob("*/metrics.json")).read_text())
    wall = iso_seconds(state["FinishedAt"]) - started
    # What a container costs beyond its dataset's own stages (load ... write): comparable across versions.
    fixed = {"docker_run_to_exit": wall, "fixed_cost": wall - metrics["durations_seconds"]["total"]}
    return {"docker_run_to_start": iso_seconds(state["StartedAt"]) - started, **metrics.get("startup", {}), **fixed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default=os.environ.get("RUNNER_CPU_IMAGE", "helical-runner:cpu"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--cpus", default=os.environ.get("RUNNER_CPUS", "2"))
    parser.add_argument("--baseline", help="an earlier runner image, measured the same way for comparison")
    args = parser.parse_args()
    uid = str(os.getuid() or 1000)
    with tempfile.TemporaryDirectory() as tmp:
        models, results = Path(tmp, "models"), Path(tmp, "results")
        for folder in (models, results):
            folder.mkdir()
            os.chown(folder, int(uid), -1)
        docker("run", "--rm", "--network", "none", "--user", uid, "-v", f"{models}:/models", args.image,
               "helical-runner", "test-model", "--out", "/models")
        images = [args.image, *([args.baseline] if args.baseline else [])]
        measured = {}
        for image in images:
            one_run(image, models, results, args.cells, args.cpus, uid, 0)  # page cache warm, as on a worker
            measured[image] = [one_run(image, models, results, args.cells, args.cpus, uid, i)
                               for i in range(1, args.repeat + 1)]
            for run in Path(results).iterdir():
                shutil.rmtree(run)
    print(f"# runner start-up, tiny test model, demo data ({args.cells} cells), --cpus {args.cpus}; machine: "
          f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; median of {args.repeat} runs per "
          "image after one warm-up. fixed_cost = docker_run_to_exit - the dataset's own stages (load ... write)")
    for image, runs in measured.items():
        print(f"\n{image}\n| stage | median s | min s | max s |\n| --- | --- | --- | --- |")
        for stage in ("docker_run_to_start", *STAGES, "docker_run_to_exit", "fixed_cost"):
            values = [run[stage] for run in runs if stage in run]
            if values:
                print(f"| {stage} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
