"""Word error rate the way Whisper's paper reports it: both sides normalised first."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's EnglishTextNormalizer (spelling, numbers, punctuation, case)."""
    return _normalizer()(text)


def word_error_rate(*, reference: str, hypothesis: str) -> float:
    """WER in [0, inf) after normalising both texts; 0.1 means 10 %."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref.strip():
        raise ValueError("reference text is empty after normalisation")
    return float(jiwer.wer(ref, hyp))


def repeated_phrases(text: str, *, min_words: int = 4, min_count: int = 3) -> dict[str, int]:
    """Phrases of ``min_words`` words said ``min_count``+ times in ``text`` after normalisation (``normalize``),
    not overlapping, with their counts. A longer phrase repeated that often repeats its first words too."""
    words = normalize(text).split()
    last: dict[tuple[str, ...], int] = {}  # n-gram -> position of its last counted occurrence
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - min_words + 1):
        gram = tuple(words[i : i + min_words])
        if gram in last and i - last[gram] < min_words:
            continue  # overlaps its previous occurrence ("a a a a a")
        last[gram] = i
        counts[gram] = counts.get(gram, 0) + 1
    return {" ".join(g): c for g, c in counts.items() if c >= min_count}


def invented_repeats(*, reference: str, hypothesis: str, min_words: int = 4, min_count: int = 3) -> dict[str, int]:
    """Phrases of ``min_words``+ words said ``min_count``+ times in ``hypothesis`` and more often than in ``reference``."""
    ref = repeated_phrases(reference, min_words=min_words, min_count=1)
    hyp = repeated_phrases(hypothesis, min_words=min_words, min_count=min_count)
    return {p: c for p, c in hyp.items() if c > ref.get(p, 0)}
