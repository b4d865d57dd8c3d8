"""Guards against Whisper's two silent failures, for every engine: repetition loops and dropped passages.

1. **Loops**: a segment whose text compresses too well (gzip ratio > 2.4, whisper's own
   threshold, but applied to each emitted segment and to runs of segments, where
   whisper only checks whole 30-s windows) or that repeats one word n-gram
   ``MIN_REPEATS`` times in a row ("the KV cache the KV cache the KV cache ...").
2. **Dropped passages**: speech found by the VAD that no emitted segment covers for at
   least ``MIN_GAP_S`` seconds (whisper sometimes jumps a timestamp token past a passage,
   or a window's text ends early and the next window starts later); and, for the batched
   engine's text-only windows (their sentences' times are spread over the window, so they
   cover it whatever was dropped), a window with far fewer words per second of speech than
   the recording's other windows (``THIN_FRACTION``).

   Also a phrase of ``PHRASE_WORDS``+ words said ``PHRASE_REPEATS``+ times within
   ``PHRASE_SPAN_S`` with little else between (``PHRASE_DENSITY_MIN``), back to back or not ("phrase"): replaced only when decoding again loses it,
   and not flagged at all when it is ``spoken``: under ``auto`` on a short recording, a phrase both
   engines heard that often in the same window (``select.heard_by_both``; decoded independently, two
   decoders do not invent the same loop) was said. A spoken "Every token reads every weight" x3
   decoded again on its own came back empty (whisper's no-speech rule) and was dropped.
3. **Repeats**: a segment that only repeats words of one of the 3 segments before it (whisper,
   conditioned on its previous text, says it again over noise or silence).
4. **Foreign script**: a run of ``FOREIGN_MIN_LETTERS``+ letters in a script the recording's text
   does not use (``expected_scripts``): whisper's temperature fallback samples from every language it
   knows ("I'm giving up ول Districts에요 The Musik" on an English clip, c16 of the short-clip set).

Each flagged span is cut from the audio (with ``PAD_S`` of context) and decoded again on
its own: no previous text to condition on, greedy, then sampled from T = 0.2 if the greedy
text still loops (a loop at T = 0 is the greedy path; sampling leaves it), in <= 30-s
windows. The repair replaces the flagged segments when the new text does not loop (a repetition
the old text has as often is no loop: two decodings heard it, as the speaker's "No, no, no, no, no,
no, no, no" on c16), has no foreign-script run, and is not faster than anyone speaks
(``MAX_WORDS_PER_S`` over its span: a 0.9-s echo re-decoded as "Thanks for watching, have a good day,
and see you next time!" on c16, whisper's best-known invention); for a gap it must not be empty (a loop
or repeat that decodes to nothing was words over noise and is dropped). What was done is recorded in
the transcript (``repairs``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from ramble2post.transcribe.audio import SAMPLE_RATE, Signal

log = logging.getLogger(__name__)

COMPRESSION_RATIO_MAX = 2.4  # gzip ratio above which text is a loop (whisper's threshold)
MIN_CHARS_FOR_RATIO = 200  # chars; shorter text is judged by repeats only (said twice compresses well too)
MIN_REPEATS = 5  # consecutive repeats of one n-gram that make a loop (4 are said: "memory bound" x4)
MAX_NGRAM = 8  # words; longest repeated phrase looked for
MIN_GAP_S = 3.0  # s of VAD speech without any segment that count as a dropped passage
PAD_S = 1.0  # s of context added on each side of a span that is decoded again
REDECODE_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # second pass, when the first (T = 0, no context) loops
ECHO_BACK = 3  # segments looked back at for a repeat of earlier text
# words; shorter phrases recur in real speech: "Per token." after "... 24 KiB per token." was
# flagged on an espeak-ng clip (short-m3-kv) and its re-decode was worse (WER 9.9 -> 12.1 %)
ECHO_MIN_WORDS = 3
# A window whose words per second of speech are under this share of the recording's median lost
# text: one speaker's rate varies by well under 2x within a recording (espeak-ng voices at 150-200
# wpm, the 13-min sample's windows: 2.0-3.3 words/s), a dropped sentence halves a window's count.
THIN_FRACTION = 0.5
THIN_MIN_SPEECH_S = 8.0  # s of speech a window needs before its rate is judged
# A phrase of PHRASE_WORDS+ words said PHRASE_REPEATS+ times within PHRASE_SPAN_S, consecutive or not, is
# a loop that whisper's greedy decoding spreads over segments ("you can get a new one" x 5, issue 26)
PHRASE_WORDS = 4
PHRASE_REPEATS = 3
PHRASE_SPAN_S = 60.0  # s
# ... and only when the sayings are dense: the phrase's words at least this share of the words from its
# first saying to its last. A decoding loop says little else ("you can get a new one" x 4 in 24 words:
# 0.71; a spoken "Every token reads every weight" x 3, which the re-decoding then keeps: 0.8), while a
# phrase a speaker reuses sentence after sentence is spread out ("you need to be able to", "when we talk
# about" on the 13-min sample: 0.07-0.13; once per 18-word sentence: 0.3). Those were re-decoded and
# never replaced: 13 s of the 13-min sample's 38 s, 93 s of the 67-min file's 202 s.
PHRASE_DENSITY_MIN = 0.5
# letters in a row of one script the recording does not use that make a foreign-script run: one letter
# alone is a symbol in tech talk ("μs", "π"); a sampled fallback writes whole syllables ("ول", "에요")
FOREIGN_MIN_LETTERS = 2
# share of the transcript's letters a script needs to be the recording's own (Latin always is: code,
# units and names are written in it in every language)
SCRIPT_MIN_SHARE = 0.05
# words per second of span that a re-decoded text may not exceed: 6 words/s is 360 wpm, faster than
# conversational (150-200 wpm) or fast (250-300 wpm) speech; the span is the flag's, plus the 0.2 s on
# each side within which new segments are kept
MAX_WORDS_PER_S = 6.0
MAX_RATE_SLACK_S = 0.4  # s

_WORD = re.compile(r"[\w']+")


# what each flag means, in the log line a user reads ("guard: 75.0-82.0 s (speech with no words) decoded again")
_REASON_WORDS = {
    "loop": "a loop",
    "repeat": "text repeated over noise",
    "phrase": "a phrase repeated",
    "gap": "speech with no words",
    "thin": "too few words for the speech",
    "script": "letters of another script",
}


@dataclasses.dataclass(frozen=True)
class Flag:
    """A span to decode again: ``[start, end)`` in seconds of the file, and why."""

    start: float  # s
    end: float  # s
    reason: str  # "loop" | "repeat" | "phrase" | "gap" | "thin"
    segments: tuple[int, ...] = ()  # indexes of the flagged segments (none for a gap)


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (whisper's measure)."""
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


