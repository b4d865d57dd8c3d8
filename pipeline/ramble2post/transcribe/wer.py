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
