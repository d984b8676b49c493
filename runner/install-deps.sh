#!/bin/sh
# Install the locked runtime dependencies of helical-runner (run by the Dockerfile's deps stage).
# TORCH_FLAVOR=cpu takes torch from the PyTorch CPU index when it answers: the CUDA libraries that PyPI's
# build pulls in (~6 GB) are then left out. Otherwise, and for TORCH_FLAVOR=cuda, PyPI's build is used.
set -eu
lock=$1
cp "$lock" /tmp/requirements.txt
torch_pin=$(grep -E '^torch==' "$lock")
if [ "$TORCH_FLAVOR" = cpu ] && python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$TORCH_CPU_INDEX/torch/" 2>/dev/null; then
  echo "torch: CPU build from $TORCH_CPU_INDEX"
  pip install --no-deps --index-url "$TORCH_CPU_INDEX" "$torch_pin"
  grep -vE '^(torch|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+)==' "$lock" >/tmp/requirements.txt
else
  echo "torch: PyPI build (TORCH_FLAVOR=$TORCH_FLAVOR; the CPU index is not reachable or not wanted)"
fi
pip install --no-deps -r /tmp/requirements.txt
pip check
rm /tmp/requirements.txt
