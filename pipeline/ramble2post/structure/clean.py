"""Deterministic transcript cleaning: spoken words -> numbered sentences.

Every word keeps the id of the Whisper segment it came from, so each cleaned
sentence lists its source segments (and their start/end seconds). Steps, in order:

1. fillers: ``um``/``uh``/``er``/``hmm`` always; ``you know``, ``I mean`` and ``like`` only when
   set off by commas (``of, like, prototyping``), sentence-initial (``Like, ...``), after a
   conjunction or a broken-off word and followed by a comma ("which you know, made me" ->
   "which made me"; "to-- you know, it's") or as a closing tag ("real science, you know?");
   "so you know when to stop" and "Do you know what ..." are words, kept;
   ``kind of``/``sort of`` only as hedges (not after a determiner such as ``some``
   or ``these``, not before ``like`` or ``thing``: "kind of like X" is an analogy cue);
2. restarts: a run of 2-12 words repeated at once keeps only its last copy
   ("Alright, so I'm gonna try. Alright, so I'm gonna try to go" -> one copy);
3. stutters: a word repeated at once ("There, there is"), except intensifiers
   ("very, very quickly" is emphasis, kept); a sentence that opens "So, so" or "And, and"
   is a restart all the same;
4. sentences end at . ? !; a run-on longer than ``MAX_WORDS`` is split at a comma
   followed by a conjunction nearest its middle, else where a Whisper segment opens with a
   capitalised word (Whisper sometimes writes a whole talk without a stop, keeping the capitals:
   one 800-word "sentence" left nothing to select).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

MAX_WORDS = 40  # words; longer sentences are split at ", and"/", so"/", but" points
MIN_SPLIT_WORDS = 8  # words; neither half of a split may be shorter
MAX_RESTART = 12  # words; longest repeated run treated as a restart

ALWAYS_FILLERS = {"um", "uh", "er", "erm", "uhm", "hmm", "mm", "ah"}
DETERMINERS = {
    "a",
    "the",
    "some",
    "this",
    "that",
    "these",
    "those",
    "what",
    "any",
    "every",
    "which",
    "one",
    "no",
    "another",
    "each",
    "same",
    "my",
    "your",
    "our",
}
INTENSIFIERS = {
    "very",
    "really",
    "so",
    "much",
    "many",
    "more",
    "far",
    "had",
    "that",
    "no",
    "bye",
    "ha",
    "yeah",
    "hey",
    "well",
    "again",
    "over",
    "and",
}
NUMBER_WORDS = {
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "twenty",
    "fifty",
    "hundred",
    "thousand",
    "half",
}
CONJUNCTIONS = ("and", "so", "but", "which", "because", "while", "whereas")
# words after which a comma-closed "you know," / "I mean," is a filler: "and you know, the measures"
FILLER_OPENERS = {"and", "but", "so", "which", "because", "like", "or", "then", "that", "where", "when"}
RESTART_OPENERS = {"so", "and", "but"}  # "So, so the short version": a restart even though "so" intensifies
_END = re.compile(r"[.?!][\"'’”)]*$")


@dataclasses.dataclass(frozen=True)
class Word:
    text: str  # as spoken, with attached punctuation
    segment: int  # source segment id


@dataclasses.dataclass(frozen=True)
class Sentence:
    id: int
    text: str
    segments: tuple[int, ...]
    start: float  # s
    end: float  # s

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["segments"] = list(self.segments)
        return d


def norm(word: str) -> str:
    """Lower-case word without surrounding punctuation (apostrophes unified)."""
    return re.sub(r"^[^\w']+|[^\w']+$", "", word.lower().replace("’", "'"))


def _has_comma(word: str) -> bool:
    return word.rstrip("\"'’”)").endswith(",")


def _broken_off(word: str) -> bool:
    """A word cut short by the speaker ("to--", "have—")."""
    return bool(re.search(r"(?:--|—|–)$", word.rstrip("\"'’”)")))


def _filler_pair(words: list[Word], i: int) -> bool:
    """words[i:i+2] is "you know" / "I mean" used as a filler, not as words."""
    pair = (norm(words[i].text), norm(words[i + 1].text))
    if pair not in (("you", "know"), ("i", "mean")):
        return False
    second = words[i + 1].text.rstrip("\"'’”)")
    closes_with_comma = second.endswith(",")
    prev = words[i - 1].text if i > 0 else ""
    set_off = i == 0 or _has_comma(prev) or _starts_sentence(words, i) or _broken_off(prev)
    if closes_with_comma and (set_off or norm(prev) in FILLER_OPENERS):
        return True
    # a closing tag: "This is real science, you know?"
    return pair == ("you", "know") and i > 0 and _has_comma(prev) and bool(re.search(r"[?.!]$", second))


def _strip_comma(word: str) -> str:
    return re.sub(r",$", "", word)


def words_of(segments: Iterable[Any]) -> list[Word]:
    """Split segments (objects or dicts with id/text) into words tagged with segment ids."""
    out: list[Word] = []
    for s in segments:
        sid, text = (s["id"], s["text"]) if isinstance(s, dict) else (s.id, s.text)
        for w in text.split():
            if w.strip("-—–.…"):  # skip bare dashes and ellipses
                out.append(Word(w, sid))
    return out


def _starts_sentence(words: list[Word], i: int) -> bool:
    return i == 0 or bool(_END.search(words[i - 1].text))


def _drop(words: list[Word], i: int, n: int) -> list[Word]:
    """Remove words[i:i+n] (a filler), tidying the commas around it."""
    removed = words[i : i + n]
    out = words[:i] + words[i + n :]
    last = removed[-1].text
    if _END.search(last) and i > 0 and i - 1 < len(out):  # filler ended a sentence: move the stop
        prev = out[i - 1]
        out[i - 1] = Word(_strip_comma(prev.text) + last[-1], prev.segment)
    elif i > 0 and _has_comma(out[i - 1].text) and _has_comma(last):
        prev = out[i - 1]  # ", like," -> drop the preceding comma too
        out[i - 1] = Word(_strip_comma(prev.text), prev.segment)
    if i < len(out) and _starts_sentence(out, i) and out[i].text[:1].islower():
        out[i] = Word(out[i].text[:1].upper() + out[i].text[1:], out[i].segment)
    return out


def remove_fillers(words: list[Word]) -> list[Word]:
    i = 0
    while i < len(words):
        n = norm(words[i].text)
        nxt = norm(words[i + 1].text) if i + 1 < len(words) else ""
        prev_comma = i == 0 or _has_comma(words[i - 1].text) or _starts_sentence(words, i)
        if n in ALWAYS_FILLERS:
            words = _drop(words, i, 1)
            continue
        if n == "like" and _has_comma(words[i].text) and prev_comma:
            words = _drop(words, i, 1)
            continue
        if n == "like" and (nxt[:1].isdigit() or nxt in NUMBER_WORDS) and not _has_comma(words[i].text):
            words = _drop(words, i, 1)  # "there's like three layers": a hedge before a number
            continue
        if n == "kinda" and nxt != "like":
            words = _drop(words, i, 1)
            continue
        if i + 1 < len(words) and _filler_pair(words, i):
            if words[i + 1].text.endswith("?"):  # a closing tag: the statement ends with a stop
                words = words[: i + 1] + [Word(words[i + 1].text[:-1] + ".", words[i + 1].segment)] + words[i + 2 :]
            words = _drop(words, i, 2)
            continue
        if n in ("kind", "sort") and nxt == "of" and i + 2 < len(words):
            before = norm(words[i - 1].text) if i > 0 else ""
            after = norm(words[i + 2].text)
            if (
                before not in DETERMINERS
                and after not in ("like", "thing", "things", "a", "an", "of")
                and not _has_comma(words[i + 1].text)
            ):
                words = _drop(words, i, 2)
                continue
        i += 1
    return words


def remove_repeats(words: list[Word]) -> list[Word]:
    """Drop the first copy of an immediately repeated run of words (restarts, stutters)."""
    changed = True
    while changed:
        changed = False
        keys = [norm(w.text) for w in words]
        for n in range(min(MAX_RESTART, len(words) // 2), 0, -1):
            for i in range(0, len(words) - 2 * n + 1):
                a, b = keys[i : i + n], keys[i + n : i + 2 * n]
                if a != b or not all(a):
                    continue
                opener = a[0] in RESTART_OPENERS and _starts_sentence(words, i) and _has_comma(words[i].text)
                if n == 1 and a[0] in INTENSIFIERS and not opener:
                    continue
                if n == 2 and a == ["over", "and"]:
                    continue
                words = words[:i] + words[i + n :]
                if _starts_sentence(words, i) and words[i].text[:1].islower():
                    words[i] = Word(words[i].text[:1].upper() + words[i].text[1:], words[i].segment)
                changed = True
                break
            if changed:
                break
    return words


def _split_sentences(words: list[Word]) -> list[list[Word]]:
    out: list[list[Word]] = []
    cur: list[Word] = []
    for w in words:
        cur.append(w)
        if _END.search(w.text) and not re.fullmatch(r"(?i)(mr|mrs|dr|vs|e\.g|i\.e|etc)\.", w.text):
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def _opens_sentence(word: str) -> bool:
    """A capitalised word ("So", "The", "That's"), not an acronym or a name in capitals ("FP16", "I")."""
    core = word.strip("\"'([")
    return len(core) > 1 and core[0].isupper() and core[1:].replace("'", "").isalpha() and core[1:].islower()


def _split_run_on(ws: list[Word]) -> list[list[Word]]:
    if len(ws) <= MAX_WORDS:
        return [ws]
    mid = len(ws) / 2
    best = None
    for i in range(MIN_SPLIT_WORDS, len(ws) - MIN_SPLIT_WORDS):
        if _has_comma(ws[i - 1].text) and norm(ws[i].text) in CONJUNCTIONS:
            if best is None or abs(i - mid) < abs(best - mid):
                best = i
    if best is None:  # no ", and": text without stops; a sentence starts wherever a segment opens capitalised
        cuts = [0]
        for i in range(MIN_SPLIT_WORDS, len(ws) - MIN_SPLIT_WORDS + 1):
            if i - cuts[-1] >= MIN_SPLIT_WORDS and ws[i].segment != ws[i - 1].segment and _opens_sentence(ws[i].text):
                cuts.append(i)
        if len(cuts) == 1:
            return [ws]
        pieces = [list(ws[a:b]) for a, b in zip(cuts, [*cuts[1:], len(ws)])]
        for left in pieces[:-1]:
            left[-1] = Word(_strip_comma(left[-1].text) + ".", left[-1].segment)
        return [part for piece in pieces for part in _split_run_on(piece)]
    left = ws[:best]
    left[-1] = Word(_strip_comma(left[-1].text) + ".", left[-1].segment)
    right = ws[best:]
    right[0] = Word(right[0].text[:1].upper() + right[0].text[1:], right[0].segment)
    return _split_run_on(left) + _split_run_on(right)


def clean_segments(segments: Iterable[Any]) -> list[Sentence]:
    """Cleaned, numbered sentences (ids from 1) with their source segments and times."""
    segs = list(segments)
    times = {}
    for s in segs:
        sid, st, en = (s["id"], s["start"], s["end"]) if isinstance(s, dict) else (s.id, s.start, s.end)
        times[sid] = (float(st), float(en))
    words = remove_repeats(remove_fillers(words_of(segs)))
    sentences: list[Sentence] = []
    for chunk in _split_sentences(words):
        for ws in _split_run_on(chunk):
            if not any(norm(w.text) for w in ws):
                continue
            text = " ".join(w.text for w in ws).strip()
            text = text[:1].upper() + text[1:]
            if not _END.search(text):
                text = text.rstrip(",;:") + "."
            ids = tuple(sorted({w.segment for w in ws}))
            sentences.append(
                Sentence(len(sentences) + 1, text, ids, min(times[i][0] for i in ids), max(times[i][1] for i in ids))
            )
    return sentences


def clean_text(text: str) -> str:
    """Cleaned version of a plain string (one pseudo-segment), for tests and previews."""
    return " ".join(s.text for s in clean_segments([{"id": 0, "start": 0.0, "end": 0.0, "text": text}]))