def longest_repeat(text: str, *, max_n: int = MAX_NGRAM) -> tuple[int, str]:
    """Most consecutive repeats of any word n-gram (n <= ``max_n``) in ``text``, and the n-gram."""
    words = [w.lower() for w in _WORD.findall(text)]
    best, phrase = 1, ""
    for n in range(1, max_n + 1):
        i = 0
        while i + 2 * n <= len(words):
            reps = 1
            while words[i + reps * n : i + (reps + 1) * n] == words[i : i + n]:
                reps += 1
            if reps > best:
                best, phrase = reps, " ".join(words[i : i + n])
            i += max(1, (reps - 1) * n) if reps > 1 else 1
    return best, phrase


def words_of(text: str) -> list[str]:
    """The lower-cased words of ``text``."""
    return [w.lower() for w in _WORD.findall(text)]


def repeated_phrases(
    words: Sequence[str], *, min_words: int = PHRASE_WORDS, min_count: int = PHRASE_REPEATS
) -> dict[str, int]:
    """Word ``min_words``-grams of ``words`` said ``min_count``+ times (not overlapping, anywhere), with counts.

    A longer phrase repeated that often repeats its first ``min_words`` words too, so n-grams suffice.
    """
    last: dict[tuple[str, ...], int] = {}  # n-gram -> position of its last counted occurrence
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - min_words + 1):
        gram = tuple(words[i : i + min_words])
        if gram in last and i - last[gram] < min_words:
            continue  # overlaps its previous occurrence ("a a a a a")
        last[gram] = i
        counts[gram] = counts.get(gram, 0) + 1
    return {" ".join(g): c for g, c in counts.items() if c >= min_count}


