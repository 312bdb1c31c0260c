#!/usr/bin/env bash
# Build dist/nndet: the native core (scripts/build-native.sh) embedded in one compiled Bun executable, plus
# links dist/nndet_<verb> for every verb (nnDetection's command names).
#   NDET_CUDA=0 scripts/build.sh --outdir dist/stub   builds the stub (CPU-only) variant elsewhere.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
outdir=dist
if [ "${1:-}" = "--outdir" ]; then outdir=$2; fi
bash scripts/build-native.sh
mkdir -p "$outdir"
bun build --compile --minify-syntax --minify-whitespace src/main.ts src/data/prep-worker.ts --outfile "$outdir/nndet.tmp" >/dev/null
mv "$outdir/nndet.tmp" "$outdir/nndet"
for verb in $(bun -e 'import { verbs } from "./src/cli/verbs"; console.log(Object.keys(verbs).join(" "))'); do
  ln -sfn nndet "$outdir/nndet_$verb"
done
echo "built $outdir/nndet ($(du -h "$outdir/nndet" | cut -f1)) with links: $(cd "$outdir" && ls nndet_* | tr '\n' ' ')"
