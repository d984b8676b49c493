"""`helical-runner [run] ...` and `helical-runner test-model --out DIR` (docs/contracts.md).

Exit codes (docs/contracts.md): 0 every dataset succeeded; 1 bad input, at least one dataset rejected (the
others are still written); 2 bad configuration; 3 an unexpected failure (I/O error, full disk, out of
memory): worth a retry; 143 stopped by SIGTERM. Logs go to stderr; the last stdout line is the one-line
JSON summary (XCom).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from helical_runner.config import add_run_arguments, resolve_device, resolve_precision, settings_from
from helical_runner.contract import (
    EXIT_CONFIG,
    EXIT_DATASET_FAILED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_UNEXPECTED,
    MODEL_DIR,
)
from helical_runner.discover import DatasetSource, find_all_datasets
from helical_runner.errors import ConfigError, fix_for
from helical_runner.model import TINY_DIMS
from helical_runner.startup import StartupClock

LOG = logging.getLogger("helical_runner")


def stop_on_sigterm(signum: int, _frame: object) -> None:
    """`docker stop`: unwind (staging folders are removed by their finally blocks) and exit 143 at once.

    The runner is PID 1 in its container, and the kernel ignores SIGTERM for PID 1 without a handler.
    """
    LOG.warning("SIGTERM: stopping (the task's next try reuses every dataset already published)")
    raise SystemExit(EXIT_TERMINATED)


def setup_logging() -> None:
    """Everything to stderr, so stdout carries only the JSON summary.

    Importing `helical` adds a second root handler (every line would print twice) and its "scGPT"
    logger writes to stdout; so Helical is imported first and both are replaced by one stderr handler.
    Helical's later logging.basicConfig calls are no-ops because the root logger has a handler.
    """
    import helical  # noqa: F401 - light (the models are imported later); see the docstring

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    scgpt_logger = logging.getLogger("scGPT")
    scgpt_logger.handlers[:] = [handler]
    scgpt_logger.propagate = False
    for noisy in ("helical.models.scgpt.model", "datasets", "numba", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helical-runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    add_run_arguments(commands.add_parser("run", help="embed every dataset (the default command)"))
    test = commands.add_parser("test-model", help="write a tiny scGPT checkpoint (random weights) for tests")
    test.add_argument("--out", required=True, type=Path, help="folder to write best_model.pt, vocab.json, args.json")
    test.add_argument("--vocab", type=Path, help="JSON {gene: id}, e.g. scGPT's default_census_vocab.json; "
                                                "default: a built-in list of 705 human genes")
    fetch = commands.add_parser("fetch-model", help="download the real scGPT weights with Helical's downloader")
    fetch.add_argument("--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", MODEL_DIR)),
                       help=f"folder to download into (env MODEL_DIR, default {MODEL_DIR})")
    for flag, default in (("--embsize", TINY_DIMS.embsize), ("--nlayers", TINY_DIMS.nlayers),
                          ("--nheads", TINY_DIMS.nheads), ("--d-hid", TINY_DIMS.d_hid), ("--seed", 0)):
        test.add_argument(flag, type=int, default=default, help=f"default {default} (the real scGPT: see bench/)")
    return parser


def print_summary(run_id: str, results: list[dict[str, Any]]) -> None:
    summary = {"run_id": run_id, "ok": bool(results) and all(r["status"] == "ok" for r in results),
               "datasets": results}
    sys.stderr.flush()
    # One write, newline included: stdout is unbuffered (PYTHONUNBUFFERED) and print() writes the newline
    # separately, so Docker's log stream could slip a stderr line between the JSON and its newline.
    sys.stdout.write(json.dumps(summary, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace, clock: StartupClock) -> int:
    # Heavy imports (torch, Helical's model code, the readers) only once the arguments are known to be valid.
    import torch  # noqa: F401 - here, so the `imports` start-up stage counts it

    from helical_runner.embed import Embedder, configure_threads
    from helical_runner.metrics import Metrics
    from helical_runner.model import load_model
    from helical_runner.pipeline import ContainerRun, Result, run_dataset
    from helical_runner.write import create_run_dir, ensure_writable

    clock.mark("imports")
    run_id = "unknown"
    sources: list[DatasetSource] = []
    try:
        settings = settings_from(args)
        run_id = settings.run_id
        sources = find_all_datasets(settings.data, settings.names)
        device = resolve_device(settings.device)
        threads = configure_threads()
        LOG.info("run %s: %d dataset(s), device %s, torch threads %d", run_id, len(sources), device, threads)
        ensure_writable(settings.output_dir)
        loaded = load_model(settings.model_dir, device)
        precision = resolve_precision(settings.precision, device, loaded.dims.embsize)
        LOG.info("precision %s (PRECISION=%s)", precision, settings.precision)
        embedder = Embedder(loaded, device, precision, settings.batch_size, clock, settings.encoder)
        LOG.info("encoder %s (ENCODER=%s)", embedder.encoder.name, settings.encoder)
        clock.mark("model")
        run_dir = create_run_dir(settings.output_dir, run_id)
    except ConfigError as exc:
        LOG.error("%s", exc)
        print_summary(run_id, [Result.failed(s.name, str(exc)).summary() for s in sources])
        return EXIT_CONFIG

    metrics = Metrics(settings.statsd_host, settings.statsd_port, device)
    run = ContainerRun(settings, run_dir, run_id, loaded, embedder, metrics, datasets_in_container=len(sources))
    results = [run_dataset(source, run) for source in sources]
    print_summary(run_id, [result.summary() for result in results])
    if any(result.retryable for result in results):
        return EXIT_UNEXPECTED
    return EXIT_OK if all(result.status == "ok" for result in results) else EXIT_DATASET_FAILED


def test_model_command(args: argparse.Namespace) -> int:
    from helical_runner.model import ModelDims
    from helical_runner.test_model import write_test_model

    dims = ModelDims(embsize=args.embsize, nlayers=args.nlayers, nheads=args.nheads, d_hid=args.d_hid)
    try:
        folder = write_test_model(args.out, args.vocab, dims, args.seed)
    except (OSError, ValueError) as exc:
        LOG.error("test-model: %s", exc)
        return EXIT_CONFIG
    print(json.dumps({"test_model": True, "out": str(folder)}), flush=True)
    return EXIT_OK


def fetch_model_command(args: argparse.Namespace) -> int:
    """make models: fetch once on a connected machine; the folder then serves every offline run."""
    from helical_runner.model import download_model, find_model_folder

    try:
        folder = find_model_folder(args.model_dir) or download_model(args.model_dir)
    except ConfigError as exc:
        LOG.error("fetch-model: %s", exc)
        return EXIT_CONFIG
    print(json.dumps({"model_dir": str(folder)}), flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    clock = StartupClock()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    setup_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `run` is the default command, so `helical-runner --data x` and a bare `python run_helical.py` work.
    if not argv or argv[0] not in {"run", "test-model", "fetch-model", "-h", "--help"}:
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    clock.mark("python")
    if args.command == "test-model":
        return test_model_command(args)
    if args.command == "fetch-model":
        return fetch_model_command(args)
    try:
        return run(args, clock)
    except Exception as exc:
        # Model loading, device set-up...: not the input's fault (that is exit 1/2), so worth a retry.
        LOG.exception("unexpected failure before any dataset ran: %s%s", type(exc).__name__, fix_for(exc))
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    raise SystemExit(main())