def find_phrase_loops(
    segments: Sequence[dict[str, Any]], *, span_s: float = PHRASE_SPAN_S, spoken: Collection[str] = ()
) -> list[Flag]:
    """Flags for runs of segments that say one ``PHRASE_WORDS``-word phrase ``PHRASE_REPEATS``+ times
    within ``span_s`` and densely (``PHRASE_DENSITY_MIN``), consecutive or not: the run from its first saying to its last (decoded again, the
    audio gives back the saying that was spoken). Phrases in ``spoken`` (lower-case words joined by one
    space, as ``repeated_phrases`` gives them) are known to be said and are not flagged."""
    words: list[str] = []
    owner: list[int] = []  # segment index of each word
    for i, s in enumerate(segments):
        w = words_of(s["text"])
        words += w
        owner += [i] * len(w)
    said: dict[tuple[str, ...], list[int]] = {}  # n-gram -> word positions, not overlapping
    for k in range(len(words) - PHRASE_WORDS + 1):
        pos = said.setdefault(tuple(words[k : k + PHRASE_WORDS]), [])
        if not pos or k - pos[-1] >= PHRASE_WORDS:
            pos.append(k)
    runs: list[tuple[int, int]] = []
    for gram, pos in said.items():
        if " ".join(gram) in spoken:
            continue
        for a in range(len(pos) - PHRASE_REPEATS + 1):
            run_words = pos[a + PHRASE_REPEATS - 1] + PHRASE_WORDS - pos[a]
            if PHRASE_REPEATS * PHRASE_WORDS / run_words < PHRASE_DENSITY_MIN:
                continue  # spread out: a phrase the speaker reuses, not a loop
            first, last = owner[pos[a]], owner[pos[a + PHRASE_REPEATS - 1]]
            if float(segments[last]["end"]) - float(segments[first]["start"]) <= span_s:
                runs.append((first, last))
    flags: list[Flag] = []
    for first, last in sorted(runs):
        if flags and first <= flags[-1].segments[-1]:  # overlaps the previous run: one span
            prev = flags.pop()
            first, last = prev.segments[0], max(last, prev.segments[-1])
        idx = tuple(range(first, last + 1))
        flags.append(Flag(float(segments[first]["start"]), float(segments[last]["end"]), "loop", idx))
    return flags


def is_loop(text: str) -> bool:
    """Whether ``text`` reads as a decoding loop (see module doc)."""
    if len(text) >= MIN_CHARS_FOR_RATIO and compression_ratio(text) > COMPRESSION_RATIO_MAX:
        return True
    reps, phrase = longest_repeat(text)
    # one repeated word needs more repeats ("no, no, no" is speech); a phrase needs MIN_REPEATS
    return reps >= (MIN_REPEATS + 3 if len(phrase.split()) == 1 else MIN_REPEATS)


def loops_beyond(text: str, old: str) -> bool:
    """Whether ``text`` loops (``is_loop``) in a way that makes it no better than ``old``.

    A repeated n-gram that ``old`` repeats as often is no loop of the new decoding (two decodings heard
    it said) when ``text`` brings back more words besides it than ``old`` has (the old decoding stopped
    early); compressing like a loop always is one.
    """
    if not is_loop(text):
        return False
    if len(text) >= MIN_CHARS_FOR_RATIO and compression_ratio(text) > COMPRESSION_RATIO_MAX:
        return True
    reps, phrase = longest_repeat(text)
    old_reps, old_phrase = longest_repeat(old)
    n = len(phrase.split())
    more_words = len(_WORD.findall(text)) - reps * n > len(_WORD.findall(old)) - old_reps * n
    return not (phrase == old_phrase and reps <= old_reps and more_words)


_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK"}  # written together with Han


