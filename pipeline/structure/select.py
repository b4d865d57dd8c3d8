"""Pick the speaker's sentences for each role of the three-layer format, without an LLM.

score(sentence, role) = CUE_W * cue + PROTO_W * cos(sentence, role prototype)
                        + TOPIC_W * cos(sentence, topic)

- ``cue``: the strongest spoken cue phrase of that role in the sentence
  ("for example" -> example, "it's kind of like" -> analogy, "the reason" -> reason,
  "depending on your priorities" -> trade-offs...), 0..1;
- role prototype: a short sentence typical of the role (embedding similarity);
- topic: the transcript's centroid embedding (what the talk keeps coming back to).

A sentence that names three or more roles at once ("R for reason, E for example,
A for analogy") talks *about* the format: it is a strong focus candidate and is
kept out of the other roles. Roles are filled in rounds (one item per role per
round) so that one sentence never serves two roles; near-duplicates are skipped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from ramble2post.structure.clean import Sentence

ROLES = ("focus", "reason", "example", "analogy", "connections", "tradeoffs")
CUE_W = 1.0  # weight of the cue-phrase score
PROTO_W = 0.5  # weight of similarity to the role prototype sentence
TOPIC_W = 0.6  # weight of similarity to the transcript centroid
MIN_WORDS, MAX_WORDS = 6, 60  # words; shorter/longer sentences are not selected
MAX_ITEMS = {"focus": 3, "reason": 2, "example": 2, "analogy": 2, "connections": 2, "tradeoffs": 2}
EXTRA_MIN_CUE = 0.5  # a second/third item needs at least this cue strength
DUPLICATE_COS = 0.85  # cosine above which two sentences count as saying the same
CANDIDATES = 3  # alternatives per role offered to the LLM re-ranker
RERANK_MARGIN = 0.15  # score units; only candidates this close to the best are offered
FOCUS_OTHER_PENALTY = 0.3  # focus score lost per unit of another role's cue
META_ROLES = 3  # a sentence strongly cueing this many roles is talking about the format itself
META_CUE = 0.8  # cue strength that counts as "strongly"

CUES: dict[str, list[tuple[str, float]]] = {
    "focus": [
        (r"\b(the|my) (main|key|big|whole|core) (idea|point)\b|\b(my|the|this) (framework|gist)\b", 0.8),
        (r"\bpropose this idea\b|\bhere's the idea\b|\bthe idea is\b", 0.8),
        (r"\bin simple terms\b|\bsimple definition\b|\bin a nutshell\b", 0.8),
        (r"\b(wanted|want|going|gonna) to talk about\b", 1.0),
        (r"\bfocus on\b|\bwe're gonna focus\b", 0.7),
        (r"\bto recap\b|\bin summary\b|\bthe structure is\b|\bso that's (kind of )?my\b", 0.8),
        (r"\b(three|two|four) (different )?(layers|steps|parts|ideas)\b", 0.9),
        (r"\bwhat (it|this) (is|means)\b|\bis essentially\b|\bis basically\b", 0.5),
    ],
    "reason": [
        (r"\bthe reason\b|\breason (is|being|why)\b", 1.0),
        (r"\bpurpose\b|\bthat's why\b", 0.8),
        (r"\bbecause\b", 0.6),
        (r"\bin order to\b|\bso that\b|\bwhy\b", 0.4),
    ],
    "example": [
        (r"\bfor example\b|\bfor instance\b|\be\.g\.", 1.0),
        (r"\blet's say\b|\bsay you\b|\bsuppose\b|\bif i were to\b", 0.7),
        (r"\bsuch as\b|\bimagine\b|\bconcrete\b", 0.5),
    ],
    "analogy": [
        (r"\b(kind|sort) of like\b|\bthink of (it|this|them) as\b", 1.0),
        (r"\b(it's|is|are|it is) like (a|an|the|this|having)\b|\bjust like\b", 0.9),
        (r"\bsimilar to\b|\bas if\b|\bmetaphor\b|\banalog(y|ies)\b", 0.5),
    ],
    "connections": [
        (r"\bconnect(s|ed|ing|ion|ions)?\b|\brelates? to\b|\bbridg(e|es|ing)\b", 0.8),
        (r"\bcall to action\b|\bnext step\b|\bgoes back to\b|\bbuild(s)? on\b", 0.8),
        (r"\b(try|measure|explore|read|benchmark)\b", 0.4),
        (r"\bsomething (i|you) already know\b|\bmemory hooks?\b", 0.8),
    ],
    "tradeoffs": [
        (r"\btrade-?offs?\b|\bon the other hand\b", 1.0),
        (r"\bdepend(ing|s)? on\b|\bpriorit(y|ies|ize)\b|\bdownside\b|\bat the expense\b", 0.8),
        (r"\b(cost|costs|expensive|cheaper|versus|vs)\b|\bbalance\b", 0.6),
        (r"\binstead\b|\bpreference\b|\btaste\b|\bbut\b", 0.3),
    ],
}
PROTOTYPES = {
    "focus": "The main idea, in simple terms, is this, and it is what we will focus on.",
    "reason": "The reason this exists is its purpose: it solves a real problem.",
    "example": "For example, suppose you run this case step by step; here is a concrete instance.",
    "analogy": "It's kind of like something from everyday life; think of it as a familiar object.",
    "connections": "This connects to other ideas you already know; next, try it and measure it yourself.",
    "tradeoffs": "There is a trade-off: one option costs more, the other is slower, depending on your priorities.",
}
_COMPILED = {r: [(re.compile(p, re.I), w) for p, w in cues] for r, cues in CUES.items()}


@dataclasses.dataclass(frozen=True)
class Selection:
    """Chosen sentence ids per role, ranked alternatives, and the score table."""

    chosen: dict[str, list[int]]  # role -> sentence ids (best first)
    candidates: dict[str, list[int]]  # role -> top alternatives for the re-ranker
    scores: dict[str, dict[int, float]]  # role -> sentence id -> score
    cues: dict[int, dict[str, float]]  # sentence id -> role -> cue strength


def cue_scores(text: str) -> dict[str, float]:
    """Strongest cue strength per role for one sentence (roles without cues omitted)."""
    out: dict[str, float] = {}
    for role, pats in _COMPILED.items():
        best = max((w for p, w in pats if p.search(text)), default=0.0)
        if best:
            out[role] = best
    return out


def select_roles(sentences: Sequence[Sentence], embeddings=None) -> Selection:
    """Score every sentence for every role and fill the roles in rounds."""
    from ramble2post.structure.embed import embed

    if not sentences:
        raise ValueError("no sentences to select from")
    texts = [s.text for s in sentences]
    E = embeddings if embeddings is not None else embed(texts)
    P = embed([PROTOTYPES[r] for r in ROLES])
    topic = E.mean(0)
    topic = topic / topic.norm().clamp(min=1e-9)
    topic_sim = (E @ topic).tolist()
    proto_sim = (E @ P.T).tolist()
    cues = {s.id: cue_scores(s.text) for s in sentences}
    scores: dict[str, dict[int, float]] = {r: {} for r in ROLES}
    for i, s in enumerate(sentences):
        n_words = len(s.text.split())
        c = cues[s.id]
        meta = sum(v >= META_CUE for v in c.values()) >= META_ROLES
        for j, role in enumerate(ROLES):
            cue = c.get(role, 0.0)
            if meta:
                cue = 1.0 if role == "focus" else 0.0
            sc = CUE_W * cue + PROTO_W * proto_sim[i][j] + TOPIC_W * topic_sim[i]
            if role == "focus" and not meta:  # a sentence cueing another role serves better there
                sc -= FOCUS_OTHER_PENALTY * max((v for r, v in c.items() if r != "focus"), default=0.0)
            if not MIN_WORDS <= n_words <= MAX_WORDS:
                sc -= 1.0  # fragments and walls of words make poor items
            scores[role][s.id] = sc
    idx = {s.id: i for i, s in enumerate(sentences)}
    ranked = {r: sorted(scores[r], key=lambda k: -scores[r][k]) for r in ROLES}
    used: set[int] = set()
    chosen: dict[str, list[int]] = {r: [] for r in ROLES}
    candidates: dict[str, list[int]] = {}
    for rnd in range(max(MAX_ITEMS.values())):
        order = sorted(ROLES, key=lambda r: -max((scores[r][k] for k in ranked[r] if k not in used), default=0))
        for role in order:
            if len(chosen[role]) >= MAX_ITEMS[role] or len(chosen[role]) < rnd:
                continue
            for sid in ranked[role]:
                if sid in used:
                    continue
                if rnd > 0 and (cues[sid].get(role, 0.0) < EXTRA_MIN_CUE and role != "focus"):
                    break
                if rnd > 0 and role == "focus" and scores[role][sid] < scores[role][chosen[role][0]] - 0.5:
                    break
                if any(float(E[idx[sid]] @ E[idx[o]]) > DUPLICATE_COS for o in chosen[role]):
                    continue
                chosen[role].append(sid)
                used.add(sid)
                break
            if rnd == 0:  # close alternatives only: a weak re-ranker cannot pick a poor sentence
                top = scores[role][chosen[role][0]] if chosen[role] else 0.0
                candidates[role] = (
                    [chosen[role][0]]
                    + [k for k in ranked[role] if k not in used and scores[role][k] >= top - RERANK_MARGIN][
                        : CANDIDATES - 1
                    ]
                    if chosen[role]
                    else []
                )
    for role in ROLES:  # tiny transcripts: a role may share a sentence rather than stay empty
        if not chosen[role]:
            chosen[role].append(ranked[role][0])
            candidates[role] = ranked[role][:CANDIDATES]
    for role in ROLES:
        chosen[role].sort(key=lambda k: idx[k]) if role == "focus" else None
    return Selection(chosen=chosen, candidates=candidates, scores=scores, cues=cues)
