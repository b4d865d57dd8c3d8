#!/usr/bin/env python
"""Jargon-term recall and WER before and after the glossary, on labelled rambles.

Each folder holds ``reference.txt`` (what was said) and ``transcript.json`` (what Whisper
heard): by default the 14 rambles of tests/data/structure_gold and the 5 of
tests/data/structure_holdout (Whisper base; espeak-ng, Festival and flite voices, and two
excerpts of a real talk). Recall counts, for every glossary term, its occurrences in the
reference (case-insensitive, whole words) that the transcript also holds:
sum over terms of min(reference count, transcript count) / reference count.

    .venv/bin/python scripts/bench_jargon.py
    .venv/bin/python scripts/bench_jargon.py --json out.json --gold path/to/folders
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SETS = {"gold": REPO / "tests/data/structure_gold", "holdout": REPO / "tests/data/structure_holdout"}


def main() -> None:
    from ramble2post.transcribe.glossary import BUILTIN_TERMS, Glossary, correct_segments, term_counts
    from ramble2post.transcribe.wer import word_error_rate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gold", type=Path, action="append", help="folder of ramble folders (default: both sets)")
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()
    sets = {p.name: p for p in args.gold} if args.gold else SETS
    modes = {
        "none": None,
        # spacing, hyphen and case only (rule 1 of ramble2post/transcribe/glossary.py): no variants
        "squash-only": Glossary.build(terms={t: () for t in BUILTIN_TERMS}, builtin=False),
        "built-in": Glossary.build(),
    }
    terms = list(BUILTIN_TERMS)
    table = []
    print(
        f"{'set':8} {'glossary':12} {'rambles':>7} {'terms':>6} {'found':>6} {'recall %':>8} {'WER %':>6} {'fixes':>6}"
    )
    for set_name, root in sets.items():
        folders = sorted(p for p in root.iterdir() if (p / "transcript.json").exists())
        for mode, glossary in modes.items():
            ref_n = hit_n = fixes = 0
            refs, hyps = [], []
            per_term: dict[str, list[int]] = {}
            for folder in folders:
                ref = (folder / "reference.txt").read_text(encoding="utf-8")
                segs = json.loads((folder / "transcript.json").read_text(encoding="utf-8"))["segments"]
                if glossary is not None:
                    segs, records = correct_segments(segs, glossary)
                    fixes += len(records)
                hyp = " ".join(s["text"].strip() for s in segs)
                rc, hc = term_counts(ref, terms), term_counts(hyp, terms)
                for t in terms:
                    got = min(rc[t], hc[t])
                    ref_n, hit_n = ref_n + rc[t], hit_n + got
                    acc = per_term.setdefault(t, [0, 0])
                    acc[0] += rc[t]
                    acc[1] += got
                refs.append(ref)
                hyps.append(hyp)
            wer = word_error_rate(reference=" ".join(refs), hypothesis=" ".join(hyps))
            row = {
                "set": set_name,
                "glossary": mode,
                "rambles": len(folders),
                "term_occurrences": ref_n,
                "found": hit_n,
                "recall": round(hit_n / max(1, ref_n), 4),
                "wer": round(wer, 4),
                "corrections": fixes,
                "per_term": {t: v for t, v in per_term.items() if v[0]},
            }
            table.append(row)
            print(
                f"{set_name:8} {mode:12} {len(folders):7} {ref_n:6} {hit_n:6} {100 * row['recall']:8.1f}"
                f" {100 * wer:6.2f} {fixes:6}"
            )
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
