#!/usr/bin/env python
"""A model as the second faithfulness check: its front on the labelled paraphrase pairs.

For each pair of ``tests/data/paraphrase`` (pairs.jsonl: the rules were tuned on it;
heldout.jsonl: never used to choose anything), the rules' verdict (``structure.verify``)
and the model's P(supported) (``structure.support``) are computed once; then every threshold t
on the calibration file gives (faithful accepted, unfaithful rejected) for the model alone and
for "rules pass and P >= t". The threshold chosen on pairs.jsonl (the most faithful accepted
with unfaithful rejected >= 95 %, else the point that rejects most) is reported on heldout.jsonl.

Also model_rewrites.jsonl (rewrites the candidate models wrote), its calibration and heldout halves apart.

Usage: python scripts/bench_support.py [--model qwen2.5-coder-1.5b] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "paraphrase"
TARGET_ACCEPT, TARGET_REJECT = 0.90, 0.95


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _sets(limit: int) -> list[tuple[str, list[dict]]]:
    """The labelled files; model_rewrites.jsonl (rewrites real models wrote) split into its two halves."""
    out = [(name, load(DATA / name)[: limit or None]) for name in ("pairs.jsonl", "heldout.jsonl")]
    if (DATA / "model_rewrites.jsonl").exists():
        rows = load(DATA / "model_rewrites.jsonl")
        for half in ("calibration", "heldout"):
            out.append((f"model_rewrites.jsonl {half}", [p for p in rows if p.get("split") == half][: limit or None]))
    return out


def rates(pairs: list[dict], accepted: list[bool]) -> tuple[float, float]:
    f = [a for p, a in zip(pairs, accepted) if p["faithful"]]
    u = [a for p, a in zip(pairs, accepted) if not p["faithful"]]
    return (sum(f) / len(f) if f else 1.0, (len(u) - sum(u)) / len(u) if u else 1.0)


def choose(pairs: list[dict], rules: list[bool], probs: list[float]) -> tuple[float, float, float]:
    """(threshold, accepted, rejected) for rules + model on ``pairs``: the target if reachable, else most rejecting."""
    best = None
    for t in sorted({0.0, *probs, 1.01}):
        acc, rej = rates(pairs, [r and p >= t for r, p in zip(rules, probs)])
        key = (rej >= TARGET_REJECT, acc if rej >= TARGET_REJECT else rej, acc)
        if best is None or key > best[0]:
            best = (key, t, acc, rej)
    assert best is not None
    return best[1], best[2], best[3]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="a packaged name or GGUF path")
    ap.add_argument("--limit", type=int, default=0, help="pairs per file (0: all)")
    ap.add_argument("--sets", default="", help="only the sets whose name contains this (e.g. model_rewrites)")
    args = ap.parse_args()
    from ramble2post.structure.models import load_llm
    from ramble2post.structure.support import SUPPORT_MIN, support_probability
    from ramble2post.structure.verify import embedding_cosine, problems

    cosine = embedding_cosine()
    model = load_llm(args.model)
    print(f"machine: {platform.processor() or platform.machine()}; judge: {args.model}")
    scored: dict[str, tuple[list[dict], list[bool], list[float]]] = {}
    for name, pairs in [x for x in _sets(args.limit) if args.sets in x[0] or x[0] == "pairs.jsonl"]:
        t0 = time.perf_counter()
        rules = [not problems(p["rewrite"], p["source"], cosine=cosine) for p in pairs]
        probs = [support_probability(model, source=p["source"], claim=p["rewrite"]) for p in pairs]
        secs = time.perf_counter() - t0
        scored[name] = (pairs, rules, probs)
        acc, rej = rates(pairs, rules)
        print(f"\n=== {name}: {len(pairs)} pairs, {secs:.0f} s ({1000 * secs / max(1, len(pairs)):.0f} ms per pair)")
        print(f"rules alone:            faithful accepted {acc:.1%}, unfaithful rejected {rej:.1%}")
        print("threshold  model alone (acc / rej)   rules + model (acc / rej)")
        for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            ma, mr = rates(pairs, [p >= t for p in probs])
            ba, br = rates(pairs, [r and p >= t for r, p in zip(rules, probs)])
            print(f"  {t:.1f}      {ma:6.1%} / {mr:6.1%}           {ba:6.1%} / {br:6.1%}")
    pairs, rules, probs = scored["pairs.jsonl"]
    t, acc, rej = choose(pairs, rules, probs)
    print(f"\nchosen on pairs.jsonl: P >= {t:.3f} behind the rules -> {acc:.1%} / {rej:.1%}")
    held = [n for n in scored if "heldout" in n]
    hp = [x for n in held for x in scored[n][0]]
    hr = [x for n in held for x in scored[n][1]]
    hprobs = [x for n in held for x in scored[n][2]]
    for label, bar in ((f"chosen P >= {t:.3f}", t), (f"shipped P >= {SUPPORT_MIN}", SUPPORT_MIN)):
        for n in held:
            a, r = rates(scored[n][0], [x and p >= bar for x, p in zip(scored[n][1], scored[n][2])])
            print(f"held out ({n}), rules + {label}: faithful accepted {a:.1%}, unfaithful rejected {r:.1%}")
    hacc, hrej = rates(hp, [r and p >= SUPPORT_MIN for r, p in zip(hr, hprobs)])
    print(
        f"all held-out pairs ({len(hp)}), rules + P >= {SUPPORT_MIN}: faithful accepted {hacc:.1%}, unfaithful rejected {hrej:.1%}"
    )
    ok = hacc >= TARGET_ACCEPT and hrej >= TARGET_REJECT
    print(f"target {TARGET_ACCEPT:.0%} / {TARGET_REJECT:.0%} on held-out pairs: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
