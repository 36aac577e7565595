#!/usr/bin/env python3
"""Builds snips_intent.jsonl from BIG-bench's intent_recognition task.json (see SOURCE.md).

Usage: python3 convert.py [PATH/TO/task.json]

Standard library only; the output is byte-for-byte reproducible from the same input.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(
    HERE, "..", "..", "..", "shared", "datasets", "snips_intent_bigbench", "task.json",
)
PREFIX = "Utterance: "


def main() -> None:
    source = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    with open(source, encoding="utf-8") as f:
        task = json.load(f)

    out = os.path.join(HERE, "snips_intent.jsonl")
    n = 0
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for example in task["examples"]:
            text = example["input"]
            if text.startswith(PREFIX):
                text = text[len(PREFIX):]
            labels = [k for k, v in example["target_scores"].items() if v == 1]
            if len(labels) != 1:
                raise SystemExit(f"expected one correct intent, got {labels}: {text}")
            f.write(json.dumps({"text": text.strip(), "label": labels[0]}, ensure_ascii=False) + "\n")
            n += 1
    print(f"wrote {n} rows to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
