"""Titles cut from the speaker's own words (a model's title is only ever a suggestion).

``clause_title`` takes the clause of layer 1 that states the point with the talk's subject in it,
as a headline ("Tensor cores do exactly one thing"); a blind reader kept twice as many of these
as of key-phrase titles (docs/STRUCTURE_QUALITY.md). Where no clause qualifies the stage joins
the key phrases (``keyphrases.keyphrase_title``), and failing those ``salient_title`` looks, inside
the layer-1 sentences, for the short run of words the speaker keeps coming back to across the
whole talk ("idea of these three different layers"). Nothing is added to the speaker's words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from ramble2post.structure.keyphrases import Keyphrase, names_phrase
from ramble2post.structure.words import _FINITE, STOP, _stem, _verb_in_s, tokens

TITLE_MAX_WORDS = 12
SALIENT_WORDS = (3, 9)  # words in a title cut from a clause: at least, at most
WORD_COST = 0.5  # score cost of each word in the window; a content word said once in the talk earns log(2) = 0.69
# words that carry no topic in speech (hedges, verbs of thinking): never start or end a title
_TITLE_STOP = STOP | set(
    """probably maybe basically actually literally definitely right now okay ok yeah well
pretty quite lot lots want wanted try trying think thought guess mean know say said let's gonna
talk talking today""".split()
)
# nor end a title: a function word, or a preposition whose object is elsewhere in the talk ("... what we just
# talked about": the bundled 13-minute ramble's title until stop 38)
_TITLE_TAIL_STOP = set(
    """to the a an of and or but which that with in for it when is are was would could should can
be my your our their this these so as at on by from i we you they there where who like just about into onto
upon""".split()
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


CLAUSE_WORDS = (4, 12)  # words in a title that is a clause of layer 1: at least, at most
# where a clause of spoken layer 1 ends: a sentence or comma break, a dash, or a subordinate start
_CLAUSE_BREAK = re.compile(
    r"(?<=[.;:!?])\s+|,\s+|\s+-\s+|\s+(?=(?:because|which|so that|since|until|unless|whereas|although|but)\b)", re.I
)
# how a speaker leads into the point: "So honestly,", "The one thing to take away is that", "which is basically this"
_LEAD_IN = re.compile(
    r"^(?:(?:so|and|but|okay|ok|alright|well|now|right|honestly|basically|actually|anyway|yeah|um|uh|look(?=,)|like|probably|maybe"
    r"|i mean|you know|i think(?: that)?|the thing is|what i (?:want|wanted) to (?:say|talk about) is"
    r"|the (?:one |main |whole |big )?(?:thing|point|idea|takeaway|lesson)(?: to take away| here| i want to (?:say|make)"
    r"| i wanted to (?:say|make))?(?: is| was)?(?: that| this)?|(?:which|this|that|it) is (?:basically |really |just )?"
    r"(?:this|that))[,:]?\s+)+",
    re.I,
)
# a clause that leans on another: a subordinate start, a preposition, an announcement ("this is about ...")
_LEANS = re.compile(
    r"^(?:because|which|when|whenever|if|unless|until|while|whereas|although|though|where|so that|since|as|than"
    r"|like|the one where|instead of|for|with|without|by|from|to|at|in|on|of|into|onto|about|through|over|under|after"
    r"|before|during|around|across|per|via|between|against)\b|^(?:(?:this|it|that)(?: is|'s) (?:about|what)"
    r"|today\b|i (?:want|wanted|am going|'m going))",
    re.I,
)
_ENDS_OPEN = re.compile(
    r"\b(?:it|them|this|that|one|there|you|me|us|to \w+)$", re.I
)  # "... tells you", "... to maintain"
# a headline does not lean on the talk for its subject: "You're getting the same laziness", "I call it ..."
# nor for its object: "multiply it at 2 times n minus 1 over n factor" (a verb, then "it": an instruction about
# something said before; an unseen all-reduce ramble's title at stop 31)
_PRONOUN_START = re.compile(
    r"(?:you|you're|it|it's|they|they're|this|that|he|she|we|i|i'm)\b|[a-z]+ (?:it|them|these|those)\b", re.I
)
# nor is an instruction to the listener a statement of the point: "look at the shared memory bank conflict counter"
# (an unseen tiling ramble's last sentence at stop 32)
_IMPERATIVE = re.compile(
    r"(?:look|go|try|read|check|make|take|put|use|run|write|keep|let|imagine|picture|think|add|multiply|divide"
    r"|measure|profile|open|turn|pick|grab|start|stop|remember|notice|consider|see|watch)\b",
    re.I,
)


# a word Whisper garbled into letters joined by hyphens ("exce-y-nally" for "exceptionally"): a one-letter part
# between two others; real hyphenated words have none ("end-to-end", "state-of-the-art", "k-means", "n-gram")
_GARBLED = re.compile(r"\b[a-z]+-[a-z]-[a-z]+", re.I)


def clause_title(sentences: Sequence[str], *, phrases: Sequence[Keyphrase], talk: str) -> tuple[str, int] | None:
    """A clause of layer 1 that states the point with the talk's key phrase, as a headline, and its sentence.

    sentences: layer 1's sentences, verbatim ("The main point is this, flash attention is fast because it
        never writes the N by N score matrix out to HBM.").
    phrases: key phrases a clause must name (the talk's subject or top phrases; ``keyphrases.Keyphrase``).
    talk: the whole cleaned transcript; a content word's weight is how often the talk says it.
    Returns the best clause of 4-12 words with a finite verb that names a phrase, leans on nothing
    before it (no subordinate start, no pronoun for a subject) and leaves nothing open after it ("Tensor cores do exactly one thing", "LoRA can lag behind
    full fine tuning"), or None.
    """
    freq = Counter(_stem(t.lower()) for t in tokens(talk) if _is_content(t))
    lo, hi = CLAUSE_WORDS
    best: tuple[float, str, int] | None = None
    for k, sentence in enumerate(sentences):
        clauses: list[str] = []
        for part in _CLAUSE_BREAK.split(sentence):  # "the faster it gets, the more it shows": one clause
            if (
                clauses
                and re.match(r"(?:so )?the (?:more|less|\w+er)\b", clauses[-1].strip(), re.I)
                and re.match(r"the (?:more|less|\w+er)\b", part.strip(), re.I)
            ):
                clauses[-1] += ", " + part
            else:
                clauses.append(part)
        for raw in clauses:
            c = _LEAD_IN.sub("", raw.strip().strip('.;:!?"')).strip()
            words = c.split()
            if not lo <= len(words) <= hi or _LEANS.search(c) or _ENDS_OPEN.search(c) or _PRONOUN_START.match(c):
                continue
            if _IMPERATIVE.match(c):
                continue
            if _GARBLED.search(c):
                continue
            if words[-1].lower() in _TITLE_TAIL_STOP or not (_FINITE.search(c) or _verb_in_s(c)):
                continue
            if not names_phrase(c, phrases):
                continue
            weight = sum(math.log1p(freq[_stem(_bare(w))]) for w in words if _is_content(_bare(w)))
            score = weight - WORD_COST * len(words)
            if best is None or score > best[0]:
                best = (score, c[:1].upper() + c[1:], k)
    return (best[1], best[2]) if best else None


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
