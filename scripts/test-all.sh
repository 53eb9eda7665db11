#!/usr/bin/env bash
# The single "run every test" command (also what CI runs via .ci/run):
# system deps -> npm ci -> build -> fixtures -> unit, property and
# integration tests. Exits non-zero on any failure.
#
#   bash scripts/test-all.sh        (or: npm test)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "system dependencies"
bash scripts/ensure-system-deps.sh

# Always a clean install on CI; locally only when node_modules is missing or
# older than package-lock.json.
if [[ ${CI:-} == true || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi

step "build"
npm run --silent build

export OCCYSTRAP_FIXTURES=${OCCYSTRAP_FIXTURES:-$repo/.fixtures}
step "fixtures ($OCCYSTRAP_FIXTURES)"
bash test/fixtures/build.sh "$OCCYSTRAP_FIXTURES"

step "tests"
test_dirs=()
for d in dist/test dist/property-tests; do
  [[ -d $d ]] && test_dirs+=("$d")
done
if ((${#test_dirs[@]} == 0)); then
  echo "test-all: no compiled tests found under dist/" >&2
  exit 1
fi
node --test --test-reporter=spec --test-concurrency=1 "${test_dirs[@]}"
