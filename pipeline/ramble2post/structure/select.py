"""Pick the speaker's sentences for each role of the three-layer format, or leave the role empty.

Precision before coverage: every sentence gets a probability per role from the calibrated
role model (``roles``: spoken cues, embeddings, centrality, key phrases). A role is filled
only by a sentence at least ``threshold[role]`` likely to serve it; otherwise it stays
empty and the draft shows the author a note in its place. A sentence serves one role at
most; the most confident (sentence, role) pairs are placed first.

Layer 1 is the point of the talk, so it is never left empty: it is the sentence most
likely to be the focus among those that name the talk's key phrases (what the speaker
keeps returning to), so it names the topic whenever the talk has one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from ramble2post.structure.clean import Sentence
from ramble2post.structure.keyphrases import Keyphrase, keyphrases, names_phrase, topic_phrases
from ramble2post.structure.roles import FEATURES, ROLES, RoleModel, cue_scores, features, load_model
from ramble2post.structure.words import complete_statement

__all__ = ["ROLES", "Selection", "SentenceFeatures", "cue_scores", "select_roles", "sentence_features"]

MIN_WORDS, MAX_WORDS = 6, 60  # words; shorter/longer sentences are not selected
MAX_ITEMS = {"focus": 2, "reason": 2, "example": 2, "analogy": 2, "connections": 2, "tradeoffs": 2}
KEYPHRASES = 10  # key phrases kept per talk (the title prefers those layer 1 names)
TOPIC_PHRASES = 2  # layer 1 must name the subject, else one of the talk's top key phrases
DUPLICATE_COS = 0.85  # cosine above which two sentences count as saying the same
CANDIDATES = 3  # alternatives per role offered to the LLM re-ranker
EXPLICIT_CUE = 1.0  # "for example", "for instance": qualifies a sentence as an example on its own
RERANK_MARGIN = 0.15  # probability; only confident candidates this close to the best are offered
# a short sentence that points at the point instead of stating it: "Here's the thing:" (the next
# sentence states it), "That's the main idea." (the previous one did)
POINTS_FORWARD = re.compile(
    r"(here's|here is|this is) (the|my) (thing|point|idea|takeaway)|walk away with\W*$|\b(is|was) (just )?this\W*$"
    r"|:\s*$|(the|my) (main|key|one|big) (thing|point|idea|takeaway)( here)?( is)?\W*$",
    re.IGNORECASE,
)
POINTS_BACK = re.compile(
    r"^\W*(so,? )?(that's|that is|this is) (really )?(it|the (main|key|whole|big|basic) (idea|point|thing))\W*$", re.I
)
SUBJECT_WORDS = 6  # a topic phrase among a sentence's first words is (likely) its subject
SHORT_POINTER = 10  # words; a longer sentence states something itself


@dataclasses.dataclass(frozen=True)
class SentenceFeatures:
    """What the selection knows about one talk's sentences."""

    rows: list[list[float]]  # role-model features, one row per sentence
    embeddings: Any  # (n, 384) unit vectors
    phrases: list[Keyphrase]  # the talk's key phrases, best first
    names_topic: list[bool]  # sentence names one of the top key phrases


@dataclasses.dataclass(frozen=True)
class Selection:
    """Chosen sentence ids per role (empty: the ramble lacks it), alternatives and probabilities."""

    chosen: dict[str, list[int]]  # role -> sentence ids (best first); [] = left empty
    candidates: dict[str, list[int]]  # role -> confident alternatives for the re-ranker
    scores: dict[str, dict[int, float]]  # role -> sentence id -> probability it serves the role
    cues: dict[int, dict[str, float]]  # sentence id -> role -> cue strength
    phrases: list[Keyphrase]  # the talk's key phrases
    gaps: tuple[str, ...]  # roles left empty


def sentence_features(texts: Sequence[str], embeddings: Any = None) -> SentenceFeatures:
    """Embeddings, key phrases and role-model features of one talk's sentences."""
    from ramble2post.structure.embed import embed

    E = embeddings if embeddings is not None else embed(list(texts))
    phrases = keyphrases(texts, top=KEYPHRASES)
    topic = topic_phrases(phrases, TOPIC_PHRASES)
    hits = [names_phrase(t, topic) for t in texts]
    lead = [names_phrase(" ".join(t.split()[:SUBJECT_WORDS]), topic) for t in texts]
    return SentenceFeatures(features(texts, E, keyphrase_hits=hits, topic_subject=lead), E, phrases, hits)


