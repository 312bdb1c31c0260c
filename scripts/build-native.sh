#!/usr/bin/env bash
# Build the native core (release) and place it at build/lib/libnndet_core.so, where dev runs and the
# compiled binary's embed find it. CUDA is compiled in when nvcc is found (NDET_CUDA=0|1 forces either way).
# NDET_CUDA=0 builds into target/stub so both variants can live side by side.
#   usage: scripts/build-native.sh [--out DIR]   (default DIR: build/lib)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=build/lib
if [ "${1:-}" = "--out" ]; then out=$2; fi
target=target
if [ "${NDET_CUDA:-}" = "0" ]; then target=target/stub; fi
CARGO_TARGET_DIR=$target cargo build --release -p nndet-core --quiet
mkdir -p "$out"
cp "$target/release/libnndet_core.so" "$out/libnndet_core.so.tmp"
mv "$out/libnndet_core.so.tmp" "$out/libnndet_core.so"
kind=stub
if [ "$(nm "$out/libnndet_core.so" 2>/dev/null | grep -c ndk_saxpy || true)" -gt 0 ]; then kind=cuda; fi
echo "native: $out/libnndet_core.so ($kind)"
