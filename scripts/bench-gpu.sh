#!/usr/bin/env bash
# The GPU benchmark (issue 7): our device kernels and training step vs PyTorch + cuDNN on this machine's GPU,
# in one run. Needs a GPU, the CUDA build in build/lib, and python3 with torch (the device machine has
# both). Arguments go to scripts/bench-gpu.ts (--reps N, --plan FILE, --json, --json-out FILE, --no-net).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bun scripts/bench-gpu.ts "$@"
