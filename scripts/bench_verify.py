#!/usr/bin/env python
"""Verification on labelled paraphrases: faithful rewrites accepted, unfaithful ones rejected?

``tests/data/paraphrase/pairs.jsonl``: rambling source sentences from the gold set, each with a
rewrite labelled faithful (what a strong model writes: fewer, other words, same claim) or
unfaithful by kind (number, unit, name, claim, negation, comparison, merge). Two rules are run
side by side on the same pairs:

- previous: the rule before issue 11 (lexical overlap >= 0.6 of the rewrite's content words,
  plus new numbers, units and names), the one that replaced most rewrites of a weak model;
- current: ``ramble2post.structure.verify.problems`` with the MiniLM cosine (all of the above,
  plus debris, meaning flips, denials of unmentioned things, invented clauses and merged sources).

Prints each rule's confusion matrix, faithful acceptance, unfaithful rejection per kind, and
the pairs the current rule gets wrong (``--wrong``).

``tests/data/paraphrase/heldout.jsonl``: more pairs of the same kinds from rambles the rules were
never tuned on (the structure holdout and unused passages of the GPU talk), written before the
rules were last changed: its figures are the honest estimate of how the rule generalises.

Usage: python scripts/bench_verify.py [--pairs FILE ...] [--wrong]
(default: pairs.jsonl, heldout.jsonl, and both together)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ramble2post.structure.verify import (
    embedding_cosine,
    lexical_overlap,
    numbers,
    problems,
    proper_nouns,
    units,
)

PREVIOUS_LEXICAL_MIN = 0.6  # the overlap bar before issue 11/12 (now verify.LEXICAL_MIN = 0.5)
DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "paraphrase"
PAIRS = DATA / "pairs.jsonl"  # thresholds were chosen on these
HELDOUT = DATA / "heldout.jsonl"  # written before the rules were changed, never used to choose them


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def previous_rule(text: str, source: str) -> bool:
    """Accepted by the verification as it was before issue 11 (overlap, numbers, units, names)."""
    src_low = source.lower()
    if numbers(text) - numbers(source) or units(text) - units(source):
        return False
    if {p for p in proper_nouns(text) - proper_nouns(source) if p not in src_low}:
        return False
    return lexical_overlap(text, source) >= PREVIOUS_LEXICAL_MIN


def current_rule(cosine: Callable[[str, str], float] | None) -> Callable[[str, str], bool]:
    return lambda text, source: not problems(text, source, cosine=cosine)


def score(rule: Callable[[str, str], bool], pairs: list[dict]) -> dict:
    cm = Counter()
    by_kind: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    wrong = []
    for p in pairs:
        accepted = rule(p["rewrite"], p["source"])
        cm[(p["faithful"], accepted)] += 1
        kinds[p["kind"]] += 1
        if accepted != p["faithful"]:
            wrong.append(p)
        elif not p["faithful"]:
            by_kind[p["kind"]] += 1
    faithful = cm[(True, True)] + cm[(True, False)]
    unfaithful = cm[(False, True)] + cm[(False, False)]
    return {
        "accepted_faithful": cm[(True, True)] / faithful if faithful else 1.0,
        "rejected_unfaithful": cm[(False, False)] / unfaithful if unfaithful else 1.0,
        "cm": cm,
        "by_kind": {k: f"{by_kind[k]}/{n}" for k, n in sorted(kinds.items()) if k != "faithful"},
        "wrong": wrong,
    }


def report(name: str, r: dict) -> None:
    cm = r["cm"]
    print(f"\n{name}")
    print("                    accepted  rejected")
    print(f"  faithful          {cm[(True, True)]:>8}  {cm[(True, False)]:>8}")
    print(f"  unfaithful        {cm[(False, True)]:>8}  {cm[(False, False)]:>8}")
    print(f"  faithful accepted {r['accepted_faithful']:.1%}, unfaithful rejected {r['rejected_unfaithful']:.1%}")
    print("  rejected by kind: " + ", ".join(f"{k} {v}" for k, v in r["by_kind"].items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # "--pairs A B" and "--pairs A --pairs B" both mean A and B
    ap.add_argument("--pairs", type=Path, nargs="+", action="extend", help="default: pairs.jsonl and heldout.jsonl")
    ap.add_argument("--wrong", action="store_true", help="list the pairs the current rule gets wrong")
    args = ap.parse_args()
    cosine = embedding_cosine()
    rule = current_rule(cosine)
    sets = {path.name: load(path) for path in args.pairs or [PAIRS, HELDOUT]}
    if len(sets) > 1:
        sets["all together"] = [p for pairs in list(sets.values()) for p in pairs]
    print(f"machine: {platform.processor() or platform.machine()}")
    for label, pairs in sets.items():
        print(f"\n=== {label}: {len(pairs)} pairs ({sum(p['faithful'] for p in pairs)} faithful)")
        results = {"previous (overlap >= 0.6)": score(previous_rule, pairs), "current": score(rule, pairs)}
        for name, r in results.items():
            report(name, r)
        if label == PAIRS.name:
            # the thresholds were chosen looking at half the rambles (every other one, sorted): both halves
            rambles = sorted({p["ramble"] for p in pairs})
            seen = set(rambles[::2])
            for name, part in (("chosen on", seen), ("held out", set(rambles) - seen)):
                r = score(rule, [p for p in pairs if p["ramble"] in part])
                print(
                    f"current, rambles thresholds were {name} ({len(part)}): faithful accepted"
                    f" {r['accepted_faithful']:.1%}, unfaithful rejected {r['rejected_unfaithful']:.1%}"
                )
        if args.wrong and label != "all together":
            print(f"\ncurrent rule, wrong on {label}:")
            for p in results["current"]["wrong"]:
                why = problems(p["rewrite"], p["source"], cosine=cosine)
                print(f"  [{p['kind']}] {p['rewrite'][:90]!r} <- {why[:2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
