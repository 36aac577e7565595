#!/usr/bin/env bash
# Prompt-arm throughput benchmark (issue 2, item 9): N calls (default 10,000) of the real
# `orchestrator` binary against `openai-testserver --latency-ms 50`, with 64 and then 256 calls in
# flight. For each: wall time against the ideal (calls × latency ÷ concurrency), peak RSS and CPU
# time of the orchestrator process (GNU time), and CPU per call.
#
# Usage: bench/prompt_arm.sh [N]        (env: LATENCY_MS=50 CONCURRENCY="64 256" PROFILE=release)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-10000}
LATENCY_MS=${LATENCY_MS:-50}
CONCURRENCY=${CONCURRENCY:-"64 256"}
PROFILE=${PROFILE:-release}

if [ ! -x /usr/bin/time ]; then
  echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2
  exit 1
fi
if [ "$PROFILE" = release ]; then
  cargo build --quiet --release -p orchestrator -p testserver --bins
else
  cargo build --quiet -p orchestrator -p testserver --bins
fi
BIN=target/$PROFILE
[ "$PROFILE" = dev ] && BIN=target/debug

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A synthetic eval set: N distinct items.
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"id\":\"item-%d\",\"text\":\"<q%d> is this fine?\",\"label\":\"%s\"}\n", i, i, (i % 5 == 4) ? "no" : "yes" }' \
  > "$work/data.jsonl"

"$BIN/openai-testserver" --latency-ms "$LATENCY_MS" --answers yes > "$work/server.out" &
server_pid=$!
for _ in $(seq 100); do
  [ -s "$work/server.out" ] && break
  sleep 0.05
done
base_url=$(head -n1 "$work/server.out")

printf '%-6s %-8s %-10s %-10s %-8s %-12s %-10s %s\n' \
  calls inflight wall_s ideal_s ratio peak_rss_mb cpu_s cpu_ms/call
for c in $CONCURRENCY; do
  cat > "$work/spec-$c.yaml" <<YAML
name: bench-$c
dataset: { path: data.jsonl, input: text, target: label }
providers:
  - id: testserver
    type: openai
    model: bench-model
    base_url: $base_url
    api_key_env: BENCH_API_KEY
    max_concurrency: $c
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.60 }
prompts:
  - id: plain
    template: "Q: {{text}}"
generation: { max_tokens: 8, temperature: 0 }
scorers:
  - type: equals
YAML
  BENCH_API_KEY=bench /usr/bin/time -v "$BIN/orchestrator" run "$work/spec-$c.yaml" \
    --db "$work/bench-$c.db" > "$work/run-$c.out" 2> "$work/time-$c.txt" || {
    cat "$work/run-$c.out" "$work/time-$c.txt" >&2
    exit 1
  }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
           for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time-$c.txt")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time-$c.txt")
  user=$(awk -F': ' '/User time/ { print $2 }' "$work/time-$c.txt")
  sys=$(awk -F': ' '/System time/ { print $2 }' "$work/time-$c.txt")
  awk -v n="$N" -v c="$c" -v lat="$LATENCY_MS" -v wall="$wall" -v rss="$rss_kb" -v u="$user" -v s="$sys" 'BEGIN {
    ideal = n * lat / 1000 / c; cpu = u + s;
    printf "%-6d %-8d %-10.2f %-10.2f %-8.3f %-12.1f %-10.2f %.3f\n", n, c, wall, ideal, wall / ideal, rss / 1024, cpu, cpu * 1000 / n }'
done
