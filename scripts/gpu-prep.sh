#!/usr/bin/env bash
# Prepare, on this (CPU) machine, everything scripts/gpu-check.sh needs on the device machine (64 MiB of
# carried files at most): the packed Bun runtime (.device/bun.xz), the CUDA build of the core in build/lib,
# the core's Rust test binary in build/gpu/, and the runtime node modules only (build/gpu/node_modules;
# gpu-check.sh links it as ./node_modules there). Then call the device tool's `run` with
#   carry:   [".device", "build"]
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
rm -rf build/gpu build/test-logs build/stub-lib
mkdir -p build/gpu/node_modules
cp "$exe" build/gpu/nndet-core-tests
strip build/gpu/nndet-core-tests
# the runtime dependencies (package.json "dependencies") and theirs; no typescript, no types
bun -e '
const seen = new Set(); const todo = Object.keys((await Bun.file("package.json").json()).dependencies);
while (todo.length) { const d = todo.pop(); if (seen.has(d)) continue; seen.add(d);
  const pj = await Bun.file(`node_modules/${d}/package.json`).json(); todo.push(...Object.keys(pj.dependencies ?? {})); }
console.log([...seen].join("\n"));' | while read -r dep; do cp -r "node_modules/$dep" build/gpu/node_modules/; done
du -sh .device build | cat
du -scm .device build | tail -n 1 | awk '{ if ($1 > 62) { print "carry is " $1 " MiB: over the 64 MiB limit"; exit 1 } }'
