"""Titles cut from the speaker's own words, for when the model's title fails verification.

A ramble's layer-1 sentence rarely starts with its topic ("You just point at it,
you emphasize the main point"), so the first clause makes a poor title. Instead
``salient_title`` looks, inside the layer-1 sentences, for the short run of
words whose content words the speaker keeps coming back to across the whole
talk ("idea of these three different layers"): a topic the talk is about,
in the speaker's words, with nothing added.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from ramble2post.structure.words import STOP, _stem, tokens

TITLE_MAX_WORDS = 12
SALIENT_WORDS = (3, 9)  # words in a title cut from a clause: at least, at most
WORD_COST = 0.5  # score cost of each word in the window; a content word said once in the talk earns log(2) = 0.69
# words that carry no topic in speech (hedges, verbs of thinking): never start or end a title
_TITLE_STOP = STOP | set(
    """probably maybe basically actually literally definitely right now okay ok yeah well
pretty quite lot lots want wanted try trying think thought guess mean know say said let's gonna
talk talking today""".split()
)
_TITLE_TAIL_STOP = set(
    """to the a an of and or but which that with in for it when is are was would could should can
be my your our their this these so as at on by from i we you they there where who like just""".split()
)
_CLAUSE = re.compile(r"[,;:.!?]\s+|[.!?]+$")


def speaker_title(text: str) -> str:
    """A <= 12-word title from the first clause of the speaker's sentence ``text`` (no model)."""
    t = re.sub(
        r"^((so|and|but|well|alright|okay|ok|now|like|um|you know|with that out of the way)[, ]+)+",
        "",
        text.strip(),
        flags=re.I,
    )
    t = re.sub(r"^(so|and|but|i think that|i think)[, ]+", "", t, flags=re.I)
    t = re.sub(
        r"^what (i|we) (wanted|want|am going|are going|'m gonna|'re gonna) to talk about( today)?"
        r"( (is|was))?[, ]*",
        "",
        t,
        flags=re.I,
    )
    clause = t.split(",")[0] if len(t.split(",")[0].split()) >= 4 else t
    return trim_title(clause)


def salient_title(sentences: Sequence[str], *, talk: str) -> tuple[str, int] | None:
    """The best run of 3-9 words inside ``sentences`` as a title, and the index of its sentence.

    sentences: the candidate sentences (layer 1), verbatim.
    talk: the whole cleaned transcript; how often a word comes up in it is its weight.
    Returns None when no clause has a run that starts and ends on a content word.
    """
    freq = Counter(_stem(t.lower()) for t in tokens(talk) if _is_content(t))
    lo, hi = SALIENT_WORDS
    best: tuple[float, str, int] | None = None
    for k, sentence in enumerate(sentences):
        for clause in _CLAUSE.split(sentence):
            words = clause.split()
            weights = [math.log1p(freq[_stem(_bare(w))]) if _is_content(_bare(w)) else None for w in words]
            for i, wi in enumerate(weights):
                if wi is None:
                    continue
                for j in range(i + lo, min(i + hi, len(words)) + 1):
                    if weights[j - 1] is None:
                        continue
                    score = sum(w or 0.0 for w in weights[i:j]) - WORD_COST * (j - i)
                    if best is None or score > best[0]:
                        best = (score, " ".join(words[i:j]), k)
    if best is None:
        return None
    return trim_title(best[1]), best[2]


def trim_title(text: str) -> str:
    """At most 12 words, no dangling 'and'/'the'/... at the end, first letter upper-case."""
    words = text.split()[:TITLE_MAX_WORDS]
    while words and words[-1].lower().strip(".,;:!?") in _TITLE_TAIL_STOP:
        words.pop()
    out = " ".join(words).strip(" .,;:!?")
    return out[:1].upper() + out[1:]


def sentence_case(title: str) -> str:
    """'The Bridge To Understanding' -> 'The bridge to understanding' (acronyms kept) for the name check."""
    words = title.split()
    return " ".join(
        w if i == 0 or not (w[:1].isupper() and w[1:].islower()) else w.lower() for i, w in enumerate(words)
    )


def _bare(word: str) -> str:
    return word.lower().strip(".,;:!?\"'()“”‘’")


def _is_content(word: str) -> bool:
    w = word.lower()
    return len(w) > 1 and not w[0].isdigit() and w not in _TITLE_STOP


TITLE_MAX_CHARS = 70  # characters, as AstroPaper cards show them
UNSAID_MAX = 1  # content words of a model title that the talk never says (a plural, a joining word)
# the frames a model wraps around a topic that the speaker never used: a title claiming a guide,
# a future or a secret says something the ramble does not
FRAME = re.compile(
    r"\b(guide|future|ultimate|deep dive|everything you need|unlock\w*|master\w*|revolution\w*|secrets?|journey"
    r"|power of|demystif\w*|definitive|complete|comprehensive|game.?changer|tips|tricks|best practices)\b",
    re.IGNORECASE,
)


def title_problems(title: str, talk: str) -> list[str]:
    """Why a model's title may not stand (empty: it may): too long, a misheard term, a frame the
    speaker never used, or words the talk does not say."""
    from ramble2post.structure.jargon import misheard_terms

    out = []
    if len(title) > TITLE_MAX_CHARS:
        out.append(f"longer than {TITLE_MAX_CHARS} characters")
    if bad := misheard_terms(title):
        out.append("misheard terms: " + ", ".join(bad))
    said = {_stem(t.lower()) for t in tokens(talk)}
    frames = [m.group(0) for m in FRAME.finditer(title) if _stem(m.group(0).lower().split()[0]) not in said]
    if frames:
        out.append("a frame the speaker never used: " + ", ".join(frames))
    unsaid = sorted({_stem(t.lower()) for t in tokens(title) if t.lower() not in STOP and len(t) > 1} - said)
    if len(unsaid) > UNSAID_MAX:
        out.append("words the talk does not say: " + ", ".join(unsaid))
    return out
