#!/usr/bin/env bash
# Runs the test suite N times while every core is kept busy, to bring out tests that fail
# only now and then (a wait that was really a race, a rate a loaded machine cannot give).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
Usage: bash scripts/stress-test.sh [--no-load] [N] [BUN_TEST_ARGS...]

Runs the whole suite N times (default 1) through scripts/test.sh while a CPU hog keeps
every core busy: `stress-ng --cpu 0` when installed, else one busy shell loop per core.
The hog is stopped when the script ends, also on Ctrl-C.

Extra arguments go to `bun test`, so the suspects alone can be run many times:
  bash scripts/stress-test.sh 10 tests/publish.test.ts tests/stream-e2e.test.ts

Each run's JUnit report and output are kept in test-results/stress-<time>/run-<i>.xml
and run-<i>.log. At the end it prints the time each run took and, for each test that
failed, in how many runs it failed; the exit status is 1 if any test failed in any run.

  --no-load   run without the CPU hog (to tell load-made failures from others)
  --help      this text
EOF
}

load=1
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --no-load) load=0; shift ;;
    *) break ;;
  esac
done
runs=1
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  runs=$1
  shift
fi
if [ "$runs" -lt 1 ]; then
  echo "stress-test: invalid N=$runs: expected a whole number of runs, 1 or more" >&2
  exit 2
fi

[ -d .cache/bun/node_modules/.bin ] && export PATH="$PWD/.cache/bun/node_modules/.bin:$PATH"
command -v bun >/dev/null || { echo "stress-test: bun is not on PATH; run bash scripts/setup.sh --test" >&2; exit 1; }

out="test-results/stress-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

# --- the CPU hog -------------------------------------------------------------
hogs=()
stop_hogs() {
  local p
  for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${hogs[@]}"; do wait "$p" 2>/dev/null || true; done
  hogs=()
}
run_pid=
stop_run() {
  # The run is a session of its own (see below): end bun test and whatever it started.
  [ -n "$run_pid" ] && kill -TERM -- "-$run_pid" 2>/dev/null || true
}
trap stop_hogs EXIT
trap 'echo "stress-test: interrupted" >&2; stop_run; exit 130' INT TERM
cores=$(nproc)
if [ "$load" -eq 1 ]; then
  if command -v stress-ng >/dev/null; then
    # --timeout bounds the hog even if this script is killed with -9 and never cleans up.
    stress-ng --cpu 0 --timeout "$((runs * 3600))" --quiet &
    hogs+=("$!")
    hog="stress-ng --cpu 0 ($cores cores)"
  else
    for _ in $(seq "$cores"); do
      # Each loop ends by itself once this script is gone, however it ended.
      bash -c 'while kill -0 "$1" 2>/dev/null; do :; done' _ "$$" &
      hogs+=("$!")
    done
    hog="$cores busy shell loops (stress-ng is not installed)"
  fi
else
  hog="none (--no-load)"
fi
echo "stress-test: $runs run(s) of bash scripts/test.sh $*; CPU hog: $hog; reports in $out" >&2

# --- the runs ------------------------------------------------------------------
times=()
for i in $(seq "$runs"); do
  start=$(date +%s%N)
  status=0
  # In the background, so that Ctrl-C reaches the trap at once rather than when the run ends
  # (bun test handles SIGINT itself, and bash then lets it pass); in a session of its own, so
  # that the trap can stop the whole run.
  setsid bash scripts/test.sh "$@" >"$out/run-$i.log" 2>&1 &
  run_pid=$!
  wait "$run_pid" || status=$?
  run_pid=
  took=$((($(date +%s%N) - start) / 1000000000))
  times+=("$took")
  if [ -f test-results/junit.xml ]; then
    cp test-results/junit.xml "$out/run-$i.xml"
  fi
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/run-$i.log" | tail -1 || true)
  printf 'run %d/%d: %s in %d s (exit %d)\n' "$i" "$runs" "${summary:-no summary}" "$took" "$status" >&2
done
stop_hogs

# --- the summary -----------------------------------------------------------------
# bun writes one element per line, nested <testsuite>s for files and describe blocks.
parser=$(mktemp --suffix=.ts)
trap 'stop_run; stop_hogs; rm -f "$parser"' EXIT
cat >"$parser" <<'EOF'
const unescape = (s: string) =>
  s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&#10;/g, " ").replace(/&amp;/g, "&");
const [runs, ...reports] = process.argv.slice(2);
const failed = new Map<string, number>();
let unfinished = 0;
for (let i = 1; i <= Number(runs); i++) {
  const path = reports.find((r) => r.endsWith(`/run-${i}.xml`));
  if (!path || !(await Bun.file(path).exists())) {
    unfinished++;
    continue;
  }
  const names = new Set<string>();
  const suites: string[] = [];
  let current: string | null = null;
  for (const tag of (await Bun.file(path).text()).matchAll(/<(\/?)(testsuite|testcase|failure|error)\b([^>]*?)(\/?)>/g)) {
    const [, close, kind, attrs, selfClose] = tag;
    const name = unescape(/\sname="([^"]*)"/.exec(attrs!)?.[1] ?? "");
    if (kind === "testsuite") {
      if (close) suites.pop();
      else if (!selfClose) suites.push(name);
    } else if (kind === "testcase") {
      current = close || selfClose ? null : [...suites, name].join(" > ");
    } else if (!close && current !== null) {
      names.add(current);
    }
  }
  for (const n of names) failed.set(n, (failed.get(n) ?? 0) + 1);
}
const lines = [...failed].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
if (lines.length === 0 && unfinished === 0) console.log(`no test failed in ${runs} run(s)`);
else {
  console.log(`tests that failed (runs failed / runs):`);
  for (const [name, n] of lines) console.log(`  ${n}/${runs}  ${name}`);
  if (unfinished) console.log(`  ${unfinished}/${runs}  (bun test wrote no report: it crashed or was killed)`);
}
process.exit(lines.length > 0 || unfinished > 0 ? 1 : 0);
EOF
echo
echo "time per run:"
for i in $(seq "$runs"); do printf '  run %d: %d s\n' "$i" "${times[$((i - 1))]}"; done
result=0
bun "$parser" "$runs" "$out"/run-*.xml || result=$?
echo "reports and output: $out"
exit "$result"
