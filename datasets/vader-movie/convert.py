#!/usr/bin/env python3
"""Builds movie_snippets.jsonl from VADER's movie-review ground truth (see SOURCE.md).

Usage: python3 convert.py [PATH/TO/movieReviewSnippets_GroundTruth.txt]

Standard library only; the output is byte-for-byte reproducible from the same input.
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.join(
    HERE, "..", "..", "..", "shared", "datasets", "vader_sentiment",
    "movieReviewSnippets_GroundTruth.txt",
)
# Mean human rating on -4..+4: at least this far from 0 to count as clearly positive/negative.
THRESHOLD = 0.5
# Rows kept per label, chosen by SHA-256 of the row id (a fixed, seed-free sample).
PER_LABEL = 2500


def main() -> None:
    source = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    rows = []
    with open(source, encoding="utf-8", newline="") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            rid, score, text = line.split("\t", 2)
            score = float(score)
            if score >= THRESHOLD:
                label = "positive"
            elif score <= -THRESHOLD:
                label = "negative"
            else:
                continue
            rows.append({"id": rid, "text": text.strip(), "label": label})

    kept = []
    for label in ("positive", "negative"):
        same = [r for r in rows if r["label"] == label]
        same.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
        kept.extend(same[:PER_LABEL])
    kept.sort(key=lambda r: int(r["id"]))

    out = os.path.join(HERE, "movie_snippets.jsonl")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for r in kept:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} clear rows, wrote {len(kept)} to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
