"""Checks that model text is clean and says what its source says (used by ``verify.problems``).

Three kinds of failure that a word-overlap score lets through, each with a real example
from small-model output:

- debris: template or markup fragments meant for a parser, not a reader
  (``{ { 'I'm not sure it can do int8...``, ``"text": ...``, ``Analogy: ...``);
- meaning flips: a negation added or dropped, or a word swapped for its opposite
  ("if you RL your *smaller* model" -> "...your *bigger* one");
- invented clauses: a clause with little of the source in it, tacked onto a faithful one
  ("... which is a trade-off of performance and memory bandwidth");
- merged sources: a sentence stitched from words of two unrelated source sentences
  ("The KV cache sleeps in the sun"), each word "in the sources", the claim in neither.
"""

from __future__ import annotations

import re

CLAUSE_MIN = 0.5  # share of a clause's content words that must occur in the source
CLAUSE_MIN_WORDS = 3  # content words; shorter clauses are judged with their sentence
MERGE_MIN = 0.7  # share of a sentence's content words one single source sentence must hold

DEBRIS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), why)
    for p, why in (
        (r"[{}\[\]<>\\|`]", "markup characters"),
        (r"\"\s*:|:\s*\"|'\s*:\s*'", "a JSON fragment"),
        (r"([\"'])(text|title|tags|best|focus|reason|example|analogy|connections|tradeoffs)\1", "a quoted field name"),
        (r"^\s*(focus|reason|example|analogy|connections?|trade-?offs?|title|answer|task|output)\s*:", "a role label"),
        (r"^[^:]{0,30}\b(idea|point|takeaway|take away|lesson|summary|conclusion|bottom line)\s*:", "a label"),
        (r"\*\*|__|^#+\s", "Markdown markup"),
    )
)
# phrases of the prompts: in the answer, they are the model echoing its instructions
ECHO = re.compile(
    r"\b(speaker's words|the speaker|rewrite (the|this|it)|in at most \d+ words|as the (focus|reason|example|analogy"
    r"|connections|trade-?offs?) part|blog post|transcript|json|candidates?)\b",
    re.IGNORECASE,
)
NEGATIONS = {
    "not", "no", "never", "without", "none", "nothing", "neither", "nor", "cannot", "can't", "won't", "don't",
    "doesn't", "isn't", "aren't", "wasn't", "weren't", "didn't", "shouldn't", "couldn't", "wouldn't", "hardly",
}  # fmt: skip
_PAIRS = """smaller:bigger,larger small:big,large smallest:biggest,largest more:less,fewer most:least
faster:slower fast:slow higher:lower high:low increase:decrease increases:decreases increased:decreased
cheaper:expensive cheap:expensive better:worse best:worst before:after always:never first:last
max:min maximum:minimum early:late earlier:later longer:shorter long:short easy:hard easier:harder
gain:lose gains:loses win:lose add:remove adds:removes lossless:lossy memory-bound:compute-bound
input:output above:below over:under up:down increase:reduce grows:shrinks grow:shrink""".split()
ANTONYMS: dict[str, set[str]] = {}
for _pair in _PAIRS:
    _a, _bs = _pair.split(":")
    for _b in _bs.split(","):
        ANTONYMS.setdefault(_a, set()).add(_b)
        ANTONYMS.setdefault(_b, set()).add(_a)
_TOKEN = re.compile(r"[a-z][a-z'-]*")
_CLAUSE = re.compile(r"[,;:()]|\s[-–—]\s|\b(?:which|where|while|whereas|but)\b", re.IGNORECASE)


def _synonyms(word: str) -> set[str]:
    """Words that share an opposite with ``word`` ("big" and "large" are both opposite "small")."""
    return {x for x, opp in ANTONYMS.items() if x != word and opp & ANTONYMS.get(word, set())}


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower().replace("’", "'")))


def _negated(tokens: set[str]) -> bool:
    return bool(tokens & NEGATIONS) or any(t.endswith("n't") for t in tokens)


def debris(text: str, source: str) -> list[str]:
    """Template, markup or prompt fragments in ``text`` that ``source`` does not have."""
    out = [f"{why}: {m.group(0)!r}" for pat, why in DEBRIS if (m := pat.search(text)) and not pat.search(source)]
    m = ECHO.search(text)
    if m and m.group(0).lower() not in source.lower():
        out.append(f"echoes the prompt: {m.group(0)!r}")
    return out


def flips(text: str, source: str) -> list[str]:
    """Meaning flips against ``source``: negation added or dropped, a word turned into its opposite."""
    t, s = _tokens(text), _tokens(source)
    out = []
    if _negated(t) and not _negated(s):
        out.append("negation added")
    elif _negated(s) and not _negated(t):
        out.append("negation dropped")
    swapped = sorted(
        f"{w!r} where the source says {sorted(ANTONYMS[w] & s)[0]!r}"
        for w in t - s
        if ANTONYMS.get(w, set()) & s and not _synonyms(w) & s  # "large" where the source said "big" is fine
    )
    if swapped:
        out.append("opposite word: " + "; ".join(swapped))
    return out


def invented_clauses(text: str, source: str, overlap: object) -> list[str]:
    """Clauses of ``text`` with too little of ``source`` in them.

    overlap: ``verify.lexical_overlap`` (passed in, so this module does not import verify).
    """
    from ramble2post.structure.verify import content_words

    out = []
    for clause in _CLAUSE.split(text):
        if not clause or len(content_words(clause)) < CLAUSE_MIN_WORDS:
            continue
        share = overlap(clause, source)  # type: ignore[operator]
        if share < CLAUSE_MIN:
            out.append(f"clause not in the sources ({share:.2f} < {CLAUSE_MIN}): {clause.strip()[:60]!r}")
    return out


def merged_sources(text: str, source: str, overlap: object) -> list[str]:
    """Sentences of ``text`` that no single sentence of a multi-sentence ``source`` carries."""
    from ramble2post.structure.verify import _SENT

    sources = [x for x in _SENT.split(source.strip()) if x]
    if len(sources) < 2:
        return []
    out = []
    for sentence in (x for x in _SENT.split(text.strip()) if x):
        best = max(overlap(sentence, src) for src in sources)  # type: ignore[operator]
        if best < MERGE_MIN:
            out.append(f"merges sources: no one source sentence holds it ({best:.2f} < {MERGE_MIN}): {sentence[:60]!r}")
    return out
