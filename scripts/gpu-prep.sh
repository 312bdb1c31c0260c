#!/usr/bin/env bash
# Prepare, on this (CPU) machine, everything scripts/gpu-check.sh needs on the device machine:
# the packed Bun runtime (.device/bun.xz), the CUDA build of the core in build/lib, and the core's Rust test
# binary in build/gpu/. Then call the device tool's `run` with
#   carry:   [".device", "node_modules", "build"]
#   command: bash scripts/gpu-check.sh 2>&1 | tee $OUT/gpu-check.log
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${NDET_SHARED:-$root/../shared}
bash "$shared/device/pack.sh"
export NDET_CUDA=1
bash scripts/build-native.sh
exe=$(cargo test --release -p nndet-core --no-run --message-format=json 2>/dev/null |
  bun -e 'const lines = (await Bun.stdin.text()).trim().split("\n"); for (const l of lines) { const m = JSON.parse(l); if (m.executable && m.target?.kind?.includes("cdylib")) console.log(m.executable); }' | tail -n 1)
mkdir -p build/gpu
cp "$exe" build/gpu/nndet-core-tests
rm -rf build/test-logs build/stub-lib
du -sh .device node_modules build | cat
