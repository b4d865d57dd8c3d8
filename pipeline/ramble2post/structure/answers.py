"""A follow-up recording's passages, matched to the open roles of the draft it answers.

A follow-up is structured like any ramble (``structure.stage``: role model, judge, tiers,
verification). Its passages then answer the draft's open roles in two ways, both the
speaker's own cleaned words (never model text):

1. **named**: the speaker names the part they answer ("the analogy is ...", "a trade-off:
   ..."), as the draft's AUTHOR NOTEs ask. The passage is the naming sentence and the ones
   after it, up to the next named part (at most ``MAX_SENTENCES``). A named answer is shown
   plain: the speaker said which part it is; the gates that still apply are the stage's
   sentence gates (length, no question, not spoken to a model).
2. **placed**: what the structure stage itself placed in an open role, with its tier
   (confident plain, likely as a VERIFY guess), as in a first draft.
3. **judged**: a short sentence naming a part and saying the draft's guess for it is right
   ("yes, the analogy is right": the guess becomes plain) or wrong ("the example is wrong":
   the guess goes, an AUTHOR NOTE takes its place unless the follow-up gives a new one).

A role the draft already fills gets new material only when it is named or confident; the
follow-up's own point (layer 1) is never used: the draft has one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ramble2post.structure.schema import Post
from ramble2post.structure.select import MIN_WORDS  # words in a named passage: the stage's sentence gate
from ramble2post.structure.stage import ADDRESSES_MODEL  # spoken to a model: never shown (the stage's rule)

MAX_SENTENCES = 4  # a passage is one to four consecutive sentences, as in a first draft
ANSWERABLE = ("reason", "example", "analogy", "connections", "tradeoffs")
# the part of the format a sentence says it is: the role's own name, as the AUTHOR NOTEs spell it
NAMES = {
    "reason": re.compile(r"\b(the|a|one|my|main) reasons?\b|\breason (is|why)\b", re.I),
    "example": re.compile(r"\b(an|the|my|one|for|concrete) (example|instance)\b|\bexample is\b", re.I),
    "analogy": re.compile(r"\banalog(y|ies)\b", re.I),
    "connections": re.compile(r"\bconnections?\b|\bconnects? (to|with)\b", re.I),
    "tradeoffs": re.compile(r"\btrade[- ]?offs?\b", re.I),
}


# a short sentence that names a part and says the draft's guess for it is right: "yes, the analogy is right"
CONFIRM = re.compile(
    r"\b(?:is|was|'s|are) (?:right|correct|fine|good|accurate|spot on|what i meant|true)\b|\bkeep (?:it|that|them|the)\b"
    r"|^\W*(?:yes|yeah|yep|right|correct)\b",
    re.I,
)
REJECT = re.compile(
    r"\b(?:is|was|'s|are) (?:wrong|not right|incorrect|not what i meant|off)\b|\b(?:drop|delete|remove) (?:it|that|the)\b",
    re.I,
)
MAX_CONFIRM_WORDS = 14  # words: longer, it carries content of its own (a named answer)


def confirmations(followup: Post) -> dict[str, bool]:
    """Roles whose guess the speaker judges in a short sentence naming the part: True kept, False rejected."""
    out: dict[str, bool] = {}
    for s in followup.sentences:
        role = named_role(s.text)
        if role is None or len(s.text.split()) > MAX_CONFIRM_WORDS or s.text.rstrip().endswith("?"):
            continue
        if REJECT.search(s.text):
            out[role] = False
        elif CONFIRM.search(s.text):
            out[role] = True
    return out


def named_role(text: str) -> str | None:
    """The one role a sentence names, None when it names none or several."""
    hits = [r for r, rx in NAMES.items() if rx.search(text)]
    return hits[0] if len(hits) == 1 else None


def _item(sents: Sequence[Any], *, tier: str, how: str) -> dict[str, Any]:
    return {
        "text": " ".join(s.text for s in sents),
        "origin": "speaker",
        "sources": sorted({seg for s in sents for seg in s.segments}),
        "verified": True,
        "note": None,
        "sentences": [s.id for s in sents],
        "tier": tier,
        "answer": how,  # "named": the speaker named the part; "placed": the structure stage placed it
    }


def named_answers(followup: Post) -> dict[str, list[dict[str, Any]]]:
    """Passages in which the speaker names the part of the format they answer."""
    judged = confirmations(followup)
    sents = [
        s
        for s in followup.sentences
        if not (
            named_role(s.text) in judged
            and len(s.text.split()) <= MAX_CONFIRM_WORDS
            and (CONFIRM.search(s.text) or REJECT.search(s.text))
        )
    ]  # a verdict on the draft's guess is not itself a passage
    out: dict[str, list[dict[str, Any]]] = {}
    k = 0
    while k < len(sents):
        role = named_role(sents[k].text)
        if role is None:
            k += 1
            continue
        run = [sents[k]]
        while len(run) < MAX_SENTENCES and k + len(run) < len(sents) and named_role(sents[k + len(run)].text) is None:
            run.append(sents[k + len(run)])
        k += len(run)
        run = [s for s in run if not s.text.rstrip().endswith("?") and not ADDRESSES_MODEL.search(s.text)]
        if sum(len(s.text.split()) for s in run) >= MIN_WORDS:
            out.setdefault(role, []).append(_item(run, tier="confident", how="named"))
    return out


def answers_for(followup: Post, *, open_roles: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Per role, the follow-up's passages the draft gets (see module doc); no sentence twice."""
    out = {r: list(items) for r, items in named_answers(followup).items() if r in ANSWERABLE}
    used = {sid for items in out.values() for it in items for sid in it["sentences"]}
    by_id = {s.id: s for s in followup.sentences}
    for role in ANSWERABLE:
        if role in out:
            continue
        for it in followup.layers.of(role):
            ids = list(it.sentences or [])
            if not ids or used & set(ids) or any(i not in by_id for i in ids):
                continue
            if role not in open_roles and it.tier != "confident":
                continue
            out.setdefault(role, []).append(_item([by_id[i] for i in ids], tier=it.tier, how="placed"))
            used |= set(ids)
    return out
