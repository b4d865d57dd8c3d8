"""Claim detection on the labelled claim set: precision and recall, calibration and held-out halves.

    .venv/bin/python scripts/bench_claims.py            # scores, per experiment and overall
    .venv/bin/python scripts/bench_claims.py --errors   # also list the sentences it gets wrong

Data: tests/data/claims/claims.jsonl (sentence, experiment, claim true/false, claim_kind, split);
see its README. The rules live in experiments/ramble2post/experiments/claims.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLAIMS = REPO / "tests" / "data" / "claims" / "claims.jsonl"
TARGET_P, TARGET_R = 0.9, 0.8


def load(path: Path = CLAIMS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(rows: list[dict]) -> tuple[float, float, int, int, int]:
    """(precision, recall, tp, fp, fn) of is_claim against the labels."""
    from ramble2post.experiments.claims import is_claim

    tp = fp = fn = 0
    for r in rows:
        got = is_claim(r["text"])
        tp += got and r["claim"]
        fp += got and not r["claim"]
        fn += (not got) and r["claim"]
    return (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0, tp, fp, fn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", action="store_true", help="list misclassified sentences")
    args = ap.parse_args()
    from ramble2post.experiments.claims import classify, is_claim

    rows = load()
    print(
        f"{len(rows)} sentences: {sum(r['claim'] for r in rows)} claims, {sum(not r['claim'] for r in rows)} mentions"
    )
    print(f"{'set':<34} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}")
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[f"split {r['split']}"].append(r)
        groups[f"  experiment {r['experiment']}"].append(r)
        if r.get("misheard"):
            groups["misheard forms"].append(r)
    results = {"all": score(rows)}
    for name in sorted(groups, key=lambda n: (n.startswith("  "), n)):
        results[name] = score(groups[name])
    for name, (p, r, tp, fp, fn) in results.items():
        print(f"{name:<34} {p:>9.3f} {r:>7.3f} {tp:>4} {fp:>4} {fn:>4}")
    kinds = [r for r in rows if r["claim"] and is_claim(r["text"])]
    same = sum(classify(r["text"]) == r["claim_kind"] for r in kinds)
    print(f"claim kind right on {same}/{len(kinds)} detected claims")
    if args.errors:
        for r in rows:
            if is_claim(r["text"]) != r["claim"]:
                print(f"  {'FN' if r['claim'] else 'FP'} {r['id']:>3} {r['split'][:3]} {r['experiment']}: {r['text']}")
    p, r, *_ = results["split holdout"]
    ok = p >= TARGET_P and r >= TARGET_R
    print(f"\nheld-out target precision >= {TARGET_P} and recall >= {TARGET_R}: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
