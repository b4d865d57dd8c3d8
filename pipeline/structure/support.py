"""Soft lexical support: which content words of a rewrite does its source back up?

A strong model rewriting speech changes most words ("rises" for "increases", "knob" for
"setting"), so counting only the words it kept rejects faithful rewrites. Here a word of the
rewrite is *supported* by the source when

1. the source has the same stem (crude suffix stemming, final "e" ignored: "decode"/"decoding"),
2. it is a hyphenated compound whose (distinct) parts are all supported ("per-token"), or
3. (with embeddings) the source has a word close to it in meaning: cosine of the
   all-MiniLM-L6-v2 embeddings of the two single words >= ``WORD_SIM_MIN``, unless the two are
   opposites (word embeddings put "fast" next to "slow"; an opposite is never support).

Numbers, units and names are not softened: their checks in ``verify`` stay exact.
"""

from __future__ import annotations

from collections.abc import Callable

# cosine between two single words' MiniLM embeddings above which one backs the other up.
# Chosen on tests/data/paraphrase/pairs.jsonl: near-synonyms a rewrite uses for the speaker's
# words score 0.6-0.95 ("roughly"/"around" 0.60, "expands"/"grows" 0.62, "larger"/"bigger" 0.93),
# while words of clauses the speaker never said mostly score below 0.5 against every source word.
WORD_SIM_MIN = 0.6

WordSimilarity = Callable[[str, list[str]], list[float]]


def _norm(stem: str) -> str:
    return stem[:-1] if len(stem) > 4 and stem.endswith("e") else stem


def forms(text: str) -> dict[str, str]:
    """Content words of ``text``: normalised stem -> the word as written (lower case)."""
    from ramble2post.structure.verify import STOP, _stem, tokens

    out: dict[str, str] = {}
    for t in tokens(text):
        low = t.lower()
        if low in STOP or t[0].isdigit() or len(t) < 2:
            continue
        out.setdefault(_norm(_stem(low)), low)
    return out


def _opposite(a: str, b: str) -> bool:
    """Opposites, also inflected: "slowing" against "fast"."""
    from ramble2post.structure.faithful import ANTONYMS, _root

    def opp(x: str) -> set[str]:
        return {_root(o) for o in ANTONYMS.get(x, set()) | ANTONYMS.get(_root(x), set())}

    return _root(b) in opp(a) or _root(a) in opp(b)


def unsupported(text: str, source: str, similar: WordSimilarity | None = None) -> tuple[list[str], int]:
    """The content words of ``text`` that ``source`` does not support, and how many it has."""
    from ramble2post.structure.verify import STOP, _stem

    mine, theirs = forms(text), forms(source)
    left = []
    for stem, word in mine.items():
        if stem in theirs:
            continue
        parts = [p for p in word.split("-") if p]
        # a compound is its parts, unless it repeats one: "matrix-matrix" contrasts with "matrix vector"
        if (
            len(parts) > 1
            and len(set(parts)) == len(parts)
            and all(_norm(_stem(p)) in theirs or p in STOP for p in parts)
        ):
            continue
        left.append(word)
    if similar is not None and left and theirs:
        candidates = sorted(set(theirs.values()))
        still = []
        for word in left:
            sims = similar(word, candidates)
            if not any(s >= WORD_SIM_MIN and not _opposite(word, c) for s, c in zip(sims, candidates, strict=True)):
                still.append(word)
        left = still
    return left, len(mine)


def nearest(word: str, words: dict[str, bool] | list[str], similar: WordSimilarity) -> str:
    """``word`` itself if ``words`` has it, else the closest of ``words`` at >= ``WORD_SIM_MIN``
    that is not its opposite, else ``word``."""
    if word in words or not words:
        return word
    candidates = sorted(words)
    sims = similar(word, candidates)
    best = max(
        ((s, c) for s, c in zip(sims, candidates, strict=True) if s >= WORD_SIM_MIN and not _opposite(word, c)),
        default=None,
    )
    return best[1] if best else word


def support(text: str, source: str, similar: WordSimilarity | None = None) -> float:
    """Share of ``text``'s content words that ``source`` supports (1.0 when it has none)."""
    left, total = unsupported(text, source, similar)
    return 1.0 - len(left) / total if total else 1.0


def word_similarity() -> WordSimilarity | None:
    """MiniLM cosine of one word against several (vectors cached per word), or None without the model."""
    try:
        from ramble2post.structure.embed import embed
    except ImportError:
        return None
    cache: dict[str, object] = {}

    def vectors(words: list[str]) -> list:
        need = [w for w in dict.fromkeys(words) if w not in cache]
        if need:
            for w, v in zip(need, embed(need), strict=True):
                cache[w] = v
        return [cache[w] for w in words]

    def similar(word: str, candidates: list[str]) -> list[float]:
        v, *cs = vectors([word, *candidates])
        return [float((v * c).sum()) for c in cs]

    return similar
