#!/usr/bin/env bash
# Prompt-search benchmark (issue 9, item 4): bench/search.yaml's 16 candidates × 50 dev items
# (520 calls) on SmolLM2, through the real binary, on a fresh database; only the optimised arm,
# on one eval item. Prints the CPU model, the wall time, the search's calls and compute seconds
# (from the run's database) and the time from its first to its last stored call.
#
# Usage: bench/search.sh [BINARY]       (default target/release/orchestrator, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/orchestrator}
[ -x "$BIN" ] || cargo build --quiet --release -p orchestrator --bins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lscpu | grep 'Model name' | sed 's/  */ /g'
start=$(date +%s.%N)
ORCHESTRATOR_DB="$work/bench.db" "$BIN" run bench/search.yaml --arms opt@smollm2 --limit 1 \
  > "$work/out.txt" 2> "$work/err.txt" || { cat "$work/err.txt"; exit 1; }
end=$(date +%s.%N)
grep -E "optimize|chose" "$work/err.txt" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' | tail -3 || true
python3 - "$work/bench.db" "$start" "$end" <<'PY'
import sqlite3, sys
db, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
c = sqlite3.connect(db)
n, cpu, first, last = c.execute(
    "SELECT count(*), sum(compute_seconds), min(created_ms), max(created_ms) "
    "FROM calls WHERE arm LIKE 'opt@smollm2~%'").fetchone()
print(f"wall {end - start:.1f} s; search: {n} calls, {cpu:.1f} s compute, "
      f"{(last - first) / 1000:.1f} s first to last stored call")
PY
