#!/usr/bin/env bash
# The one prepared script for a GPU machine (see ../shared/device/README.md; prepare with scripts/gpu-prep.sh).
# Requires CUDA: a machine without a usable GPU fails. Runs the core's Rust tests and the native boundary tests
# with ND_REQUIRE_CUDA=1, prints `nndet env`, and ends with `N passed, N failed`. Figures go under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/gpu-out}
mkdir -p "$out"
if [ ! -x /tmp/bun ]; then
  python3 -c "import lzma,shutil,os; shutil.copyfileobj(lzma.open('.device/bun.xz'), open('/tmp/bun','wb')); os.chmod('/tmp/bun',0o755)"
fi
export PATH=/tmp:$PATH
export ND_REQUIRE_CUDA=1
passed=0
failed=0
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader || { echo "no GPU: nvidia-smi failed"; echo "0 passed, 1 failed"; exit 1; }

echo "== rust core tests (CUDA build)"
build/gpu/nndet-core-tests --test-threads=2 >"$out/rust.log" 2>&1
rc=$?
tail -n 5 "$out/rust.log"
p=$(grep -Eo '[0-9]+ passed' "$out/rust.log" | awk '{s+=$1} END {print s+0}')
f=$(grep -Eo '[0-9]+ failed' "$out/rust.log" | awk '{s+=$1} END {print s+0}')
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
passed=$((passed + p)); failed=$((failed + f))

echo "== native boundary tests (ND_REQUIRE_CUDA=1)"
bun test test/native >"$out/bun.log" 2>&1
rc=$?
tail -n 8 "$out/bun.log"
p=$(grep -Eo '^ *[0-9]+ pass$' "$out/bun.log" | awk '{s+=$1} END {print s+0}')
f=$(grep -Eo '^ *[0-9]+ fail$' "$out/bun.log" | awk '{s+=$1} END {print s+0}')
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
passed=$((passed + p)); failed=$((failed + f))

echo "== nndet env"
bun run src/main.ts env | tee "$out/env.txt"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
