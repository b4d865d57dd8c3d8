#!/usr/bin/env python
"""Fit the judge's probe (``pipeline/ramble2post/structure/probe.json``) on the gold set's candidates.

Reads ``train_tiers.py``'s candidate rows and the hidden states it saved (``--states``: one row
per candidate passage, read from the judge model's answer position), fits one logistic
regression per role (``structure.probe.fit``) and writes

- the probe fitted on every gold ramble (``-o``);
- the rows again (``--rows-out``) with the judge ``<judge>+probe``: each row's probability from a
  probe fitted **without its ramble**, so the tier calibration is fitted on held-out evidence.

Then fit the tiers on those rows, keeping the other calibrations:

    python scripts/train_tiers.py --loo-dir /tmp/loo --features /tmp/f.json --states /tmp/s.npz \\
        --judges qwen2.5-coder-1.5b
    python scripts/train_probe.py --features /tmp/f.json --states /tmp/s.npz --rows-out /tmp/fp.json
    python scripts/train_tiers.py --fit-only --features /tmp/fp.json --judges qwen2.5-coder-1.5b+probe --update \\
        --second qwen2.5-coder-1.5b --focus-from qwen2.5-coder-1.5b

(``--second``: q is the geometric mean of the probe's and the letters' calibrated q; ``--focus-from``:
layer 1, which the probe does not read, keeps the shipped letters' calibration and bars.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ramble2post.structure.models import load_llm
from ramble2post.structure.probe import DIM, L2, PROBED, Probe, fit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pipeline" / "ramble2post" / "structure" / "probe.json"


def fit_rows(rows: list[dict[str, Any]], states: dict[str, np.ndarray], sha: str, dim: int, l2: float) -> Probe:
    """A probe fitted on ``rows`` (each row: ramble id, candidate k, role, right)."""
    keys = sorted({(r["id"], r["k"]) for r in rows})
    at = {key: n for n, key in enumerate(keys)}
    matrix = np.stack([states[i][k] for i, k in keys])
    labels = {}
    for role in PROBED:
        mine = [r for r in rows if r["role"] == role]
        labels[role] = ([at[(r["id"], r["k"])] for r in mine], [bool(r["right"]) for r in mine])
    return fit(matrix, labels, model_sha256=sha, dim=dim, l2=l2)


def auc(pos: list[float], neg: list[float]) -> float:
    a, b = np.array(pos)[:, None], np.array(neg)[None, :]
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / a.size / b.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, required=True, help="train_tiers.py's candidate rows")
    ap.add_argument("--states", type=Path, required=True, help="train_tiers.py --states file")
    ap.add_argument("--judge", default="qwen2.5-coder-1.5b", help="the model the states were read from")
    ap.add_argument("--rows-out", type=Path, required=True, help="rows with the held-out probe as a judge")
    ap.add_argument("--dim", type=int, default=DIM)
    ap.add_argument("--l2", type=float, default=L2)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args()
    all_rows = json.loads(args.features.read_text())
    rows = [r for r in all_rows if not (r["role"] == "focus" and r.get("k", 0) > 0)]  # as train_tiers fits
    states = dict(np.load(args.states))
    sha = load_llm(args.judge).info.sha256
    name = f"{args.judge}+probe"
    for held in sorted({r["id"] for r in rows}):
        probe = fit_rows([r for r in rows if r["id"] != held], states, sha, args.dim, args.l2)
        for r in rows:
            if r["id"] == held:
                p = probe.probabilities(states[held][r["k"]])
                r["judge"][name] = p.get(r["role"], r["judge"][args.judge])  # layer 1: the letters (PROBED)
    other = [r for r in rows if r["role"] != "focus"]
    for key, label in ((args.judge, "option letters"), (name, "probe, held out")):
        a = auc([r["judge"][key] for r in other if r["right"]], [r["judge"][key] for r in other if not r["right"]])
        print(f"{label:<16} ROC AUC of (passage, role), roles but layer 1: {a:.3f}")
    args.rows_out.write_text(json.dumps(rows))
    probe = fit_rows(rows, states, sha, args.dim, args.l2)
    data = {**probe.to_dict(), "trained_on": sorted({r["id"] for r in rows})}  # ignored when read
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.output} ({len(rows)} rows, {len(states)} rambles, width {len(probe.weights['reason'])})")
    return 0 if all(math.isfinite(v) for v in probe.bias.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
