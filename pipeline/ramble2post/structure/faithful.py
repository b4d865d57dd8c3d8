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
from collections.abc import Callable

from ramble2post.structure.words import _SENT, NUMBER_WORDS, STOP, UNITS, content_words

CLAUSE_MIN = 0.5  # share of a clause's content words that must occur in the source
CLAUSE_MIN_WORDS = 3  # content words; shorter clauses are judged with their sentence
# a clause with too few of the source's words is still a paraphrase when its embedding is this close
# to one clause of the source. Stricter than ``verify.COSINE_MIN`` (0.6) asks of a whole rewrite: at
# 0.6 this rescue also let through invented clauses (paraphrase set: 2 more unfaithful pairs accepted)
CLAUSE_COSINE_MIN = 0.7
MERGE_MIN = 0.7  # share of a sentence's content words one single source sentence must hold

DEBRIS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), why)
    for p, why in (
        (r"[{}\[\]<>\\|`]", "markup characters"),
        (r"\"\s*:|:\s*\"|'\s*:\s*'", "a JSON fragment"),
        (r"([\"'])(text|title|tags|best|focus|reason|example|analogy|connections|tradeoffs)\1", "a quoted field name"),
        (r"^\s*(focus|reason|example|analogy|connections?|trade-?offs?|title|answer|task|output)\s*:", "a role label"),
        # a label is a noun phrase ("Key point:"); "That is the whole point:" is a sentence
        (
            r"^(?![^:]*\b(?:is|are|was|were)\b)[^:]{0,30}\b(idea|point|takeaway|take away|lesson|summary|conclusion|bottom line)\s*:",
            "a label",
        ),
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
_TOKEN_NUM = re.compile(r"[a-z][a-z0-9'-]*|\d[\d,.]*[a-z]*")
_CLAUSE = re.compile(r"[,;:()]|\s[-–—]\s|\b(?:which|where|while|whereas|but)\b", re.IGNORECASE)


def _synonyms(word: str) -> set[str]:
    """Words that share an opposite with ``word`` ("big" and "large" are both opposite "small")."""
    return {x for x, opp in ANTONYMS.items() if x != word and opp & ANTONYMS.get(word, set())}


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower().replace("’", "'")))


def _negations(text: str) -> int:
    """Explicit negation cues in ``text`` ("not only" is not one)."""
    words = _TOKEN.findall(text.lower().replace("’", "'"))
    return sum(1 for i in range(len(words)) if _is_cue(words, i) and words[i] not in ("than", "of"))


def _negated(tokens: set[str]) -> bool:
    return bool(tokens & NEGATIONS) or any(t.endswith("n't") for t in tokens)


def debris(text: str, source: str) -> list[str]:
    """Template, markup or prompt fragments in ``text`` that ``source`` does not have."""
    out = [f"{why}: {m.group(0)!r}" for pat, why in DEBRIS if (m := pat.search(text)) and not pat.search(source)]
    m = ECHO.search(text)
    if m and m.group(0).lower() not in source.lower():
        out.append(f"echoes the prompt: {m.group(0)!r}")
    return out


NEG_SCOPE = 1  # content words after a negation cue that it negates (within its clause)
# words that say "not" another way: a rewrite holding one may have moved the source's negation
# into it ("doesn't really help prefill" -> "does little for prefill")
NEGATIVE_ISH = {
    "little", "less", "fewer", "impossible", "unable", "avoid", "avoids", "lack", "lacks", "fail", "fails",
    "nothing", "hardly", "barely", "rarely", "seldom", "out", "instead", "rather", "minor", "zero", "only",
}  # fmt: skip
DEGREE = {"much", "many", "really", "very", "quite", "too", "enough", "even", "single", "always", "actually"}
# (semi-)modal verbs: "no need to allocate" denies the allocating, not a need
MODAL = {"need", "needs", "needed", "needing", "want", "wants", "able", "afford", "try", "tries", "seem", "seems"}
ROLE_WINDOW = 4  # words either side of a word that make up its context
# two-word terms that have an opposite: folded into one token before the checks
_TERMS = (
    (re.compile(r"\b(memory|bandwidth)[- ]bound\b", re.I), "memory-bound"),
    (re.compile(r"\b(compute|math|flops?)[- ]bound\b", re.I), "compute-bound"),
)
_SCOPE_BREAK = re.compile(r"[,;:.!?()]|\s[-–—]\s|\b(?:but|while|whereas|although|though|yet)\b", re.IGNORECASE)


def _fold_terms(text: str) -> str:
    for pat, term in _TERMS:
        text = pat.sub(term, text)
    return text