def script_of(ch: str) -> str | None:
    """The script of a letter (the first word of its Unicode name, CJK scripts as one), None for a non-letter."""
    if not ch.isalpha():
        return None
    first = unicodedata.name(ch, "?").split(" ")[0]
    return _SCRIPT_GROUPS.get(first, first)


def expected_scripts(texts: Sequence[str]) -> frozenset[str]:
    """Latin and every script with ``SCRIPT_MIN_SHARE`` of the letters of ``texts``."""
    counts: dict[str, int] = {}
    for text in texts:
        for ch in text:
            script = script_of(ch)
            if script:
                counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values())
    return frozenset({"LATIN"} | {k for k, n in counts.items() if n >= SCRIPT_MIN_SHARE * total})


def foreign_runs(text: str, expected: Collection[str]) -> list[str]:
    """Runs of ``FOREIGN_MIN_LETTERS``+ letters of one script not in ``expected`` (see module doc)."""
    runs: list[str] = []
    run, run_script = "", None
    for ch in text + " ":
        script = script_of(ch)
        if script is not None and script not in expected and script == run_script:
            run += ch
            continue
        if len(run) >= FOREIGN_MIN_LETTERS:
            runs.append(run)
        run, run_script = (ch, script) if script is not None and script not in expected else ("", None)
    return runs


def find_foreign(segments: Sequence[dict[str, Any]], expected: Collection[str]) -> list[Flag]:
    """Flags for segments with a foreign-script run (``foreign_runs``; ``expected``: ``expected_scripts``
    of the recording's text)."""
    return [
        Flag(float(s["start"]), float(s["end"]), "script", (i,))
        for i, s in enumerate(segments)
        if foreign_runs(s["text"], expected)
    ]


def too_fast(text: str, start: float, end: float) -> bool:
    """Whether ``text`` has more words than ``MAX_WORDS_PER_S`` allows over ``[start, end]`` s (see module doc)."""
    return len(_WORD.findall(text)) > MAX_WORDS_PER_S * (end - start + MAX_RATE_SLACK_S)


def _words(text: str) -> str:
    return " ".join(w.lower() for w in _WORD.findall(text))


def is_echo(segments: Sequence[dict[str, Any]], i: int, *, back: int = ECHO_BACK) -> bool:
    """Whether segment ``i`` only repeats words of one of the ``back`` segments before it.

    Whisper conditioned on its previous text repeats it over noise or silence ("Memory
    bound, memory bound." again over a noisy tail). Needs ``ECHO_MIN_WORDS`` words.
    """
    words = _words(segments[i]["text"])
    if len(words.split()) < ECHO_MIN_WORDS:
        return False
    return any(words in _words(segments[j]["text"]) for j in range(max(0, i - back), i))


def _add(flags: list[Flag], flag: Flag) -> None:
    """Append ``flag``, merged into the last flag when their segments are contiguous (one span)."""
    if flags and flags[-1].segments and flags[-1].segments[-1] == flag.segments[0] - 1:
        prev = flags.pop()
        reason = "loop" if "loop" in (prev.reason, flag.reason) else prev.reason
        flag = Flag(prev.start, flag.end, reason, prev.segments + flag.segments)
    flags.append(flag)


def find_loops(segments: Sequence[dict[str, Any]]) -> list[Flag]:
    """Flags for echoes, then for looping segments or runs of 2-4 other segments that loop together.

    Echoes are found first and left out of the runs: an echo of a sentence that was said next to
    the sentence itself compresses like a loop, and would take the spoken words with it.
    """
    echoes = [i for i in range(len(segments)) if is_echo(segments, i)]
    flags = [Flag(segments[i]["start"], segments[i]["end"], "repeat", (i,)) for i in echoes]
    rest = [i for i in range(len(segments)) if i not in set(echoes)]
    k = 0
    while k < len(rest):
        hit = None
        for width in (1, 2, 3, 4):  # a loop can be spread over several short segments
            idx = rest[k : k + width]
            if len(idx) == width and is_loop(" ".join(segments[i]["text"] for i in idx)):
                hit = width
                break
        if hit and hit > 1 and is_loop(" ".join(segments[i]["text"] for i in rest[k + 1 : k + hit])):
            hit = None  # the loop starts at a later segment: keep this one
        if hit:
            idx = rest[k : k + hit]
            flags.append(Flag(segments[idx[0]]["start"], segments[idx[-1]]["end"], "loop", tuple(idx)))
            k += hit
        else:
            k += 1
    merged: list[Flag] = []
    for flag in sorted(flags, key=lambda f: f.segments[0]):
        _add(merged, flag)
    return merged


