#!/usr/bin/env python
"""Count in how many talks of the user's domain each candidate phrase occurs (keyphrase specificity).

The talks are the gold set's Whisper transcripts (``tests/data/structure_gold/*/transcript.json``);
a phrase said in most of them ("GPU", "token") is the domain's background, not a talk's topic.
Only phrases found in at least ``MIN_TALKS`` talks are written (a phrase absent from the file
counts as specific). Writes ``pipeline/ramble2post/structure/domain_terms.json``.

Usage: python scripts/build_domain_terms.py [--gold DIR] [-o FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from ramble2post.records import Transcript
from ramble2post.structure.clean import clean_segments
from ramble2post.structure.keyphrases import candidates

ROOT = Path(__file__).resolve().parent.parent
MIN_TALKS = 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gold", type=Path, default=ROOT / "tests" / "data" / "structure_gold")
    ap.add_argument(
        "-o", "--output", type=Path, default=ROOT / "pipeline" / "ramble2post" / "structure" / "domain_terms.json"
    )
    args = ap.parse_args()
    talks = sorted(args.gold.glob("*/transcript.json"))
    df: Counter[str] = Counter()
    for path in talks:
        t = Transcript.from_dict(json.loads(path.read_text()))
        keys, _, _ = candidates([s.text for s in clean_segments(t.segments)])
        df.update(set(keys))
    kept = {k: n for k, n in sorted(df.items()) if n >= MIN_TALKS}
    args.output.write_text(json.dumps({"talks": len(talks), "source": "gold set transcripts", "df": kept}, indent=0))
    print(f"{len(talks)} talks, {len(kept)} phrases in {MIN_TALKS}+ talks -> {args.output}")
    top = sorted(kept.items(), key=lambda x: -x[1])[:15]
    print("most common:", ", ".join(f"{k} ({n})" for k, n in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
