#!/usr/bin/env bash
# The price of a learning curve (issue 11, item 5): on the quickstart data and fine-tune, runs
# a 4-size curve (train_sizes 40, 80, 160 and the declared 320) and then the largest size alone,
# in the same sitting, each into a fresh database, and prints the CPU model, each run's wall
# time, every arm's training and eval seconds, and the ratios the issue's goal is stated in
# (curve ÷ largest alone: wall time, and training time).
#
# Usage: bench/learning_curve.sh [BINARY]     (default target/release/orchestrator)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/orchestrator}
[ -x "$BIN" ] || cargo build --quiet --release -p orchestrator -p finetune-worker --bins
BIN=$(realpath "$BIN")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$(realpath datasets/vader-movie/movie_snippets.jsonl)

spec() { # $1: name, $2: extra fine-tune keys
  cat <<YAML
name: $1
dataset: { path: $data, input: text, target: label, split: { eval: 120, train: 320, seed: 7 } }
prompts:
  - id: zero-shot
    system: You label the sentiment of movie reviews.
    template: |
      Review: {{text}}
      Is this review positive or negative? Answer with one word: positive or negative.
finetunes:
  - { id: lora, base_model: smollm2-135m-instruct, prompt: zero-shot, lora_r: 8, lora_alpha: 16,
      lora_dropout: 0.05, lora_target_modules: [q_proj, v_proj], learning_rate: 1.0e-3,
      num_epochs: 1, micro_batch_size: 8, sequence_len: 128, val_set_size: 0.1, warmup_steps: 4,
      seed: 7, compute: { device: cpu, cost_per_hour: 0.05 }$2 }
generation: { max_tokens: 4, temperature: 0 }
scorers: [ { type: equals } ]
decision: { metric: equals, quality_target: 0.80 }
costs: { staff: { labelling_minutes_per_example: 1 } }
YAML
}

measure() { # $1: name; prints "wall_seconds" and leaves the report JSON in $work/$1.json
  spec "$1" "$2" > "$work/$1.yaml"
  local start end
  start=$(date +%s.%N)
  if ! (cd "$work" && "$BIN" run "$1.yaml" --db "$1.db" > "$1.log" 2>&1); then
    echo "run $1 failed:" >&2; tail -20 "$work/$1.log" >&2; exit 1
  fi
  end=$(date +%s.%N)
  (cd "$work" && "$BIN" report "$1" --db "$1.db" --format json > "$1.json")
  python3 -c "print(round($end - $start, 1))"
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
curve_wall=$(measure curve ", train_sizes: [40, 80, 160]")
alone_wall=$(measure alone "")
python3 - "$work" "$curve_wall" "$alone_wall" <<'PY'
import json, sys
work, curve_wall, alone_wall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def arms(name):
    r = json.load(open(f"{work}/{name}.json"))
    return r, [(a["arm"], a["measured"]["train_seconds"] or 0.0,
                a["measured"]["mean_compute_seconds"] * a["measured"]["items"], a["quality"])
               for a in r["arms"]]
curve, c = arms("curve")
alone, a = arms("alone")
for name, rows, wall in (("curve", c, curve_wall), ("alone", a, alone_wall)):
    print(f"{name}: wall {wall:.1f} s")
    for arm, train, evals, q in rows:
        print(f"  {arm:10} train {train:6.1f} s  eval {evals:6.1f} s  quality {q:.3f}")
train_c, train_a = sum(r[1] for r in c), sum(r[1] for r in a)
print(f"curve / alone: wall {curve_wall / alone_wall:.2f}x, training {train_c / train_a:.2f}x")
for l in curve.get("curves", {}).get("learning", []):
    print("fit:", json.dumps(l["fit"]), "needed:", json.dumps(l["needed"]))
PY
