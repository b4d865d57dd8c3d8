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
    not overlapping, with their counts (``guard.repeated_phrases`` on the normalised words)."""
    from ramble2post.transcribe.guard import repeated_phrases as count

    return count(normalize(text).split(), min_words=min_words, min_count=min_count)


SAME_PHRASE_RATIO = 0.8  # character similarity at which a reference phrase is the one heard ("log2 and exp2")


def said_in(phrase: str, words: list[str], *, ratio: float = SAME_PHRASE_RATIO) -> int:
    """How often ``phrase`` is said in ``words`` (normalised), counting a stretch of 1-6 words whose letters
    (spaces left out) are ``ratio`` alike: a phrase heard as "log 2 and ex 2" was said as "log2 and exp2"."""
    import difflib

    target = phrase.replace(" ", "")
    count, last = 0, -10
    for i in range(len(words)):
        if any(difflib.SequenceMatcher(None, target, "".join(words[i : i + n])).ratio() >= ratio for n in range(1, 7)):
            count += i - last > 2  # the next word or two match too: the same saying
            last = i
    return count


def invented_repeats(*, reference: str, hypothesis: str, min_words: int = 4, min_count: int = 3) -> dict[str, int]:
    """Phrases of ``min_words``+ words said ``min_count``+ times in ``hypothesis`` and more often than in
    ``reference`` (``said_in``: a misheard spelling of a phrase the reference says counts as said)."""
    ref = normalize(reference).split()
    hyp = repeated_phrases(hypothesis, min_words=min_words, min_count=min_count)

    def said(p: str) -> int:  # exact sayings first; the fuzzy count only adds misheard spellings
        n = len(p.split())
        exact = sum(1 for i in range(len(ref) - n + 1) if " ".join(ref[i : i + n]) == p)
        return max(exact, said_in(p, ref))

    return {p: c for p, c in hyp.items() if c > said(p)}
