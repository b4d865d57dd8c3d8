"""Which role can a spoken sentence serve? Cue phrases + embeddings, calibrated on the gold set.

Each cleaned sentence gets a feature vector (``features``): the strength of each role's
spoken cues ("for example", "it's kind of like", "the trade-off is"...), its embedding
similarity to a few prototype sentences per role, how central it is to the talk, whether
it names the talk's key phrases, and a few shape features (length, numbers, housekeeping).
One logistic regression per role (``RoleModel``) turns that vector into the probability
that a careful editor would accept the sentence in that role. The weights are fitted on
the labelled gold set (``scripts/train_roles.py``, leave-one-ramble-out evaluation) and
ship as ``role_weights.json`` beside this module.

Probabilities, not raw scores, make "leave the role empty" a decision with a meaning:
a role is filled only when its best sentence is at least ``threshold`` likely to serve it.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROLES = ("focus", "reason", "example", "analogy", "connections", "tradeoffs")
WEIGHTS_FILE = "role_weights.json"

# (pattern, strength 0..1): the strongest match of a role is its cue feature
CUES: dict[str, list[tuple[str, float]]] = {
    "focus": [
        (
            r"\b(the|my|one) (main|key|big|whole|core|real|central|basic|simple|one) (idea|point|thing|takeaway|message|lesson|insight)\b",
            1.0,
        ),
        (
            r"\bthe (point|idea|gist|lesson|takeaway) (is|here is|being)\b|\bthat's (really )?the (whole )?(point|idea|thing)\b"
            r"|\bthe (main |one |big )?(point|thing) (that )?i('m| am)? (want|wanted|trying|try) to (make|get across|say)\b",
            1.0,
        ),
        (r"\b(walk|take) away\b|\bif you (remember|take) (one|a single) thing\b|\bthe takeaway\b", 1.0),
        (
            r"\bthe short version\b|\bin a nutshell\b|\bboils down to\b|\bin short\b|\bto (sum|wrap) (it|this|that) up\b",
            0.9,
        ),
        (r"\bin simple terms\b|\bin plain words\b|\bsimply put\b|\bput simply\b", 0.8),
        (r"\b(in|into) (one|a single) (line|sentence)\b|\bif i had to (sum|put|say)\b|\bso you remember\b", 0.9),
        (r"\b(three|two|four) (different )?(layers|steps|parts|ideas|rules)\b|\bpropose this idea\b", 0.8),
        (r"\bi want you to (know|remember|understand|see)\b", 0.7),
        (r"\b(is|are) (all )?about\b|\bwhat (it|this) (is|means)\b|\bis (essentially|basically|simply)\b", 0.5),
        (r"\b(want(ed)?|going|gonna) to (talk|say) about\b", 0.4),
    ],
    "reason": [
        (r"\bthe (whole )?reason\b|\breason (is|being|why)\b|\bthat's why\b|\bwhich is why\b", 1.0),
        (r"\bthe (problem|purpose|goal|motivation) (is|was|here)\b|\bexists? (to|because|so)\b", 0.9),
        (r"\bwhy (this|it|that) matters\b|\bmatters because\b|\bso that\b|\bin order to\b", 0.8),
        (r"\bbecause\b|\bsince (the|it|you|we)\b|\botherwise\b", 0.6),
        (r"\bwhy\b|\bthe point of\b", 0.4),
    ],
    "example": [
        (r"\bfor (example|instance)\b|\be\.g\.|\bas an example\b|\bconcrete (example|case)\b|\bconcretely\b", 1.0),
        (r"\blet's say\b|\bsay (you|we|i) (have|take|run|want|get|load)\b|\bsuppose\b|\bpicture (this|a)\b", 0.9),
        (r"\bimagine (you|a|that|we)\b|\btake (a|the|this) \w+ (case|model|layer|request|prompt)\b", 0.8),
        (r"\bwhen i (ran|tried|measured|profiled|tested)\b|\bi (ran|measured|profiled|tested) (it|this|a|the)\b", 0.8),
        (r"\bin practice\b|\bin my case\b|\bon my (machine|laptop|gpu|box)\b|\bsuch as\b", 0.6),
    ],
    "analogy": [
        (r"\bthink (of|about) (it|this|them|that) (as|like)\b|\bthe way i think (of|about) it\b", 1.0),
        (
            r"\b(it's|it is|that's|this is|is|are|was) (just |basically |kind of |sort of |a bit )?like (a|an|having|when|going"
            r"|(?!saying|asking|telling|doing)\w+ing (a|an|the)\b)",
            1.0,
        ),
        (r"\b(kind|sort) of like (a|an|the|this|having|going|when)\b|\bjust like (a|an|when)\b", 0.9),
        (r"\bthe same way (a|an|you)\b|\breminds me of\b|\bpicture (a|an)\b", 0.8),
        (r"\bsimilar to (a|an)\b|\bas if\b|\blike a\b", 0.4),
    ],
    "connections": [
        (r"\b(this|it|that) (connects|ties|links|relates) (to|into|back|in|with)\b|\bties (into|back|in)\b", 1.0),
        (
            r"\brelated to\b|\bsame (idea|story|thing|trick|principle) (as|with|in)\b|\bgoes back to\b|\bbuilds? on\b",
            0.9,
        ),
        (r"\b(go|try|should|could|next) (and )?(try|measure|read|look|check|profile|benchmark|run)\b", 0.8),
        (r"\bif you want to (go deeper|learn more|dig|read)\b|\bcall to action\b|\bnext step\b", 0.9),
        (
            r"\bconnect(s|ed|ing|ion|ions)?\b|\bbridg(e|es|ing)\b|\bmemory hooks?\b|\bthe (other|next) (idea|topic)\b",
            0.6,
        ),
        (r"\balso (applies|shows up|explains|matters)\b|\bwhich (also )?(explains|is why)\b", 0.5),
    ],
    "tradeoffs": [
        (r"\btrade-?offs?\b|\bon the other hand\b|\bat the (cost|expense|price) of\b|\bin exchange\b", 1.0),
        (r"\bthe (cost|price|downside|catch|flip side|drawback) (is|of|here)\b|\byou pay\b|\bnot free\b", 1.0),
        (
            r"\b(it )?depends on\b|\bdepending on\b|\bcomes down to\b|\bpriorit(y|ies|ize)\b|\bworth it\b|\bwhereas\b",
            0.8,
        ),
        (r"\b(but|however),? (you|it|that|the) (lose|loses|give up|costs?|pay|hurts?)\b|\bversus\b|\bvs\.?\b", 0.8),
        (r"\btrad(e|es|ing) (a |some |a bit |a little )?(of )?\w+( \w+)? for\b|\byou give up\b", 1.0),
        (r"\b(cheaper|more expensive|slower|faster|smaller|bigger|less|more) but\b|\beither\b.*\bor\b", 0.6),
        (r"\b(cost|costs|expensive|cheaper|balance|instead)\b", 0.4),
    ],
}
# "like" that compares nothing: approximation, appearance, hedge
NOT_ANALOGY = re.compile(r"\b(not|something|seems|looks|feels?|would|sounds|more|less) like\b", re.IGNORECASE)
# talk about the format itself ("a reason, an example or an analogy"): names roles, serves none of them
_ROLE_WORDS = re.compile(r"\b(reasons?|examples?|analog(y|ies)|metaphors?|trade-?offs?|connections?|layers?)\b", re.I)
# talk about the talk: openings, hedges, asides (negative evidence for every role)
HOUSEKEEPING = re.compile(
    r"\b(let's see|let me (think|see)|anyway|where was i|i don't know|i forgot|so yeah|alright|okay so"
    r"|today i (want|wanted)|this morning|bear with me|i'll (try|link)|let's get (started|into))\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|hundred|thousand|million|billion)\b",
    re.IGNORECASE,
)
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "focus": (
        "The main idea, in simple terms, is this, and it is what we will focus on.",
        "The whole point is that one thing matters most here.",
    ),
    "reason": (
        "The reason this exists is its purpose: it solves a real problem.",
        "This matters because otherwise the work would be slow and wasteful.",
    ),
    "example": (
        "For example, suppose you run this case step by step; here is a concrete instance.",
        "Say you have a specific case with these numbers; walk through what happens.",
    ),
    "analogy": (
        "It's kind of like something from everyday life; think of it as a familiar object.",
        "It is like a kitchen, a library or a bus: an ordinary thing everyone knows.",
    ),
    "connections": (
        "This connects to other ideas you already know; next, try it and measure it yourself.",
        "It is the same idea as another technique, and it ties back to what we saw before.",
    ),
    "tradeoffs": (
        "There is a trade-off: one option costs more, the other is slower, depending on your priorities.",
        "You gain speed but you pay for it in memory or accuracy; it is not free.",
    ),
}
_COMPILED = {r: [(re.compile(p, re.IGNORECASE), w) for p, w in cues] for r, cues in CUES.items()}
FEATURES = (
    *(f"cue_{r}" for r in ROLES),
    *(f"proto_{r}" for r in ROLES),
    "centrality",
    "keyphrase",
    "log_words",
    "short",
    "number",
    "housekeeping",
    "question",
    "position",
    "meta",
    "topic_subject",
)
_SHARED = FEATURES.index("centrality")


def feature_mask(role: str) -> list[bool]:
    """The features role ``role``'s regression may use: every cue (other roles' cues are evidence
    against), its own prototypes only (other prototypes overfit a small gold set), and the shared ones."""
    return [k >= _SHARED or name.startswith("cue_") or name == f"proto_{role}" for k, name in enumerate(FEATURES)]


def cue_scores(text: str) -> dict[str, float]:
    """Strongest cue strength per role for one sentence (roles without cues omitted)."""
    out: dict[str, float] = {}
    for role, pats in _COMPILED.items():
        best = max((w for p, w in pats if p.search(text)), default=0.0)
        if role == "analogy" and best and NOT_ANALOGY.search(text):
            best /= 2
        if best:
            out[role] = best
    return out


def features(
    texts: Sequence[str],
    embeddings: Any,
    *,
    keyphrase_hits: Sequence[bool] | None = None,
    topic_subject: Sequence[bool] | None = None,
) -> list[list[float]]:
    """One feature vector (``FEATURES`` order) per sentence.

    texts: the cleaned sentences of one talk, in order.
    embeddings: their unit-length sentence embeddings, a (len(texts), d) torch tensor.
    keyphrase_hits: whether each sentence names one of the talk's top key phrases.
    topic_subject: whether it names one in its first words ("A mixture of experts model costs...").
    """
    from ramble2post.structure.embed import embed

    n = len(texts)
    protos = [embed(list(PROTOTYPES[r])) for r in ROLES]
    proto_sim = [(embeddings @ p.T).max(dim=1).values.tolist() for p in protos]
    centroid = embeddings.mean(0)
    centroid = centroid / centroid.norm().clamp(min=1e-9)
    central = (embeddings @ centroid).tolist()
    hits = list(keyphrase_hits) if keyphrase_hits is not None else [False] * n
    subject = list(topic_subject) if topic_subject is not None else [False] * n
    rows = []
    for i, t in enumerate(texts):
        c = cue_scores(t)
        words = len(t.split())
        rows.append(
            [
                *(c.get(r, 0.0) for r in ROLES),
                *(proto_sim[j][i] for j in range(len(ROLES))),
                central[i],
                float(hits[i]),
                math.log1p(words),
                float(words < 6),
                float(bool(_NUMBER.search(t))),
                float(bool(HOUSEKEEPING.search(t))),
                float(t.rstrip().endswith("?")),
                i / max(1, n - 1),
                float(len({m.group(1).lower().rstrip("s") for m in _ROLE_WORDS.finditer(t)}) >= 2),
                float(subject[i]),
            ]
        )
    return rows


@dataclasses.dataclass(frozen=True)
class RoleModel:
    """Per-role logistic regression over ``FEATURES`` (standardised), and the fill thresholds."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: dict[str, tuple[float, ...]]  # role -> one weight per feature
    bias: dict[str, float]
    threshold: dict[str, float]  # a role is filled only by a sentence at least this likely to serve it
    extra_threshold: dict[str, float]  # ... and gets a second item only above this
    trained_on: tuple[str, ...] = ()  # gold ramble ids

    def probabilities(self, rows: Sequence[Sequence[float]]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {r: [] for r in ROLES}
        for row in rows:
            z = [(x - m) / s for x, m, s in zip(row, self.mean, self.scale, strict=True)]
            for r in ROLES:
                a = self.bias[r] + sum(w * x for w, x in zip(self.weights[r], z, strict=True))
                out[r].append(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, a)))))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoleModel:
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError("role weights were fitted on other features: run scripts/train_roles.py")
        return cls(
            mean=tuple(d["mean"]),
            scale=tuple(d["scale"]),
            weights={r: tuple(v) for r, v in d["weights"].items()},
            bias=dict(d["bias"]),
            threshold=dict(d["threshold"]),
            extra_threshold=dict(d["extra_threshold"]),
            trained_on=tuple(d.get("trained_on", ())),
        )


WEIGHTS_ENVVAR = "RAMBLE2POST_ROLE_WEIGHTS"  # another role model (the benchmark's held-out folds)


def weights_text(path: Path | None = None) -> str:
    """The role model's JSON: ``path``, else ``$RAMBLE2POST_ROLE_WEIGHTS``, else the shipped file."""
    env = os.environ.get(WEIGHTS_ENVVAR)
    path = path or (Path(env) if env else None)
    if path is None:
        return importlib.resources.files("ramble2post.structure").joinpath(WEIGHTS_FILE).read_text(encoding="utf-8")
    return path.read_text(encoding="utf-8")


def load_model(path: Path | None = None) -> RoleModel:
    """The shipped role model (or one written by ``scripts/train_roles.py`` at ``path``)."""
    return RoleModel.from_dict(json.loads(weights_text(path)))
