"""Three tiers per role: a confident item, a likely item shown as a guess, or a note to the author.

Each proposed span (``spans``) has two pieces of evidence: the role model's probability for
its seed sentence and, when the structure model can judge (``judge``), the model's P(yes)
for the whole passage. A per-role logistic calibration (``tiers.json`` beside this module,
fitted by ``scripts/train_tiers.py`` on the gold set with leave-one-ramble-out role models,
one calibration per judge model and one without a judge) turns them into ``q``, the
probability that a careful editor accepts the span in that role. Then:

- ``q >= confident[role]``: shown plain;
- ``likely[role] <= q < confident[role]``: shown with a VERIFY mark as a guess;
- below: the role is left to the author (AUTHOR NOTE); the note quotes the closest passage
  (``closest``: the role's best remaining candidate with ``q >= HINT_MIN``) as a place to start,
  not as the role.

Layer 1 is never empty: its best span is shown, as a guess when it is below ``confident``.
A sentence serves one role at most; the likeliest (span, role) pairs are placed first.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ramble2post.structure.roles import ROLES
from ramble2post.structure.spans import Span

TIERS_FILE = "tiers.json"
TIERS_ENVVAR = "RAMBLE2POST_TIERS"  # a tiers file instead of the shipped one (benchmarks, training)
NO_JUDGE = "none"  # the calibration used when the model cannot judge (served models, --llm none)
MAX_ITEMS = 2  # items per role
EPS = 1e-4  # probabilities are clipped to [EPS, 1 - EPS] before the logit
# q below which no passage is quoted in a gap's author note. Held-out q on the gold set: the closest
# passage of a role the post leaves empty is right for 25 of the 44 such roles the rambles have at
# 0.15 (26 of 45 with no floor, 25 of 43 at 0.2): the floor drops noise, it is not a tuned cut
HINT_MIN = 0.15


def logit(p: float) -> float:
    p = min(1.0 - EPS, max(EPS, p))
    return math.log(p / (1.0 - p))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """q = sigmoid(bias + w_role * logit(p_role) + w_judge * logit(p_judge)) per role, and the tier bars."""

    bias: dict[str, float]
    w_role: dict[str, float]
    w_judge: dict[str, float]
    confident: dict[str, float]  # q at or above which an item is shown plain
    likely: dict[str, float]  # q at or above which an item is shown as a guess
    # a second reading of the same passage (the probe's calibration holds the option letters' here):
    # q is then the geometric mean of the two calibrated q's, so a confident item needs both readings
    second: Calibration | None = None

    def q(self, role: str, p_role: float, p_judge: float | None, p_second: float | None = None) -> float:
        z = self.bias[role] + self.w_role[role] * logit(p_role)
        if p_judge is not None:
            z += self.w_judge[role] * logit(p_judge)
        q = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        if self.second is not None and p_judge is not None and p_second is not None:
            q = math.sqrt(q * self.second.q(role, p_role, p_second))
        return q

    def tier(self, role: str, q: float) -> str | None:
        """ "confident", "likely" or None (an author note)."""
        if q >= self.confident[role]:
            return "confident"
        return "likely" if q >= self.likely[role] else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        missing = [r for r in ROLES for k in ("bias", "w_role", "w_judge", "confident", "likely") if r not in d[k]]
        if missing:
            raise ValueError(f"tier calibration lacks roles {sorted(set(missing))}")
        second = cls.from_dict(d["second"]) if d.get("second") else None
        return cls(
            **{k: {r: float(d[k][r]) for r in ROLES} for k in ("bias", "w_role", "w_judge", "confident", "likely")},
            second=second,
        )


def tiers_text(path: Path | None = None) -> str:
    """The tiers file's text (part of the structure cache key)."""
    chosen = path or (Path(os.environ[TIERS_ENVVAR]) if os.environ.get(TIERS_ENVVAR) else None)
    if chosen:
        return chosen.read_text(encoding="utf-8")
    return importlib.resources.files("ramble2post.structure").joinpath(TIERS_FILE).read_text(encoding="utf-8")


