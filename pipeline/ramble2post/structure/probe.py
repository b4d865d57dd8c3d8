"""A linear probe on the judge's hidden state: which part of an explanation a passage is.

The judge (``judge``) asks the structure model one multiple-choice question per passage and reads
the option letters' probabilities. A 1.5B model maps what it understood onto seven letters
poorly: on the gold set its answers rank (passage, role) pairs at ROC AUC 0.69 where the role
model alone reaches 0.82. What it understood is in its hidden state at the answer position (the
vector the letters are read from); a logistic regression per role on that vector, fitted on the
gold set's candidate passages, reads it better: held-out (by ramble) AUC 0.84, and the tier
calibration fed with it separates a role a ramble has from one it lacks better (best candidate's
held-out q, AUC 0.82 -> 0.87). docs/STRUCTURE_QUALITY.md has the figures.

The tiers use the probe beside the letters, not instead of them: each is calibrated on the gold
set and q is their geometric mean (``tiers.Calibration.second``). On rambles unlike the gold set
the probe alone made wrong items confident (9 unseen rambles: 6 of 10 confident items right, 2 of
10 absent roles filled); the mean needs both readings (3 of 3, 0 of 10). Layer 1 is not probed.

The probe is fitted (``fit``, ``scripts/train_probe.py``) on states read from one model file and
applies only to that file (its sha256): another model's states mean nothing to it. Standardised
states are projected on their first ``DIM`` principal components (whitened) before the per-role
regression with an L2 prior: ~400 passages cannot carry 1,536 free weights per role. The
projection and the regression fold into one weight vector per role (``probe.json``).
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.resources
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ramble2post.structure.roles import ROLES

PROBE_FILE = "probe.json"
PROBE_SUFFIX = "+probe"  # a judge's calibration fitted on its probe is stored under its name plus this
PROBE_ENVVAR = "RAMBLE2POST_PROBE"  # a probe file instead of the shipped one, or "none" (benchmarks)
# layer 1 is not probed: its passage is one per talk (26 examples in the gold set, too few for DIM
# weights), so the option letters keep judging it
PROBED = tuple(r for r in ROLES if r != "focus")
DIM = 32  # principal components the regression sees (chosen on the gold set's held-out AUC: 8-64 tried)
L2 = 10.0  # L2 prior on the whitened components' weights (1 and 10 tried)


@dataclasses.dataclass(frozen=True)
class Probe:
    """P(role) = sigmoid(bias[role] + weights[role] . state), for states of one model file."""

    model_sha256: str
    bias: dict[str, float]
    weights: dict[str, np.ndarray]  # role -> float32 vector of the model's width

    def probabilities(self, state: Any) -> dict[str, float]:
        """role -> probability that the passage whose answer position has ``state`` serves the role (``PROBED``)."""
        v = np.asarray(state, dtype=np.float64)
        out = {}
        for role in PROBED:
            z = self.bias[role] + float(self.weights[role].astype(np.float64) @ v)
            out[role] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "width": int(next(iter(self.weights.values())).shape[0]),
            "bias": self.bias,
            # little-endian float32, base64: 6 x 1,536 numbers in 49 KB, read back exactly
            "weights": {r: base64.b64encode(self.weights[r].astype("<f4").tobytes()).decode() for r in PROBED},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Probe:
        missing = [r for r in PROBED if r not in d["bias"] or r not in d["weights"]]
        if missing:
            raise ValueError(f"probe lacks roles {missing}")
        weights = {r: np.frombuffer(base64.b64decode(d["weights"][r]), dtype="<f4").copy() for r in PROBED}
        if any(w.shape != (int(d["width"]),) for w in weights.values()):
            raise ValueError("probe weights do not match its width")
        return cls(str(d["model_sha256"]), {r: float(d["bias"][r]) for r in PROBED}, weights)


def _logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method: [bias, slopes...] (bias unpenalised)."""
    X = np.c_[np.ones(len(x)), x]
    w = np.zeros(X.shape[1])
    ridge = np.diag([1e-6] + [l2] * x.shape[1])
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -30, 30)))
        w -= np.linalg.solve((X.T * (p * (1.0 - p))) @ X + ridge, X.T @ (p - y) + ridge @ w)
    return w


def fit(
    states: np.ndarray,
    labels: Mapping[str, tuple[Sequence[int], Sequence[bool]]],
    *,
    model_sha256: str,
    dim: int = DIM,
    l2: float = L2,
) -> Probe:
    """Fit a probe.

    states: (passages, width) hidden states, one row per passage.
    labels: role -> (row of ``states`` per example, whether that passage serves the role), for ``PROBED``.
    model_sha256: the model file the states were read from.
    dim, l2: principal components kept and the L2 prior (module docstring).
    """
    m = np.asarray(states, dtype=np.float64)
    mu = m.mean(0)
    sd = m.std(0) + 1e-6
    _u, s, vt = np.linalg.svd((m - mu) / sd, full_matrices=False)
    k = min(dim, len(s))
    proj = vt[:k].T / (s[:k] / math.sqrt(len(m)))  # whitened: unit variance per component
    bias: dict[str, float] = {}
    weights: dict[str, np.ndarray] = {}
    for role in PROBED:
        idx, right = labels[role]
        x = ((m[list(idx)] - mu) / sd) @ proj
        w = _logistic(x, np.asarray(right, dtype=float), l2)
        v = (proj @ w[1:]) / sd  # folded: weights . state = w . (standardised state @ proj)
        bias[role] = float(w[0] - v @ mu)
        weights[role] = v.astype(np.float32)
    return Probe(model_sha256, bias, weights)


def probe_text(path: Path | None = None) -> str:
    """The probe file's text ("" when switched off with ``RAMBLE2POST_PROBE=none``); part of the cache key."""
    env = os.environ.get(PROBE_ENVVAR, "")
    if path is None and env.lower() == "none":
        return ""
    chosen = path or (Path(env) if env else None)
    if chosen:
        return chosen.read_text(encoding="utf-8")
    return importlib.resources.files("ramble2post.structure").joinpath(PROBE_FILE).read_text(encoding="utf-8")


def probe_for(model: Any, path: Path | None = None) -> Probe | None:
    """The probe fitted on ``model``'s file (same sha256) when the model can show its hidden state; else None."""
    info = getattr(model, "info", None)
    readable = getattr(model, "can_read_state", None)
    if not callable(getattr(model, "choice_state", None)) or info is None or (callable(readable) and not readable()):
        return None
    text = probe_text(path)
    if not text:
        return None
    probe = Probe.from_dict(json.loads(text))
    return probe if probe.model_sha256 == getattr(info, "sha256", None) else None