def select_roles(sentences: Sequence[Sentence], embeddings: Any = None, *, model: RoleModel | None = None) -> Selection:
    """Score every sentence for every role; fill a role only with a sentence likely to serve it."""
    if not sentences:
        raise ValueError("no sentences to select from")
    model = model or load_model()
    texts = [s.text for s in sentences]
    f = sentence_features(texts, embeddings)
    E = f.embeddings
    probs = model.probabilities(f.rows)
    ids = [s.id for s in sentences]
    scores = {r: dict(zip(ids, probs[r], strict=True)) for r in ROLES}
    idx = {sid: i for i, sid in enumerate(ids)}
    # a question asks, it does not state: never an item (nor are fragments and walls of words)
    ok = {
        s.id for s in sentences if MIN_WORDS <= len(s.text.split()) <= MAX_WORDS and not s.text.rstrip().endswith("?")
    }
    chosen: dict[str, list[int]] = {r: [] for r in ROLES}
    used: set[int] = set()

    def duplicate(sid: int, role: str) -> bool:
        return any(float(E[idx[sid]] @ E[idx[o]]) > DUPLICATE_COS for o in chosen[role])

    # layer 1: the likeliest statement of the point; when it does not name what the talk keeps
    # returning to, the likeliest one that does follows it (layer 1 must name the topic)
    # layer 1 is a complete statement of the point, never a fragment ("The light at the end of the tunnel.")
    whole = {s.id for s in sentences if complete_statement(s.text)}
    eligible = [sid for sid in ids if sid in ok and sid in whole] or [sid for sid in ids if sid in ok] or ids
    for k, sid in enumerate(ids):  # pass a pointer's focus score on to the sentence it points at
        text = sentences[k].text
        if len(text.split()) > SHORT_POINTER:
            continue
        step = 1 if POINTS_FORWARD.search(text) else -1 if POINTS_BACK.search(text) else 0
        if step and 0 <= k + step < len(ids):
            target = ids[k + step]
            scores["focus"][target] = max(scores["focus"][target], scores["focus"][sid])
            scores["focus"][sid] = 0.0
    focus = sorted(eligible, key=lambda k: -scores["focus"][k])
    chosen["focus"].append(focus[0])
    if not f.names_topic[idx[focus[0]]]:  # the same point again, in a sentence that names the topic
        lead = E[idx[focus[0]]]
        topical = sorted(
            (sid for sid in focus if f.names_topic[idx[sid]] and sid in whole and not duplicate(sid, "focus")),
            key=lambda k: -(scores["focus"][k] + float(E[idx[k]] @ lead)),
        )
        chosen["focus"] += topical[:1]
    for sid in focus[1:]:
        if len(chosen["focus"]) >= MAX_ITEMS["focus"] or scores["focus"][sid] < model.extra_threshold["focus"]:
            break
        if sid not in chosen["focus"] and not duplicate(sid, "focus"):
            chosen["focus"].append(sid)
    used.update(chosen["focus"])

    # a role named in a sentence too short to be an item ("Now, it's not free.", "Here's the catch.")
    # hands its score to the next sentence, which says what it announced
    cues = {s.id: cue_scores(s.text) for s in sentences}
    for k, s in enumerate(sentences[:-1]):
        if len(s.text.split()) >= MIN_WORDS or ids[k + 1] not in ok:
            continue
        for role, strength in cues[s.id].items():
            if role != "focus" and strength >= EXPLICIT_CUE:
                scores[role][ids[k + 1]] = max(scores[role][ids[k + 1]], scores[role][s.id])
    # "For example, ..." said outright is an example even where the model is unsure: the gold set
    # has few such sentences to learn from, and speakers use the cue for nothing else
    meta = FEATURES.index("meta")
    for sid in ok:
        if f.rows[idx[sid]][FEATURES.index("cue_example")] >= EXPLICIT_CUE and not f.rows[idx[sid]][meta]:
            scores["example"][sid] = max(scores["example"][sid], model.threshold["example"])
    # the other roles: most confident (sentence, role) pairs first, each above its role's threshold
    pairs = sorted(
        ((scores[r][sid], r, sid) for r in ROLES if r != "focus" for sid in ok if scores[r][sid] >= model.threshold[r]),
        reverse=True,
    )
    for p, role, sid in pairs:
        if sid in used or len(chosen[role]) >= MAX_ITEMS[role] or duplicate(sid, role):
            continue
        if chosen[role] and p < model.extra_threshold[role]:
            continue
        chosen[role].append(sid)
        used.add(sid)

    candidates: dict[str, list[int]] = {}
    for role in ROLES:
        if not chosen[role]:
            candidates[role] = []
            continue
        top = scores[role][chosen[role][0]]
        floor = max(top - RERANK_MARGIN, model.threshold[role] if role != "focus" else top - RERANK_MARGIN)
        alts = [
            sid
            for sid in sorted(ok, key=lambda k: -scores[role][k])
            if sid not in used and scores[role][sid] >= floor and (role != "focus" or f.names_topic[idx[sid]])
        ]
        candidates[role] = [chosen[role][0], *alts][:CANDIDATES]
    chosen["focus"].sort(key=lambda k: idx[k])
    gaps = tuple(r for r in ROLES if not chosen[r])
    return Selection(chosen=chosen, candidates=candidates, scores=scores, cues=cues, phrases=f.phrases, gaps=gaps)
