#!/usr/bin/env bash
# The main job on a fresh machine: set up, build dist/nndet, and run it end to end on the embedded default:
# nnDetection's toy task (Task000D3_Example: 10 train + 10 test cases of 256^3), generated into $det_data
# (default ./nndet_data), checked in full, and planned + preprocessed. Train, predict, eval join as they land.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/build.sh
export det_data=${det_data:-$root/nndet_data}
dist/nndet env
dist/nndet example
dist/nndet check 000 --full
dist/nndet prep 000