def find_gaps(
    regions: Sequence[tuple[float, float]], segments: Sequence[dict[str, Any]], *, min_gap_s: float = MIN_GAP_S
) -> list[Flag]:
    """Flags for stretches of VAD speech (``regions``, s) that no segment covers for ``min_gap_s``."""
    covered = sorted((float(s["start"]), float(s["end"])) for s in segments if s["text"].strip())
    flags: list[Flag] = []
    for a, b in regions:
        cursor = a
        uncovered: list[tuple[float, float]] = []
        for s, e in covered:
            if e <= cursor or s >= b:
                continue
            if s > cursor:
                uncovered.append((cursor, s))
            cursor = max(cursor, e)
        if cursor < b:
            uncovered.append((cursor, b))
        for start, end in uncovered:
            if end - start >= min_gap_s:
                flags.append(Flag(round(start, 3), round(end, 3), "gap"))
    return flags


def find_thin(windows: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]]) -> list[Flag]:
    """Flags for windows (dicts with start, end and optional parts, s) whose segments hold under
    ``THIN_FRACTION`` of the median words per second of speech (see module doc)."""
    rows = []
    for w in windows:
        spans = w.get("parts") or [(w["start"], w["end"])]
        speech = sum(b - a for a, b in spans)
        idx = tuple(i for i, s in enumerate(segments) if w["start"] <= (s["start"] + s["end"]) / 2 <= w["end"])
        words = sum(len(_WORD.findall(segments[i]["text"])) for i in idx)
        rows.append((float(w["start"]), float(w["end"]), speech, words, idx))
    rates = [words / speech for _, _, speech, words, _ in rows if speech >= THIN_MIN_SPEECH_S]
    if len(rates) < 3:
        return []  # too few windows to know the speaker's rate
    typical = float(np.median(rates))
    return [
        Flag(round(a, 3), round(b, 3), "thin", idx)
        for a, b, speech, words, idx in rows
        if speech >= THIN_MIN_SPEECH_S and words / speech < THIN_FRACTION * typical
    ]


Decoder = Callable[[np.ndarray], list[dict[str, Any]]]  # 16-kHz clip -> segments with times in the clip


