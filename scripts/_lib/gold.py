"""Scoring a structured post against a labelled ramble (the structure benchmark's gold set).

A gold ramble is a folder (``tests/data/structure_gold/<id>/``) with:

- ``labels.json``: the reference text as numbered sentences, each with the roles it can
  serve (``focus``, ``reason``, ``example``, ``analogy``, ``connections``, ``tradeoffs``;
  usually none), the roles the ramble lacks (``absent_roles``) and ``topic_terms``: a
  title or layer 1 "names the topic" when it contains one of them;
- ``transcript.json``: what the pipeline's Whisper heard when the reference was spoken.

The post is built from the transcript, so its sentences are Whisper's words, not the
reference's. ``align`` maps each cleaned transcript sentence to the reference sentences
it came from by matching the two word sequences (difflib), so a post item is judged by
the labels of the reference sentences it was said in.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ramble2post.structure.jargon import misheard_terms
from ramble2post.structure.select import ROLES
from ramble2post.structure.words import complete_statement

ALIGN_SHARE = 0.3  # a transcript sentence belongs to every reference sentence holding this share of its words
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# template or markup debris in text meant for the reader (an independent check of the verifier)
# written apart from structure.clean's lists, so the bench checks the cleaner rather than repeating it
# a filler: um/uh anywhere; "you know" / "I mean" where they are set off as a filler (a comma, a
# question mark or a dash follows: "and you know, the measures"), not where they are words ("so you
# know when to stop", "the words that you know.", "I mean it")
FILLER = re.compile(r"\b(?:um+|uh+|erm+|uh-huh)\b|\b(?:you know|i mean)(?=\s*(?:[,?!]|--|—))", re.IGNORECASE)
# a restart: a word said twice at once ("the the", "So, so the"); not emphasis ("very, very hard",
# "no, no") and not a word that goes on ("caught it, it's")
RESTART = re.compile(r"\b(?!(?:very|really|no|much|many|far|more|yeah)\b)(\w+),?\s+\1\b(?!['’])", re.IGNORECASE)
JUNK = re.compile(
    r"[{}\[\]<>\\|]|\"\s*:|'\s*:\s*'|\b(?:text|title|tags|best)['\"]"
    r"|^\s*(?:focus|reason|example|analogy|connections?|trade-?offs?|title|answer|task)\s*:",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class GoldRamble:
    """One labelled ramble."""

    id: str
    folder: Path
    sentences: tuple[str, ...]  # reference sentences, in order
    roles: tuple[frozenset[str], ...]  # roles each reference sentence can serve
    topic_terms: tuple[str, ...]
    source: str  # "written" | "seed" | "bundled"
    register: str = "announced"  # "real": the register of real speech (no announced roles); else "announced"

    @property
    def present(self) -> set[str]:
        return {r for rs in self.roles for r in rs}

    @property
    def absent(self) -> set[str]:
        return set(ROLES) - self.present


def load_gold(folder: Path) -> GoldRamble:
    data = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    sents = data["sentences"]
    unknown = {r for s in sents for r in s["roles"]} - set(ROLES)
    if unknown:
        raise ValueError(f"{folder}: unknown roles {sorted(unknown)}")
    gold = GoldRamble(
        id=data["id"],
        folder=folder,
        sentences=tuple(s["text"] for s in sents),
        roles=tuple(frozenset(s["roles"]) for s in sents),
        topic_terms=tuple(t.lower() for t in data["topic_terms"]),
        source=data.get("source", "written"),
        register="real" if data.get("register") == "real" or data.get("source") == "seed" else "announced",
    )
    if set(data.get("absent_roles", [])) != gold.absent:
        raise ValueError(f"{folder}: absent_roles {data.get('absent_roles')} disagree with the labels")
    return gold


def gold_set(root: Path) -> list[GoldRamble]:
    return [
        load_gold(d)
        for d in sorted(root.iterdir())
        if (d / "labels.json").exists() and (d / "transcript.json").exists()
    ]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> list[set[int]]:
    """For each hypothesis sentence, the indices of the reference sentences it was said in."""
    ref = [(w, i) for i, s in enumerate(reference) for w in words(s)]
    hyp = [(w, j) for j, s in enumerate(hypothesis) for w in words(s)]
    owner: list[int | None] = [None] * len(hyp)
    sm = difflib.SequenceMatcher(None, [w for w, _ in ref], [w for w, _ in hyp], autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            owner[b + k] = ref[a + k][1]
    known = [k for k, o in enumerate(owner) if o is not None]
    for k in range(len(owner)):  # words Whisper got wrong: the nearest matched word's sentence
        if owner[k] is None and known:
            owner[k] = owner[min(known, key=lambda m: abs(m - k))]
    out: list[set[int]] = []
    for j in range(len(hypothesis)):
        c = Counter(owner[k] for k, (_, jj) in enumerate(hyp) if jj == j and owner[k] is not None)
        total = sum(c.values())
        out.append({i for i, n in c.items() if i is not None and total and n / total >= ALIGN_SHARE})
    return out


def names_topic(text: str, terms: Sequence[str]) -> bool:
    """True when ``text`` contains one of ``terms`` as whole words (hyphens and spaces alike)."""
    flat = " " + " ".join(words(text.replace("-", " "))) + " "
    return any(" " + " ".join(words(t.replace("-", " "))) + " " in flat for t in terms)


@dataclasses.dataclass(frozen=True)
class Score:
    """How one post fares against its ramble's labels."""

    id: str
    shown: int  # items under a role
    correct: int  # ... that the labels allow under that role (at least half their sentences carry it)
    likely_shown: int  # of the items: shown as guesses (the likely tier)
    likely_correct: int  # ... that the labels allow
    present: int  # roles the ramble has
    filled_right: int  # ... filled with at least one allowed item
    absent: int  # roles the ramble lacks
    left_empty: int  # ... left empty by the post
    title_on_topic: bool
    title_misheard: tuple[str, ...]  # known mishearings in the title (structure.jargon.MISHEARD)
    layer1_on_topic: bool
    layer1_complete: bool  # every layer-1 sentence a complete statement
    register: str
    junk: int  # items with template or markup debris
    ai_items: int  # items the model wrote (after verification)
    ai_verified: int  # ... that passed verification
    seconds: float
    title: str
    wrong: tuple[str, ...]  # "role: text" of items the labels do not allow there
    fillers: int = 0  # items with a filler the cleaner should have taken out (FILLER, independent of it)
    restarts: int = 0  # items with a word said twice in a row ("the the")
    item_words: int = 0  # words of all items
    title_origin: str = ""  # "model": the model's title stood (both checks); "speaker": key phrases / words
    hints: int = 0  # gaps whose author note quotes a closest passage (no item; ``tiers.closest``)
    hints_right: int = 0  # ... in a role the ramble has, the passage the labels allow there
    hints_absent: int = 0  # ... in a role the ramble lacks (said so by the note; not an item)

    @property
    def precision(self) -> float:
        return self.correct / self.shown if self.shown else 1.0

    @property
    def confident_precision(self) -> float:
        n = self.shown - self.likely_shown
        return (self.correct - self.likely_correct) / n if n else 1.0

    @property
    def likely_precision(self) -> float:
        return self.likely_correct / self.likely_shown if self.likely_shown else 1.0

    @property
    def recall(self) -> float:
        return self.filled_right / self.present if self.present else 1.0

    @property
    def honesty(self) -> float:
        return self.left_empty / self.absent if self.absent else 1.0


