#!/usr/bin/env bash
# The one prepared script for a GPU machine (see ../shared/device/README.md; prepare with scripts/gpu-prep.sh).
# Requires CUDA: a machine without a usable GPU fails. With ND_REQUIRE_CUDA=1 it runs the core's Rust tests
# (every device kernel on the GPU and in the emulator against the CPU kernels, the device-primitive
# self-tests that pin the emulator to the hardware), the native bun tests (device memory, linkage, the whole
# training step on the GPU vs the CPU model), then the GPU benchmark against PyTorch + cuDNN
# (scripts/bench-gpu.sh). Logs and figures go under $OUT; ends with `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/counts.sh
out=${OUT:-build/gpu-out}
mkdir -p "$out"
if [ ! -x /tmp/bun ]; then
  python3 -c "import lzma,shutil,os; shutil.copyfileobj(lzma.open('.device/bun.xz'), open('/tmp/bun','wb')); os.chmod('/tmp/bun',0o755)"
fi
export PATH=/tmp:$PATH
export ND_REQUIRE_CUDA=1
# the runtime node modules travel in build/ (scripts/gpu-prep.sh); link them where Bun resolves packages
[ -e node_modules ] || ln -s build/gpu/node_modules node_modules
passed=0
failed=0
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader || { echo "no GPU: nvidia-smi failed"; echo "0 passed, 1 failed"; exit 1; }

# run NAME KIND LIMIT COMMAND...: run a suite (at most LIMIT seconds) into $out/NAME.log and add its counts.
run() {
  local name=$1 kind=$2 limit=$3 p f rc
  shift 3
  echo "== $name"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  tail -n 12 "$out/$name.log"
  read -r p f < <(suite_counts "$out/$name.log" "$kind")
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  passed=$((passed + p)); failed=$((failed + f))
}

run rust cargo 240 build/gpu/nndet-core-tests --test-threads=8
run native bun 180 bun test test/native

echo "== nndet env"
bun run src/main.ts env | tee "$out/env.txt"
echo "== bench-gpu"
timeout 300 bash scripts/bench-gpu.sh --json-out "$out/bench-gpu.json" | tee "$out/bench-gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench-gpu failed"; failed=$((failed + 1)); }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
