"""Jargon heard as ordinary words, read again by the language model: "one big gem" -> "one big GEMM".

Whisper writes a term it does not expect as the ordinary words that sound like it ("gem" for
GEMM, "FD8 training" for FP8 training, "the k-me cache" for the KV cache, "VLink" for NVLink). The glossary (``transcribe.glossary``) fixes spellings that are wrong everywhere and
``jargon.MISHEARD`` a listed few in context; this module finds the rest by sound and lets the
text decide:

1. **Candidates by sound** (``candidates``): a run of 1-3 words whose reading sounds like one
   of the glossary's terms. A term is read the ways people say it (``term_readings``: "GEMM"
   as "gemm" or "G E M M" spelled, "H100" as "aitch one hundred", "BF16" as "bee eff sixteen");
   the heard words are read the same way (numbers as words, a lone letter by its name). They
   sound alike when their Metaphone codes agree (within one letter for codes of 4+ letters)
   **and** their readings are close letter by letter (Jaro-Winkler >= ``MIN_SPELLING``), so
   "got" is not CUDA although both code to "KT", and "your biting memory" (said "you're buying
   memory") is not batching. Runs that start or end with a function word, that hold a glossary
   spelling, that are a number ("200 tokens" is not B200) or that are the term with or without an
   ending ("A100s", "tensor core") are not candidates: they were heard right.
2. **The language model decides** (``reread``): the sentence, after the previous one, is scored
   by the model as plain text (sum of token log-probabilities, ``LlamaCppLLM.text_logprob``)
   with the heard words and with the term; the term replaces them only when it makes the
   sentence at least ``MARGIN_NATS`` more likely. Whisper's ear chose the heard words, so the
   text must be clearly better with the term: "a hidden gem of a paper" stays (-32 nats),
   "FD8 training" is FP8 training (+11). Text alone cannot tell a garbled ordinary word from a
   garbled term (the speaker's "give up" heard "GIMMA" reads as GEMM, +9 to +11 nats; the
   spelling bar keeps it out), so every change is shown in the draft beside what was heard.

Every change is a ``JargonFix`` (sentence id, heard, written) in the post's record, like the
listed context fixes; the draft shows it beside its item (*heard "FD8", written FP8 from
context*). Deterministic: nothing is sampled. A model that cannot score text (a served one)
re-reads nothing. The checks stop when ``budget_s`` is spent (the 13-minute ramble's run stays
under 90 s on 2 cores).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jellyfish

from ramble2post.errors import LLMOutputError
from ramble2post.structure.clean import Sentence
from ramble2post.structure.jargon import JargonFix
from ramble2post.transcribe.glossary import FUNCTION_WORDS, Glossary, glossary_setting, squash

MARGIN_NATS = 8.0  # log-probability the term must add to its sentence (chosen on the short clips, docs)
MIN_SPELLING = 0.85  # Jaro-Winkler similarity of the two readings, letter by letter (chosen on the short clips)
MAX_RUN = 3  # longest run of heard words that may stand for one term
CONTEXT_WORDS = 40  # words of the previous sentence given as context
BUDGET_S = 8.0  # seconds of scoring per transcript (~0.6 s a candidate on 2 cores)
PREFIX = "Transcript of a talk about GPUs and LLM inference:\n"
_WORD = re.compile(r"\w+(?:[.'-]\w+)*")
_PART = re.compile(r"[A-Za-z]+|\d+")
_ENDINGS = frozenset({"s", "es", "ed", "d", "ing"})  # squashed: "A100's" -> "a100s"

LETTER_NAMES = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        "ay bee see dee ee eff gee aitch eye jay kay el em en oh pee cue ar ess tee you vee doubleyou ex why zee".split(),
    )
)
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = frozenset(_ONES + _TENS[2:] + ["hundred", "thousand", "million", "a", "few"])


class TextScorer(Protocol):
    def text_logprob(self, *, prefix: str, text: str) -> float: ...


def can_reread(model: Any) -> bool:
    return callable(getattr(model, "text_logprob", None))


def number_words(n: int) -> list[str]:
    """How a whole number is said: 300 -> ["three", "hundred"], 16 -> ["sixteen"]."""
    out: list[str] = []
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            out += number_words(n // size) + [name]
            n %= size
            if not n:
                return out
    if n < 20:
        return out + [_ONES[n]]
    return out + [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def _letters(part: str) -> list[list[str]]:
    """Ways to say a run of letters: as a word, spelled, or spelled for its first one or two letters."""
    low = part.lower()
    if len(low) == 1:
        return [[LETTER_NAMES[low]]]
    ways = [[low], [LETTER_NAMES[c] for c in low]]
    ways += [[LETTER_NAMES[c] for c in low[:k]] + [low[k:]] for k in (1, 2) if len(low) - k >= 3]
    return ways


def _digits(part: str) -> list[list[str]]:
    ways = [number_words(int(part))]
    if len(part) == 3:  # "three oh oh"
        ways.append([_ONES[int(c)] if c != "0" else "oh" for c in part])
    return ways


@functools.lru_cache(maxsize=512)
def term_readings(term: str) -> tuple[str, ...]:
    """The ways a term is said, each squashed into one string: "H100" -> "aitchonehundred", ..."""
    options: list[list[list[str]]] = []
    for part in _PART.findall(term):
        if part.isdigit():
            options.append(_digits(part))
        elif part.isupper() or len(part) <= 2 or any(c.isupper() for c in part[1:]):
            # an acronym or a mixed-case name ("vLLM", "NVLink", "LoRA"): as letters, as words, or whole
            pieces = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", part)
            mixed = [sum((_letters(p)[0 if len(p) == 1 or not p.isupper() else 1] for p in pieces), [])]
            options.append(_letters(part) + (mixed if len(pieces) > 1 else []))
        else:
            options.append([[part.lower()]])
    return tuple(dict.fromkeys("".join(sum(combo, [])) for combo in itertools.product(*options)))


def heard_reading(words: Sequence[str]) -> str:
    """Heard words read like ``term_readings``: numbers said as words, a lone letter by its name."""
    out: list[str] = []
    for word in words:
        for part in _PART.findall(word):
            if part.isdigit():
                out += number_words(int(part)) if len(part) <= 6 else [part]
            elif len(part) == 1 or (part.isupper() and len(part) <= 3 and not re.search("[AEIOU]", part)):
                out += [LETTER_NAMES[c] for c in part.lower()]  # "T", "MX": said letter by letter
            else:
                out.append(part.lower())
    return "".join(out)


@functools.lru_cache(maxsize=8192)
def _code(reading: str) -> str:
    return str(jellyfish.metaphone(reading)) if reading else ""


def sounds_alike(heard: str, said: str) -> bool:
    """Two squashed readings sound alike: close Metaphone codes and close spellings."""
    a, b = _code(heard), _code(said)
    if min(len(a), len(b)) < 2:
        return False
    near = a == b if min(len(a), len(b)) <= 3 else jellyfish.levenshtein_distance(a, b) <= 1
    return near and jellyfish.jaro_winkler_similarity(heard, said) >= MIN_SPELLING


def _with_ending(longer: str, stem: str) -> bool:
    return longer.startswith(stem) and longer[len(stem) :] in _ENDINGS


def candidates(text: str, glossary: Glossary) -> list[tuple[int, int, str]]:
    """(start, end, term) of each run of ``text`` that may be a misheard glossary term (runs may overlap)."""
    words = list(_WORD.finditer(text))
    found: list[tuple[int, int, str]] = []
    for i in range(len(words)):
        for n in range(1, MAX_RUN + 1):
            run = words[i : i + n]
            if len(run) < n or any(text[a.end() : b.start()].strip(" -") for a, b in zip(run, run[1:])):
                break  # a run never crosses punctuation
            said = [w.group() for w in run]
            if said[0].lower() in FUNCTION_WORDS or said[-1].lower() in FUNCTION_WORDS:
                continue
            if all(w.isdigit() or w.lower() in _NUMBER_WORDS for w in said):
                continue  # a number heard is a number ("200 tokens" is not B200)
            joined = squash("".join(said))
            parts = (squash("".join(said[a:b])) for a in range(n) for b in range(a + 1, n + 1))
            if any(p in glossary.lookup for p in parts):
                continue  # holds a term heard right ("KV cache idea"), or the glossary's own business
            reading = heard_reading(said)
            for term in glossary.terms:
                spelled = squash(term)
                if _with_ending(joined, spelled) or _with_ending(spelled, joined):
                    continue  # the term with an ending ("A100s") or without one ("tensor core")
                if any(sounds_alike(reading, r) for r in term_readings(term)):
                    found.append((run[0].start(), run[-1].end(), term))
    return found


def user_glossary() -> Glossary | None:
    """The built-in terms plus the config file's ``glossary``; None when ``use_glossary`` is false
    (the user keeps Whisper's spelling, so nothing is re-read either)."""
    from ramble2post.config import current

    user = glossary_setting(current())
    return None if user is None else Glossary.build(terms=dict(user))


def reread_sentences(
    sentences: list[Sentence],
    *,
    model: Any,
    say: Callable[[str], None],
    glossary: Glossary | None,
    budget_s: float = BUDGET_S,
) -> tuple[list[Sentence], list[JargonFix], dict[str, Any]]:
    """The structure stage's step: ``sentences`` re-read by ``model`` for ``glossary``'s terms (unchanged
    when the model cannot score text or there is no glossary), the fixes, and the log for the post."""
    if glossary is None or not can_reread(model):
        return sentences, [], {"checked": 0, "skipped": 0, "s": 0.0, "checks": []}
    texts, fixes, log = reread(
        [s.text for s in sentences], scorer=model, glossary=glossary, ids=[s.id for s in sentences], budget_s=budget_s
    )
    if fixes:
        say(f"structure: {len(fixes)} term(s) heard as ordinary words, written as the term (recorded in the post)")
    return [dataclasses.replace(s, text=t) for s, t in zip(sentences, texts, strict=True)], fixes, log


def _context(texts: Sequence[str], k: int) -> str:
    if k == 0:
        return PREFIX
    words = texts[k - 1].split()
    return PREFIX + " ".join(words[-CONTEXT_WORDS:]) + " "


def reread(
    texts: Sequence[str],
    *,
    scorer: TextScorer,
    glossary: Glossary | None = None,
    ids: Sequence[int] | None = None,
    margin: float = MARGIN_NATS,
    budget_s: float = BUDGET_S,
) -> tuple[list[str], list[JargonFix], dict[str, Any]]:
    """``texts`` (a talk's sentences, in order) with sound-alike terms written where the model reads
    the sentence as clearly more likely with them; the fixes; and a log (checks made, their margins).

    scorer: a model with ``text_logprob`` (``LlamaCppLLM``).
    glossary: the terms to look for (default: the built-in glossary).
    ids: the sentences' ids for the fixes (default: their indices).
    margin: nats of log-probability the term must add to the sentence.
    budget_s: seconds of scoring; candidates left when it is spent are not checked.
    """
    gloss = glossary or Glossary.build()
    out = list(texts)
    fixes: list[JargonFix] = []
    checks: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    skipped = 0
    for k, text in enumerate(texts):
        found = candidates(text, gloss)
        if not found:
            continue
        if time.perf_counter() - t0 > budget_s:
            skipped += len(found)
            continue
        prefix = _context(texts, k)
        try:
            base = scorer.text_logprob(prefix=prefix, text=text)
        except LLMOutputError:  # a sentence longer than one batch: left as heard
            skipped += len(found)
            continue
        best: dict[tuple[int, int], tuple[float, str]] = {}
        for start, end, term in found:
            written = f"{text[:start]}{term}{text[end:]}"
            gain = scorer.text_logprob(prefix=prefix, text=written) - base
            checks.append({"sentence": k, "heard": text[start:end], "term": term, "nats": round(gain, 2)})
            if gain >= margin and gain > best.get((start, end), (float("-inf"), ""))[0]:
                best[(start, end)] = (gain, term)
        taken: list[tuple[int, int, str]] = []  # the surest first where runs overlap
        for (start, end), (_gain, term) in sorted(best.items(), key=lambda kv: -kv[1][0]):
            if all(end <= a or start >= b for a, b, _ in taken):
                taken.append((start, end, term))
        new, last = [], 0
        for start, end, term in sorted(taken):
            new.append(text[last:start] + term)
            fixes.append(JargonFix(ids[k] if ids is not None else k, text[start:end], term))
            last = end
        out[k] = "".join(new) + text[last:]
    log = {"checked": len(checks), "skipped": skipped, "s": round(time.perf_counter() - t0, 2), "checks": checks}
    return out, fixes, log
