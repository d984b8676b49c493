#!/usr/bin/env bash
# Issue #25's GPU measurements in one run on a lent GPU machine (no Docker, no registry: the runner's
# dependencies travel as wheels in .whl/, ../shared/gpu-bench/README.md). From the repository root:
#   here, once:           runner/bench/gpu_oneshot.sh prepare
#   on the GPU machine:   runner/bench/gpu_oneshot.sh          (the device tool: carry .whl, timeout_s 600)
# The second runs the packed encoder's equivalence tests on CUDA at real dims, then `bench_runner.py --device
# cuda`, each under its own time limit (about 7 minutes in all), and writes under $OUT (./gpu-results without it):
# runner-gpu-h200.txt (commit it as docs/benchmarks/runner-gpu-h200.txt), equivalence.txt, bench.log, gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = prepare ]; then
  packages=${GPU_PACKAGES:-/work/.library/device/KINDS.md}  # the GPU machine's package list ("Packages: ...")
  GPU_PACKAGES=$packages ../shared/gpu-bench/make-wheelhouse runner/requirements.lock .whl
  cp ../shared/scgpt-vocab/default_census_vocab.json .whl/vocab.json
  exit 0
fi

out=${OUT:-gpu-results}
mkdir -p "$out"
[ -f .whl/vocab.json ] || { echo "gpu_oneshot: .whl/ is missing: run '$0 prepare' first and carry .whl" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:.whl:runner/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())" | tee -a "$out/gpu.txt"

# Equivalence first: the CUDA test at real dims, and the CPU ones (the CLI test needs the test image's
# jsonschema, hence no conftest and not that test).
status=0
timeout 150 python3 -m pytest -q -p no:cacheprovider --noconftest -k "not cli" -rs runner/tests/test_packed.py \
  2>&1 | tee "$out/equivalence.txt" || status=1

timeout 400 python3 runner/bench/bench_runner.py --device cuda --vocab .whl/vocab.json 2>"$out/bench.log" \
  | tee "$out/runner-gpu-h200.txt" || status=1
tail -n 5 "$out/bench.log"
exit $status
