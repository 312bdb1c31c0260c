#!/usr/bin/env bash
# Install what the project needs on a fresh machine with Node.js/npm and a Rust toolchain:
# Bun at the version pinned in package.json (via npm), and the node modules from the frozen lockfile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v cargo >/dev/null || { echo "setup: cargo (a Rust toolchain) is required: https://rustup.rs" >&2; exit 1; }
want=$(node -e 'console.log(require("./package.json").packageManager.split("@")[1])')
have=$(bun --version 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "setup: installing bun $want (found: ${have:-none})"
  npm install -g "bun@$want" --no-fund --no-audit >/dev/null
  hash -r
  have=$(bun --version)
  [ "$have" = "$want" ] || { echo "setup: bun $want wanted, $have on PATH" >&2; exit 1; }
fi
bun install --frozen-lockfile >/dev/null
echo "setup: bun $have, node modules installed"
