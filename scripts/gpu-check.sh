#!/usr/bin/env bash
# The one prepared script for a GPU machine (see ../shared/device/README.md; prepare with scripts/gpu-prep.sh).
# Requires CUDA: a machine without a usable GPU fails. Runs the core's Rust tests and the native boundary tests
# with ND_REQUIRE_CUDA=1, prints `nndet env`, and ends with `N passed, N failed`. Figures go under $OUT.
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
passed=0
failed=0
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader || { echo "no GPU: nvidia-smi failed"; echo "0 passed, 1 failed"; exit 1; }

# run NAME PATTERN-KIND COMMAND...: run a suite into $out/NAME.log and add its counts (kind: cargo|bun).
run() {
  local name=$1 kind=$2 p f rc
  shift 2
  echo "== $name"
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  tail -n 8 "$out/$name.log"
  read -r p f < <(suite_counts "$out/$name.log" "$kind")
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  passed=$((passed + p)); failed=$((failed + f))
}

run rust cargo build/gpu/nndet-core-tests --test-threads=2
run native bun bun test test/native

echo "== nndet env"
bun run src/main.ts env | tee "$out/env.txt"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
