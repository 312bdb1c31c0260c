#!/usr/bin/env bash
# The main job on a fresh machine: set up, build dist/nndet, and run it on the embedded default.
# Until the pipeline verbs land, the main job reports the environment (nndet env).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/build.sh
dist/nndet env