def _root(word: str) -> str:
    """Crude stem for matching a word across a rewrite: "fits"/"fit", "helped"/"help"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def _is_cue(words: list[str], i: int) -> bool:
    w = words[i]
    if w in ("than", "of") and i > 0:
        return words[i - 1] == ("rather" if w == "than" else "instead")  # "memory rather than compute"
    if w == "not" and i + 1 < len(words) and words[i + 1] in ("only", "just", "necessarily"):
        return False  # "not only X but Y" asserts X
    return w in NEGATIONS or w.endswith("n't")


def polarity(text: str) -> dict[str, bool]:
    """Content word root -> True when it is negated where said ("not", "no", "n't", "without",
    "rather than" within ``NEG_SCOPE`` words before it, same clause), False when asserted.
    A word said both ways is left out: its polarity is not one thing."""

    seen: dict[str, set[bool]] = {}
    for clause in _SCOPE_BREAK.split(_fold_terms(text).lower().replace("’", "'")):
        words = _TOKEN.findall(clause or "")
        left = 0  # content words still in the scope of the last negation cue
        for i, w in enumerate(words):
            if _is_cue(words, i):
                left = NEG_SCOPE
                continue
            if w in STOP or w in DEGREE or w in ("rather", "instead") or len(w) < 3:
                continue
            if w.endswith("ly") and left:  # "never quite/fully halves": the adverb is not what is negated
                continue
            seen.setdefault(_root(w), set()).add(left > 0)
            left = max(0, left - 1)
    return {w: next(iter(v)) for w, v in seen.items() if len(v) == 1}


def _context(words: list[str], word: str) -> set[str]:

    out: set[str] = set()
    for i, w in enumerate(words):
        if w == word:
            near = words[max(0, i - ROLE_WINDOW) : i] + words[i + 1 : i + 1 + ROLE_WINDOW]
            out |= {_root(x) for x in near if x not in STOP and x not in ANTONYMS and len(x) > 2}
    return out


def _named(word: str, original: str) -> bool:
    """An acronym or a name with a digit in it as said in ``original``: "GPU", "E4M3", "H100"."""
    return any(t.lower() == word and (t.isupper() or any(c.isdigit() for c in t)) for t in re.findall(r"\w+", original))


def swapped_roles(text: str, source: str) -> list[str]:
    """Two opposites, or two names, both said, but attached to each other's context: "a *big* model
    proposes and a *small* one verifies" where the source has the small one proposing and the big
    one verifying; "the *CPU* supplies work faster than the *GPU*" where the GPU is the fast one."""
    tw = _TOKEN_NUM.findall(_fold_terms(text).lower().replace("’", "'"))
    sw = _TOKEN_NUM.findall(_fold_terms(source).lower().replace("’", "'"))
    both = set(tw) & set(sw)
    names = sorted(w for w in both if len(w) > 1 and _named(w, source) and _named(w, text))
    pairs = {(w, a) for w in both & set(ANTONYMS) for a in ANTONYMS[w] & both}
    pairs |= {(w, a) for w in names for a in names if w != a}
    out = []
    for w, a in sorted(pairs):
        mine, theirs, here = _context(sw, w), _context(sw, a), _context(tw, w)
        if len(here & theirs - mine) >= 2 and len(here & theirs - mine) > len(here & mine - theirs):
            out.append(f"{w!r} and {a!r} trade places against the source")
    return out[:1]


def flips(text: str, source: str) -> list[str]:
    """Meaning flips against ``source``: a word negated in one and asserted in the other, a word
    turned into its opposite, two opposites trading places."""
    pt, ps = polarity(text), polarity(source)
    out = []
    added = sorted(w for w in pt.keys() & ps.keys() if pt[w] and not ps[w])
    dropped = sorted(w for w in pt.keys() & ps.keys() if ps[w] and not pt[w])
    t_words, s_words = _tokens(text), _tokens(source)
    ish_t, ish_s = len((t_words - s_words) & NEGATIVE_ISH), len((s_words - t_words) & NEGATIVE_ISH)
    neg_t, neg_s = _negations(text), _negations(source)
    # a negation said another way ("can't get faster" -> "faster is impossible") excuses the move
    # a word negated on one side only, or more explicit negations on one side than the other
    if (added and not ish_s) or neg_t > neg_s + ish_s:
        out.append("negation added" + (f": {added[0]!r}" if added else ""))
    if (dropped and not ish_t) or neg_t + ish_t < neg_s:
        out.append("negation dropped" + (f": {dropped[0]!r}" if dropped else ""))
    t = _tokens(_fold_terms(text))
    s = _tokens(_fold_terms(source))
    swapped = sorted(
        f"{w!r} where the source says {sorted(ANTONYMS[w] & s)[0]!r}"
        for w in t - s
        # "large" where the source said "big" is fine; so is "expensive" where it said "not cheap"
        if (opp := {a for a in ANTONYMS.get(w, set()) & s if not ps.get(_root(a), False)})
        and not _synonyms(w) & s
        and not pt.get(_root(w), False)
        and opp
    )
    if swapped:
        out.append("opposite word: " + "; ".join(swapped))
    return out + swapped_roles(text, source)


def changed_quantities(text: str, source: str) -> list[str]:
    """A number the source says, counting something else: "two thousand *requests* per second"
    where the source says "two thousand *tokens* per second"."""

    def after(words: list[str]) -> dict[str, list[set[str]]]:
        out: dict[str, list[set[str]]] = {}
        for i, w in enumerate(words):
            # "one" is as often a pronoun ("one request", "after one finishes") as a count
            is_num = (w in NUMBER_WORDS and w not in ("one", "half")) or w[:1].isdigit()
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if not is_num or nxt in NUMBER_WORDS or nxt[:1].isdigit() or nxt in ("point", "and"):
                continue  # only the last word of "two thousand", "three point three"
            if not (nxt in UNITS or (nxt.endswith("s") and len(nxt) > 3 and nxt not in STOP)):
                continue  # only counts of things: "two thousand tokens", "sixteen gigabytes"
            follow = [x for x in words[i + 1 : i + 6] if x not in STOP and x not in NUMBER_WORDS][:3]
            out.setdefault(w, []).append({_root(x) for x in follow})
        return out

    def rates(words: list[str]) -> set[tuple[str, str]]:  # "tokens per second" -> (token, second)
        return {(_root(words[i - 1]), _root(words[i + 1])) for i in range(1, len(words) - 1) if words[i] == "per"}

    tw = _TOKEN_NUM.findall(text.lower().replace("’", "'"))
    sw = _TOKEN_NUM.findall(source.lower().replace("’", "'"))
    src = after(sw)
    out = []
    for num, follows in after(tw).items():
        if num not in src:
            continue  # a new number is the number check's business
        said = set().union(*src[num])
        for f in follows:
            if f and said and not f & said:
                out.append(f"{num} {'/'.join(sorted(f))} where the source counts {'/'.join(sorted(said))}")
    src_rates = rates(sw)
    for a, b in sorted(rates(tw) - src_rates):
        other = sorted(f"{x} per {y}" for x, y in src_rates if (x == a) != (y == b))
        if other:
            out.append(f"{a} per {b} where the source says {other[0]}")
    return out[:1]


def invented_clauses(
    text: str, source: str, overlap: object, cosine: Callable[[str, str], float] | None = None
) -> list[str]:
    """Clauses of ``text`` with too little of ``source`` in them.

    overlap: ``verify.lexical_overlap`` (passed in, so this module does not import verify).
    cosine: sentence-embedding cosine; a clause whose words are mostly new but whose meaning is
    ``CLAUSE_COSINE_MIN`` close to one clause (or sentence) of the source is a paraphrase ("As our
    bar for AI rises" for "As our standard of AI increases"), not an addition.
    """

    out = []
    spans: list[str] | None = None
    for clause in _CLAUSE.split(text):
        if not clause or len(content_words(clause)) < CLAUSE_MIN_WORDS:
            continue
        share = overlap(clause, source)  # type: ignore[operator]
        if share >= CLAUSE_MIN:
            continue
        if cosine is not None:
            if spans is None:
                spans = [c for s in _SENT.split(source) for c in (s, *_CLAUSE.split(s)) if c and len(c.split()) > 1]
            if max((cosine(clause, c) for c in spans), default=0.0) >= CLAUSE_COSINE_MIN:
                continue
        out.append(f"clause not in the sources ({share:.2f} < {CLAUSE_MIN}): {clause.strip()[:60]!r}")
    return out


# "with no loss", "without adding latency": these deny that a thing exists ("never" negates what
# happens, and is the polarity check's business)
ABSENCE = {"no", "without"}


def denied_novelties(text: str, source: str, supported: Callable[[str], bool]) -> list[str]:
    """Denials of something the source never talks about: "... with no loss in quality" where the
    speaker said nothing about quality. A denial is a claim too (nothing was lost), and the words
    it denies are few, so the overlap checks let it through.

    supported: whether the source has a word (same stem).
    """

    out = []
    for clause in _SCOPE_BREAK.split(text.lower().replace("’", "'")):
        words = _TOKEN.findall(clause or "")
        for i, w in enumerate(words):
            if w not in ABSENCE:
                continue
            nxt = [
                x for x in words[i + 1 : i + 4] if x not in STOP and x not in DEGREE and x not in MODAL and len(x) > 2
            ]
            if nxt and not supported(nxt[0]):
                out.append(f"denies what the source does not mention: {w} {nxt[0]!r}")
    return out[:1]


def merged_sources(text: str, source: str, overlap: object) -> list[str]:
    """Sentences of ``text`` that no single sentence of a multi-sentence ``source`` carries."""

    sources = [x for x in _SENT.split(source.strip()) if x]
    if len(sources) < 2:
        return []
    out = []
    for sentence in (x for x in _SENT.split(text.strip()) if x):
        best = max(overlap(sentence, src) for src in sources)  # type: ignore[operator]
        if best < MERGE_MIN:
            out.append(f"merges sources: no one source sentence holds it ({best:.2f} < {MERGE_MIN}): {sentence[:60]!r}")
    return out