def score_post(gold: GoldRamble, post: Mapping[str, Any]) -> Score:
    """Score a Post (its JSON form) against ``gold``."""
    sents = post["sentences"]
    where = align(gold.sentences, [s["text"] for s in sents])
    ref_of = {s["id"]: where[k] for k, s in enumerate(sents)}
    layers = post["layers"]
    shown = correct = filled = junk = ai = ai_ok = likely = likely_ok = fillers = restarts = words = 0
    wrong: list[str] = []
    for role in ROLES:
        ok_here = 0
        for it in layers.get(role) or []:
            shown += 1
            guess = it.get("tier") == "likely"
            likely += guess
            # a passage serves the role when at least half of its sentences were said in a labelled span
            sids = it.get("sentences") or []
            serving = sum(any(role in gold.roles[i] for i in ref_of.get(sid, set())) for sid in sids)
            if sids and 2 * serving >= len(sids):
                correct += 1
                likely_ok += guess
                ok_here += 1
            else:
                wrong.append(f"{role}: {it['text'][:90]}")
            junk += bool(JUNK.search(it["text"]))
            fillers += bool(FILLER.search(it["text"]))
            restarts += bool(RESTART.search(it["text"]))
            words += len(it["text"].split())
            if it.get("origin") == "model":
                ai += 1
                ai_ok += bool(it.get("verified"))
        filled += bool(ok_here) and role in gold.present
    hints = hints_right = hints_absent = 0
    for role, h in (post.get("hints") or {}).items():
        hints += 1
        sids = h.get("sentences") or []
        serving = sum(any(role in gold.roles[i] for i in ref_of.get(sid, set())) for sid in sids)
        hints_right += role in gold.present and bool(sids) and 2 * serving >= len(sids)
        hints_absent += role in gold.absent
    title = post["title"]["text"]
    return Score(
        id=gold.id,
        shown=shown,
        correct=correct,
        likely_shown=likely,
        likely_correct=likely_ok,
        present=len(gold.present),
        filled_right=filled,
        absent=len(gold.absent),
        left_empty=sum(not layers.get(r) for r in gold.absent),
        title_on_topic=names_topic(title, gold.topic_terms),
        title_misheard=tuple(misheard_terms(title)),
        layer1_on_topic=any(names_topic(it["text"], gold.topic_terms) for it in layers.get("focus") or []),
        layer1_complete=bool(layers.get("focus")) and all(_complete(it["text"]) for it in layers["focus"]),
        register=gold.register,
        junk=junk + bool(JUNK.search(title)),
        ai_items=ai,
        ai_verified=ai_ok,
        seconds=float(post.get("timing", {}).get("total_s", 0.0)),
        title=title,
        wrong=tuple(wrong),
        fillers=fillers,
        restarts=restarts,
        item_words=words,
        title_origin=str(post["title"].get("origin", "")),
        hints=hints,
        hints_right=hints_right,
        hints_absent=hints_absent,
    )


