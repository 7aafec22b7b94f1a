#!/usr/bin/env bash
# Runs every suite (Rust unit/integration, the loom model, the C engine tests,
# the ASan harness, tap) and ends with one line adding them all up:
# "N passed, N failed". Exits non-zero if any suite failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log=$(mktemp -d)
total_pass=0
total_fail=0
status=0

# run NAME COMMAND...: runs a suite, keeps its output, adds up its counts.
run() {
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$log/$name.out"
  local rc=${PIPESTATUS[0]}
  local p f
  case $name in
    rust|loom)
      p=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log/$name.out" | awk '{s+=$4} END {print s+0}')
      f=$(grep -Eo '[0-9]+ failed;' "$log/$name.out" | awk '{s+=$1} END {print s+0}')
      ;;
    tap)
      # Count each test file's subtests (4-space indented results in TAP).
      p=$(grep -cE '^    ok [0-9]+ ' "$log/$name.out")
      f=$(grep -cE '^    not ok [0-9]+ ' "$log/$name.out")
      ;;
    *)
      p=$(grep -Eo '^[a-z ]*: ?[0-9]+ passed, [0-9]+ failed' "$log/$name.out" | sed -E 's/.*: ?([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
      f=$(grep -Eo '^[a-z ]*: ?[0-9]+ passed, [0-9]+ failed' "$log/$name.out" | sed -E 's/.* ([0-9]+) failed/\1/' | awk '{s+=$1} END {print s+0}')
      ;;
  esac
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # a suite that died counts as a failure
  [ "$rc" -ne 0 ] && status=1
  echo "== $name: $p passed, $f failed (exit $rc)"
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
}

echo "== build: npm run build:native (tests must load the current libraries)"
npm run -s build:native || { echo "0 passed, 1 failed"; exit 1; }

run rust cargo test --release --manifest-path native/bridge/Cargo.toml
run loom env RUSTFLAGS='--cfg loom' CARGO_TARGET_DIR=native/bridge/target/loom LOOM_MAX_PREEMPTIONS=3 \
  cargo test --release --manifest-path native/bridge/Cargo.toml --test loom
run c bash native/test/run.sh
echo "== build: npm run build (the tap suites start the compiled daemon)"
npm run -s build || { total_fail=$((total_fail + 1)); status=1; }
run tap npx tap -R tap --jobs=1 --disable-coverage test/*.test.ts
echo "$total_pass passed, $total_fail failed"
exit $status