def load_calibration(judge: str | None, path: Path | None = None) -> tuple[str, Calibration]:
    """The calibration for judge model ``judge`` (its registry name), else the one without a judge."""
    data = json.loads(tiers_text(path))
    cals = data["calibrations"]
    name = judge if judge is not None and judge in cals else NO_JUDGE
    return name, Calibration.from_dict(cals[name])


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A span with its evidence for one role."""

    span: Span
    role: str
    p_role: float  # the role model's probability (``spans.span_probability``)
    p_judge: float | None  # the judge's probability for the role; None: not judged
    p_second: float | None = None  # the second reading's (``Calibration.second``): the option letters


@dataclasses.dataclass(frozen=True)
class Placed:
    """A span placed under a role, with its evidence and tier."""

    span: Span
    p_role: float
    p_judge: float | None
    q: float
    tier: str  # "confident" | "likely" ("hint": quoted in a gap's author note, ``closest``)


def place(
    pairs: Sequence[Candidate],
    *,
    cal: Calibration,
    focus: Candidate | None = None,
    unjudged: Calibration | None = None,
) -> dict[str, list[Placed]]:
    """Tiered items per role from the candidates (see module docstring).

    pairs: (span, role) candidates with their evidence, for every role but layer 1.
    cal: the calibration to apply.
    focus: layer 1's candidate (chosen by ``select``: it names the topic); shown whatever its q.
    unjudged: the calibration for a candidate the judge did not read (its time budget ran out on a
        slow or busy machine): the role model's own (``NO_JUDGE``), with its bars; ``cal``'s bias
        and slope assume a judge's term and would misplace it.
    """

    def cal_for(c: Candidate) -> Calibration:
        return _cal_for(c, cal, unjudged)

    out: dict[str, list[Placed]] = {r: [] for r in ROLES}
    used: set[int] = set()
    if focus is not None:
        fc = cal_for(focus)
        q = fc.q("focus", focus.p_role, focus.p_judge, focus.p_second)
        out["focus"].append(Placed(focus.span, focus.p_role, focus.p_judge, q, fc.tier("focus", q) or "likely"))
        used.update(focus.span.indices)
    scored = sorted(
        ((cal_for(c).q(c.role, c.p_role, c.p_judge, c.p_second), c) for c in pairs if c.role != "focus"),
        key=lambda x: -x[0],
    )
    for q, c in scored:
        tier = cal_for(c).tier(c.role, q)
        if tier is None or used & set(c.span.indices) or len(out[c.role]) >= MAX_ITEMS:
            continue
        if out[c.role] and tier != "confident":  # a second item only when it is sure
            continue
        out[c.role].append(Placed(c.span, c.p_role, c.p_judge, q, tier))
        used.update(c.span.indices)
    for role in ROLES:
        out[role].sort(key=lambda p: p.span.start)
    return out


def _cal_for(c: Candidate, cal: Calibration, unjudged: Calibration | None) -> Calibration:
    return unjudged if unjudged is not None and c.p_judge is None else cal


def closest(
    pairs: Sequence[Candidate],
    *,
    cal: Calibration,
    placed: Mapping[str, Sequence[Placed]],
    unjudged: Calibration | None = None,
) -> dict[str, Placed]:
    """Per role ``place`` left empty: its likeliest candidate that shares no sentence with a shown
    item or another hint, when q >= ``HINT_MIN`` (tier "hint": quoted in the author note, not shown
    as the role)."""
    used = {i for items in placed.values() for p in items for i in p.span.indices}
    scored = sorted(
        (
            (_cal_for(c, cal, unjudged).q(c.role, c.p_role, c.p_judge, c.p_second), c)
            for c in pairs
            if c.role != "focus"
        ),
        key=lambda x: -x[0],
    )
    out: dict[str, Placed] = {}
    for q, c in scored:
        if q < HINT_MIN or placed.get(c.role) or c.role in out or used & set(c.span.indices):
            continue
        out[c.role] = Placed(c.span, c.p_role, c.p_judge, q, "hint")
        used.update(c.span.indices)
    return out