def _complete(text: str) -> bool:
    """Every sentence of a layer-1 passage is a complete statement."""
    parts = [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p]
    return bool(parts) and all(complete_statement(p) for p in parts)


def totals(scores: Sequence[Score]) -> dict[str, float]:
    """Pooled figures over several rambles."""
    s = scores
    shown = sum(x.shown for x in s)
    likely = sum(x.likely_shown for x in s)
    likely_ok = sum(x.likely_correct for x in s)
    return {
        "precision": sum(x.correct for x in s) / shown if shown else 1.0,
        "confident_precision": (sum(x.correct for x in s) - likely_ok) / (shown - likely) if shown - likely else 1.0,
        "likely_precision": likely_ok / likely if likely else 1.0,
        "likely_shown": likely,
        "layer1_complete": sum(x.layer1_complete for x in s),
        "titles_misheard": sum(bool(x.title_misheard) for x in s),
        "recall": sum(x.filled_right for x in s) / max(1, sum(x.present for x in s)),
        "honesty": sum(x.left_empty for x in s) / absent if (absent := sum(x.absent for x in s)) else 1.0,
        "titles_on_topic": sum(x.title_on_topic for x in s),
        "layer1_on_topic": sum(x.layer1_on_topic for x in s),
        "rambles": len(s),
        "junk": sum(x.junk for x in s),
        "ai_items": sum(x.ai_items for x in s),
        "ai_verified": sum(x.ai_verified for x in s),
        "shown": shown,
        "fillers": sum(x.fillers for x in s),
        "restarts": sum(x.restarts for x in s),
        "mean_item_words": sum(x.item_words for x in s) / shown if shown else 0.0,
        "model_titles": sum(x.title_origin == "model" for x in s),
        "hints": sum(x.hints for x in s),
        "hints_right": sum(x.hints_right for x in s),
        "hints_absent": sum(x.hints_absent for x in s),
        "missed_roles": sum(x.present - x.filled_right for x in s),
        "seconds": sum(x.seconds for x in s),
    }
