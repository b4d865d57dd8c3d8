"""Segments of one batched-engine window: from timestamp tokens, or spread over its speech when
the window was decoded as text only."""

from __future__ import annotations

import re

from ramble2post.transcribe.vad import Chunk


def _split_segments(
    tokens: list[int], tokenizer, chunk: Chunk, with_timestamps: bool
) -> list[tuple[float, float, list[int]]]:
    """(start, end, text tokens) per segment of one window, times in seconds of the file."""
    if not with_timestamps:
        return [(chunk.start, chunk.end, [t for t in tokens if t < tokenizer.eot])]
    ts0 = tokenizer.timestamp_begin
    precision = 0.02  # s per timestamp token
    out: list[tuple[float, float, list[int]]] = []
    current: list[int] = []
    seg_start: float | None = None
    for t in tokens:
        if t >= ts0:
            when = chunk.start + (t - ts0) * precision
            if current:
                out.append((seg_start if seg_start is not None else when, when, current))
                current, seg_start = [], None
            else:
                seg_start = when
        elif t < tokenizer.eot:
            if seg_start is None:
                seg_start = out[-1][1] if out else chunk.start
            current.append(t)
    if current:  # text after the last timestamp: runs to the end of the window
        out.append((seg_start if seg_start is not None else chunk.start, chunk.end, current))
    return [(min(max(a, chunk.start), chunk.end), min(max(b, a, chunk.start), chunk.end), toks) for a, b, toks in out]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentence_times(text: str, chunk: Chunk) -> list[tuple[float, float, str]]:
    """The window's text cut into sentences, each given the stretch of the window's audio its share
    of the characters covers (mapped to file time through ``chunk.parts``): without timestamp tokens
    Whisper says nothing about when words were said, and speech rate is roughly even, so a
    sentence's times are good to a few seconds (enough to find it in the recording)."""
    text = text.strip()
    if not text:
        return []
    sentences = _SENTENCE_END.split(text)
    length = sum(b - a for a, b in chunk.spans())  # s of audio in the window
    total = sum(len(x) for x in sentences)
    out, done = [], 0
    for x in sentences:
        t0, t1 = length * done / total, length * (done + len(x)) / total
        done += len(x)
        out.append((round(chunk.file_time(t0), 3), round(chunk.file_time(t1), 3), x.strip()))
    return out
