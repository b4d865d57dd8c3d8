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


def _count(phrase: list[str], words: list[str]) -> int:
    """Non-overlapping occurrences of ``phrase`` in ``words``."""
    n, i, count = len(phrase), 0, 0
    while i <= len(words) - n:
        if words[i : i + n] == phrase:
            count, i = count + 1, i + n
        else:
            i += 1
    return count


def aligned_sayings(phrase: str, ref: list[str], hyp: list[str]) -> int:
    """How many of ``phrase``'s occurrences in ``hyp`` stand for one same reference phrase that the reference
    says at least as often: a phrase said three times and misheard the same way three times ("a hundred and
    fifty thousand" heard "at 100 and 50,000") was said.

    Each occurrence stands for the reference words between the nearest words heard right before and after
    it (the word alignment with ``ref``). The reference phrase must have at least half as many words as
    ``phrase`` (so a loop written over different words is not excused by a short word they share).
    """
    import bisect

    import jiwer

    words, n = phrase.split(), len(phrase.split())
    right_h: list[int] = []  # hypothesis words heard right, in order, and their reference words
    right_r: list[int] = []
    for chunk in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        if chunk.type == "equal":
            right_h += range(chunk.hyp_start_idx, chunk.hyp_end_idx)
            right_r += range(chunk.ref_start_idx, chunk.ref_end_idx)
    spans: list[list[str]] = []
    i = 0
    while i <= len(hyp) - n:
        if hyp[i : i + n] != words:
            i += 1
            continue
        k = bisect.bisect_left(right_h, i)  # first word heard right at or after the occurrence
        before = right_r[k - 1] + 1 if k > 0 else 0
        k = bisect.bisect_left(right_h, i + n)
        after = right_r[k] if k < len(right_h) else len(ref)
        spans.append(ref[before:after])
        i += n

    def within(small: list[str], big: list[str]) -> bool:
        return any(big[j : j + len(small)] == small for j in range(len(big) - len(small) + 1))

    best = 0
    for cand in spans:
        if 2 * len(cand) < n:
            continue
        k = sum(within(cand, s) for s in spans)
        if k >= 2 and _count(cand, ref) >= k:
            best = max(best, k)
    return best


def invented_repeats(*, reference: str, hypothesis: str, min_words: int = 4, min_count: int = 3) -> dict[str, int]:
    """Phrases of ``min_words``+ words said ``min_count``+ times in ``hypothesis`` and more often than in
    ``reference``. A misheard spelling of a phrase the reference says counts as said (``said_in``), and so
    does the same mishearing of a phrase the reference repeats where the alignment puts it (``aligned_sayings``).
    """
    ref = normalize(reference).split()
    hyp_words = normalize(hypothesis).split()
    hyp = repeated_phrases(hypothesis, min_words=min_words, min_count=min_count)

    def said(p: str) -> int:  # exact sayings first; the fuzzy counts only add misheard spellings
        exact = _count(p.split(), ref)
        if exact >= hyp[p]:
            return exact
        return max(exact, said_in(p, ref), aligned_sayings(p, ref, hyp_words))

    return {p: c for p, c in hyp.items() if c > said(p)}
