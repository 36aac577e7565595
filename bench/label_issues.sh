#!/usr/bin/env bash
# Label-issue detection with known flips (issue 11, item 4): takes the first N rows of a dataset
# from datasets/, flips the label of a seeded FRAC of them to another label, runs
# `orchestrator data check --arm` with SmolLM2 (a zero-shot prompt with `choices`), and prints
# the CPU model, the wall time, and the precision and recall of the suspects against the flips.
#
# With PROBE=knn the probe is cross-validated kNN on all-MiniLM-L6-v2 embeddings instead; with
# PROBE=finetune it is FOLDS (default 3) LoRA fine-tunes of SmolLM2 with the same prompt, one
# epoch each, every fold's rows answered by the fine-tune that did not train on them.
#
# Usage: [PROBE=arm|knn|finetune] [FOLDS=3] bench/label_issues.sh [snips|vader] [N] [FRAC] [BINARY]   (default snips 400 0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-snips}; N=${2:-400}; FRAC=${3:-0.1}
BIN=${4:-target/release/orchestrator}
[ -x "$BIN" ] || cargo build --quiet --release -p orchestrator -p finetune-worker --bins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$DATA" in
  snips) SRC=datasets/snips-intent/snips_intent.jsonl
         SYSTEM="You route voice-assistant requests. Reply with the intent name only."
         TEMPLATE='Which intent does this utterance express?\nIntents: add_to_playlist, book_restaurant, get_weather, play_music, rate_book, search_creative_work, search_screening_event\nUtterance: {{text}}' ;;
  vader) SRC=datasets/vader-movie/movie_snippets.jsonl
         SYSTEM="You label the sentiment of movie reviews."
         TEMPLATE='Review: {{text}}\nIs this review positive or negative? Answer with one word: positive or negative.' ;;
  *) echo "unknown dataset $DATA" >&2; exit 1 ;;
esac
python3 - "$SRC" "$N" "$FRAC" "$work" <<'PY'
import json, random, sys
src, n, frac, work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in open(src)][:n]
labels = sorted({r["label"] for r in rows})
rng = random.Random(11)
flipped = set(rng.sample(range(len(rows)), round(frac * len(rows))))
with open(f"{work}/data.jsonl", "w") as out:
    for i, r in enumerate(rows):
        label = r["label"]
        if i in flipped:
            label = rng.choice([l for l in labels if l != label])
        out.write(json.dumps({"id": f"r{i}", "text": r["text"], "label": label}) + "\n")
json.dump(sorted(f"r{i}" for i in flipped), open(f"{work}/flipped.json", "w"))
json.dump(labels, open(f"{work}/labels.json", "w"))
PY
half=$((N / 2))
cat > "$work/spec.yaml" <<YAML
name: label-issues-bench
dataset: { path: data.jsonl, input: text, target: label, split: { eval: $half, train: $((N - half)), seed: 7 } }
providers:
  - { id: smollm2, type: local, model: smollm2-135m-instruct, device: cpu, batch_size: 16 }
prompts:
  - id: labels
    system: "$SYSTEM"
    template: "$TEMPLATE"
    choices: $(cat "$work/labels.json")
finetunes:
  - { id: lora, base_model: smollm2-135m-instruct, prompt: labels, lora_r: 8, lora_alpha: 16,
      lora_dropout: 0.05, lora_target_modules: [q_proj, v_proj], learning_rate: 1.0e-3,
      num_epochs: 1, micro_batch_size: 8, sequence_len: 128, val_set_size: 0.1, warmup_steps: 4,
      seed: 7, compute: { device: cpu } }
YAML
lscpu | grep 'Model name' | sed 's/  */ /g'
start=$(date +%s.%N)
case "${PROBE:-arm}" in
  knn) how=(--probe knn) ;;
  finetune) how=(--arm lora --folds "${FOLDS:-3}") ;;
  *) how=(--arm labels@smollm2) ;;
esac
echo "probe: ${how[*]}"
"$BIN" data check "$work/spec.yaml" "${how[@]}" --format json > "$work/out.json"
end=$(date +%s.%N)
python3 - "$work" "$start" "$end" <<'PY'
import json, sys
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
out = json.load(open(f"{work}/out.json"))["label_issues"]
flipped = set(json.load(open(f"{work}/flipped.json")))
flagged = {s["id"] for s in out["suspects"]}
hit = len(flagged & flipped)
p = hit / len(flagged) if flagged else float("nan")
r = hit / len(flipped) if flipped else float("nan")
top = [s["id"] for s in out["suspects"]][:len(flipped)]
p_top = len(set(top) & flipped) / max(1, len(top))
print(f"wall {end - start:.1f} s; {out['scored']} rows scored, {len(flipped)} flipped "
      f"({len(flipped) / max(1, out['scored']):.1%}); flagged {len(flagged)}: precision {p:.3f}, "
      f"recall {r:.3f}; precision of the top {len(top)}: {p_top:.3f}")
PY
