#!/usr/bin/env bash
# One command, fully offline: set up the project, generate the bundled sample
# image (a legacy `docker save` tarball made by examples/make-sample-image.mjs)
# and run a real occystrap job on it, unpacking it into examples/out.
#
#   bash examples/run-sample.sh        (or: npm run example)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Install dependencies only when node_modules is missing or stale.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
fi

echo "==> build"
npm run --silent build

echo "==> make sample image"
node examples/make-sample-image.mjs

echo "==> occystrap process tar://examples/sample-image.tar dir://examples/out"
rm -rf examples/out
node bin/occystrap.js process tar://examples/sample-image.tar dir://examples/out

echo "==> result"
find examples/out -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
  if [[ -f $p && ! -L $p ]]; then
    printf '%10s  %s\n' "$(wc -c <"$p" | tr -d ' ')" "${p#examples/out/}"
  else
    printf '%10s  %s\n' "" "${p#examples/out/}"
  fi
done