def repair(
    *,
    samples: Signal,
    segments: list[dict[str, Any]],
    regions: Sequence[tuple[float, float]],
    decode: Decoder,
    windows: Sequence[dict[str, Any]] = (),
    spoken: Collection[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Find loops and gaps in ``segments`` and decode those spans again with ``decode``.

    samples: the whole file, 16 kHz mono float32.
    segments: the engine's segments (dicts with start, end, text, ...), in time order.
    regions: speech regions ``(start_s, end_s)`` from the VAD, for the coverage check.
    decode: decodes one clip (<= 30 s) without previous text (``whisper_clip_decoder``).
    windows: the batched engine's text-only windows (``chunks`` of its result), for ``find_thin``.
    spoken: phrases known to be said (``find_phrase_loops``): both engines heard them (``select.heard_by_both``).
    Returns (segments after repair, in time order; one record per flag for the transcript).
    """
    flags = find_loops(segments)
    looped = {i for f in flags for i in f.segments}
    # a phrase said again and again across segments, not back to back: (part of) a loop find_loops missed
    flags += [
        dataclasses.replace(f, reason="phrase")
        for f in find_phrase_loops(segments, spoken=spoken)
        if not looped & set(f.segments)
    ]
    looped = {i for f in flags for i in f.segments}
    expected = expected_scripts([s["text"] for s in segments])  # the recording's scripts
    flags += [f for f in find_foreign(segments, expected) if not looped & set(f.segments)]
    flags += find_gaps(regions, segments)
    looped = {i for f in flags for i in f.segments}
    flags += [f for f in find_thin(windows, segments) if not looped & set(f.segments)]
    if not flags:
        return segments, []
    duration = len(samples) / SAMPLE_RATE
    drop: set[int] = set()
    added: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for flag in sorted(flags, key=lambda f: f.start):
        a, b = max(0.0, flag.start - PAD_S), min(duration, flag.end + PAD_S)
        new: list[dict[str, Any]] = []
        t = a
        while t < b - 0.1:  # <= 30-s windows
            end = min(b, t + 30.0)
            for s in decode(samples[int(t * SAMPLE_RATE) : int(end * SAMPLE_RATE)]):
                new.append({**s, "start": round(t + float(s["start"]), 3), "end": round(t + float(s["end"]), 3)})
            t = end
        # keep only what falls into the span: the padding overlaps the neighbours, which are kept
        new = [s for s in new if flag.start - 0.2 <= (s["start"] + s["end"]) / 2 <= flag.end + 0.2]
        text = " ".join(s["text"].strip() for s in new).strip()
        old = " ".join(segments[i]["text"].strip() for i in flag.segments)
        # a loop or repeat that comes back empty was words over noise: drop them; a gap must get
        # words, a thin window more words than it had
        ok = not loops_beyond(text, old) and (bool(text) or flag.reason != "gap")
        ok = ok and not foreign_runs(text, expected) and not too_fast(text, flag.start, flag.end)
        # a phrase said twice back to back in the new text and not in the old is the re-decode stuttering
        # over its 1-s context ("Per token." -> "The token. The token. So ...")
        reps, phrase = longest_repeat(text)
        ok = ok and not (reps >= 2 and len(phrase.split()) >= 2 and longest_repeat(old)[0] < 2)
        if flag.reason == "phrase":  # no phrase said 3+ times must be left: said as often again, it was spoken
            ok = ok and not repeated_phrases(words_of(text))
        if flag.reason == "thin":
            ok = ok and len(_WORD.findall(text)) > len(_WORD.findall(old))
        records.append(
            {
                "reason": flag.reason,
                "start": flag.start,
                "end": flag.end,
                "before": old,
                "after": text,
                "applied": ok,
            }
        )
        log.info(
            "guard: %.1f-%.1f s (%s) decoded again, %s: %r -> %r",
            flag.start,
            flag.end,
            _REASON_WORDS.get(flag.reason, flag.reason),
            "replaced" if ok else "first decoding kept",
            old[:60],
            text[:60],
        )
        if ok:
            drop.update(flag.segments)
            added.extend(new)
    kept = [s for i, s in enumerate(segments) if i not in drop] + added
    kept.sort(key=lambda s: (s["start"], s["end"]))
    return kept, records


def whisper_clip_decoder(model, *, language: str | None, prompt: str | None, fp16: bool) -> Decoder:
    """A ``Decoder`` using whisper's own loop on the clip without previous text: greedy first, then
    sampled (T >= 0.2) when the greedy text still loops."""
    import contextlib
    import sys

    import whisper

    from ramble2post.transcribe.torch_state import seeded_sampling

    def once(clip: np.ndarray, temperature: tuple[float, ...]) -> list[dict[str, Any]]:
        with contextlib.redirect_stdout(sys.stderr), seeded_sampling():  # a clip's text depends on the clip only
            r = whisper.transcribe(
                model,
                clip.astype(np.float32),
                language=language,
                initial_prompt=prompt,
                temperature=temperature,
                condition_on_previous_text=False,
                fp16=fp16,
                verbose=None,
            )
        return [s for s in r["segments"] if s["text"].strip()]

    def decode(clip: np.ndarray) -> list[dict[str, Any]]:
        segs = once(clip, (0.0,))
        if segs and is_loop(" ".join(s["text"] for s in segs)):
            segs = once(clip, REDECODE_TEMPERATURES)
        return segs

    return decode
