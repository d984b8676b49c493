#!/bin/sh
# Install the locked runtime dependencies of helical-runner (run by the Dockerfile's deps stage), every
# file checked against the lock's hashes.
# TORCH_FLAVOR=cpu takes torch from the PyTorch CPU index when it answers (requirements-torch-cpu.lock): the
# CUDA libraries that PyPI's build pulls in (~6 GB) are then left out. Otherwise, and for TORCH_FLAVOR=cuda,
# PyPI's build is used.
set -eu
lock=$1
torch_cpu_lock=$2
cp "$lock" /tmp/requirements.txt
if [ "$TORCH_FLAVOR" = cpu ] && python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$TORCH_CPU_INDEX/torch/" 2>/dev/null; then
  if pip install --require-hashes --no-deps --index-url "$TORCH_CPU_INDEX" -r "$torch_cpu_lock"; then
    echo "torch: CPU build from $TORCH_CPU_INDEX"
    # The lock without torch and what only PyPI's CUDA build needs (a requirement and its --hash lines).
    python - "$lock" >/tmp/requirements.txt <<'PY'
import re
import sys

skip = False
for line in open(sys.argv[1]):
    if not line[:1].isspace():
        skip = bool(re.match(r"(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+)==", line))
    if not skip:
        sys.stdout.write(line)
PY
  else
    echo "torch: the CPU build did not install (see above: a hash mismatch is refused); using PyPI's build" >&2
  fi
else
  echo "torch: PyPI build (TORCH_FLAVOR=$TORCH_FLAVOR; the CPU index is not reachable or not wanted)"
fi
pip install --require-hashes --no-deps -r /tmp/requirements.txt
pip check
rm /tmp/requirements.txt
