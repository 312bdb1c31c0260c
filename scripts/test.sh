#!/usr/bin/env bash
# Set up, build, and run every test suite; ends with the plain line `N passed, N failed` (all suites summed)
# and exits non-zero on any failure. This is the README's test command; .ci/run calls it.
#
# Suites: the TypeScript type check (counted as one test), cargo tests of the core (CUDA build when nvcc is present, and the stub build), bun tests (unit,
# native, e2e) against the default library, and the native boundary tests against the stub library.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/counts.sh
logs=build/test-logs
mkdir -p "$logs"
passed=0
failed=0
bad=0

add_counts() { # suite-name log rc kind
  local name=$1 log=$2 rc=$3 kind=$4 p f
  read -r p f < <(suite_counts "$log" "$kind")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # a suite that failed without counting still fails
  [ "$rc" -ne 0 ] && bad=1
  passed=$((passed + p))
  failed=$((failed + f))
  echo "== $name: $p passed, $f failed (exit $rc)"
}

suite() { # name kind command...
  local name=$1 kind=$2
  shift 2
  local log="$logs/$name.log"
  echo "== $name: $*"
  "$@" >"$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then tail -n 60 "$log"; fi
  add_counts "$name" "$log" "$rc" "$kind"
}

bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
echo "== build"
if ! { NDET_CUDA=0 bash scripts/build-native.sh --out build/stub-lib &&
  NDET_CUDA=0 bash scripts/build.sh --outdir dist/stub &&
  bash scripts/build.sh; } >"$logs/build.log" 2>&1; then
  tail -n 60 "$logs/build.log"
  echo "0 passed, 1 failed"
  exit 1
fi
cat "$logs/build.log" | grep -E '^(native|built)'

echo "== typecheck: tsc --noEmit"
if node_modules/.bin/tsc --noEmit -p . >"$logs/typecheck.log" 2>&1; then
  passed=$((passed + 1)); echo "== typecheck: ok"
else
  failed=$((failed + 1)); bad=1; tail -n 40 "$logs/typecheck.log"; echo "== typecheck: FAILED"
fi

suite cargo-default cargo cargo test --release -p nndet-core
suite cargo-stub cargo env NDET_CUDA=0 CARGO_TARGET_DIR=target/stub cargo test --release -p nndet-core
suite bun bun bun test
suite bun-stub-native bun env NDET_LIB=build/stub-lib/libnndet_core.so bun test test/native/boundary.test.ts

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$bad" -ne 0 ]; then exit 1; fi
