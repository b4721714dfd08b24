#!/usr/bin/env bash
# Sets up what is missing, then runs every test and ends with "N passed, N failed".
# Extra arguments go to `bun test` (a file or -t PATTERN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
[ -d .cache/bun/node_modules/.bin ] && export PATH="$PWD/.cache/bun/node_modules/.bin:$PATH"
mkdir -p test-results
rm -f test-results/junit.xml
status=0
bun test --timeout 60000 --reporter=junit --reporter-outfile=test-results/junit.xml "$@" || status=$?
bun scripts/test-summary.ts test-results/junit.xml || { [ "$status" -ne 0 ] || status=1; }
[ "$status" -eq 0 ] || exit "$status"
