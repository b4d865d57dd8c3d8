#!/usr/bin/env python
"""Fit the role model on the labelled gold set and choose each role's fill threshold.

For each gold ramble the pipeline's own cleaned sentences of its Whisper transcript are
labelled through the reference labels (``scripts/_lib/gold.py: align``), featurised
as in the pipeline (``select.sentence_features``), and one logistic regression per role
is fitted (``scripts/_lib/role_fit.py: fit``).

Thresholds are chosen on leave-one-ramble-out probabilities, so that they are set by
rambles the model did not see: a role's threshold is the lowest value at which, over all
held-out rambles, no absent role would be filled and the top sentence shown is right at
least as often as ``WRONG_COST`` demands (right - WRONG_COST x wrong is largest), plus
``MARGIN`` for rambles unlike the gold set.

Usage:
    python scripts/train_roles.py                 # writes pipeline/ramble2post/structure/role_weights.json
    python scripts/train_roles.py --loo-dir DIR   # also one model per held-out ramble (for the benchmark)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _lib.gold import GoldRamble, align, gold_set
from _lib.role_fit import fit

from ramble2post.records import Transcript
from ramble2post.structure.clean import clean_segments
from ramble2post.structure.roles import ROLES, RoleModel
from ramble2post.structure.select import MAX_WORDS, MIN_WORDS, sentence_features

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "tests" / "data" / "structure_gold"
OUT = ROOT / "pipeline" / "ramble2post" / "structure" / "role_weights.json"
WRONG_COST = 3  # a wrong item shown costs this many right ones: break-even at 75 % precision per role
EXTRA_PRECISION = 0.9  # share of held-out second items above the threshold that serve the role
MARGIN = 0.05  # added to each threshold: unseen rambles are less like the gold set than its own folds
GRID = [round(0.2 + 0.025 * k, 3) for k in range(32)]  # 0.2 .. 0.975


def prepare(g: GoldRamble) -> dict:
    t = Transcript.from_dict(json.loads((g.folder / "transcript.json").read_text()))
    sents = clean_segments(t.segments)
    texts = [s.text for s in sents]
    where = align(g.sentences, texts)
    f = sentence_features(texts)
    labels = {r: [any(r in g.roles[i] for i in w) for w in where] for r in ROLES}
    ok = [MIN_WORDS <= len(x.split()) <= MAX_WORDS and not x.rstrip().endswith("?") for x in texts]
    return {"gold": g, "rows": f.rows, "labels": labels, "ok": ok, "topic": f.names_topic, "texts": texts}


def train(data: list[dict]) -> tuple:
    rows = [r for d in data for r in d["rows"]]
    labels = {r: [v for d in data for v in d["labels"][r]] for r in ROLES}
    return fit(rows, labels)


def model_of(params: tuple, threshold: dict, extra: dict, ids: list[str]) -> RoleModel:
    mean, scale, w, b = params
    return RoleModel(mean, scale, w, b, threshold, extra, tuple(ids))


def ranked(d: dict, probs: dict, role: str) -> list[int]:
    idx = [i for i, ok in enumerate(d["ok"]) if ok]
    return sorted(idx, key=lambda i: -probs[role][i])


def choose_thresholds(held: list[tuple[dict, dict]]) -> tuple[dict, dict, list[str]]:
    """Thresholds from held-out probabilities: (held-out ramble data, its probabilities) pairs."""
    threshold, extra, report = {"focus": 0.0}, {}, []
    for role in ROLES:
        if role != "focus":
            best, best_gain = 0.99, 0.0
            for tau in GRID:
                shown = right = bad = 0
                for d, p in held:
                    order = ranked(d, p, role)
                    if order and p[role][order[0]] >= tau:
                        shown += 1
                        right += d["labels"][role][order[0]]
                        bad += role in d["gold"].absent
                gain = right - WRONG_COST * (shown - right)
                if not bad and gain > best_gain:
                    best, best_gain = tau, gain
            threshold[role] = min(0.99, best + MARGIN)
        tau2 = None
        for t2 in GRID:
            if role != "focus" and t2 < threshold[role]:
                continue
            shown = right = 0
            for d, p in held:
                order = ranked(d, p, role)
                if len(order) > 1 and p[role][order[1]] >= t2:
                    shown += 1
                    right += d["labels"][role][order[1]]
            if not shown or right / shown >= EXTRA_PRECISION:
                tau2 = t2
                break
        extra[role] = min(0.99, (tau2 if tau2 is not None else 0.99) + MARGIN)
        report.append(f"{role:<12} threshold {threshold[role]:.3f}  second item {extra[role]:.3f}")
    return threshold, extra, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gold", type=Path, default=GOLD)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    ap.add_argument("--loo-dir", type=Path, default=None, help="write one model per held-out ramble here")
    ap.add_argument("--exclude", nargs="*", default=[], help="gold ramble ids kept out of training (a test set)")
    args = ap.parse_args()
    data = [prepare(g) for g in gold_set(args.gold) if g.id not in args.exclude]
    ids = [d["gold"].id for d in data]
    print(f"{len(data)} gold rambles, {sum(len(d['rows']) for d in data)} sentences")
    for r in ROLES:
        print(f"  {r:<12} positives {sum(sum(d['labels'][r]) for d in data)}")
    held = []
    folds = {}
    for k, d in enumerate(data):
        params = train(data[:k] + data[k + 1 :])
        probe = model_of(params, {r: 0.5 for r in ROLES}, {r: 0.5 for r in ROLES}, [])
        held.append((d, probe.probabilities(d["rows"])))
        folds[d["gold"].id] = params
    threshold, extra, report = choose_thresholds(held)
    print("thresholds (from held-out probabilities, margin included):")
    print("\n".join("  " + line for line in report))
    final = model_of(train(data), threshold, extra, ids)
    args.output.write_text(json.dumps(final.to_dict(), indent=1) + "\n")
    print(f"wrote {args.output}")
    if args.loo_dir:
        args.loo_dir.mkdir(parents=True, exist_ok=True)
        for gid, params in folds.items():
            m = model_of(params, threshold, extra, [i for i in ids if i != gid])
            (args.loo_dir / f"{gid}.json").write_text(json.dumps(m.to_dict(), indent=1) + "\n")
        print(f"wrote {len(folds)} held-out models to {args.loo_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
