#!/usr/bin/env bash
# `choices` scoring against generating 4 tokens (issue 9, item 4): bench/choices_vs_generate.yaml
# through the real binary on a fresh database; prints the CPU model and, per arm, the compute
# seconds per item recorded in the run's database.
#
# Usage: bench/choices_vs_generate.sh [BINARY]   (default target/release/orchestrator)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/orchestrator}
[ -x "$BIN" ] || cargo build --quiet --release -p orchestrator --bins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lscpu | grep 'Model name' | sed 's/  */ /g'
ORCHESTRATOR_DB="$work/bench.db" "$BIN" run bench/choices_vs_generate.yaml > /dev/null 2> "$work/err.txt" \
  || { cat "$work/err.txt"; exit 1; }
python3 - "$work/bench.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for arm, n, cpu, out in c.execute(
        "SELECT arm, count(*), sum(compute_seconds), avg(completion_tokens) FROM calls "
        "WHERE error IS NULL GROUP BY arm ORDER BY arm"):
    print(f"{arm}: {n} items, {cpu / n * 1000:.1f} ms compute per item, {out:.2f} answer tokens")
PY
