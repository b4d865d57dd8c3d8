"""Energy voice-activity detection and window planning for the batched engine.

Speech regions come from frame levels (dB) against an adaptive noise floor; windows of at
most 30 s are cut at the quietest frame once a window is at least ``CUT_FROM`` full, so
there are few, full windows and cuts fall in pauses. Pure numpy: no model, no onnxruntime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ramble2post.transcribe.audio import SAMPLE_RATE, Signal

CHUNK_S = 30.0  # s, Whisper's fixed input window
FRAME_S = 0.03  # s, VAD analysis frame
N_SAMPLES = int(CHUNK_S * SAMPLE_RATE)  # samples in one encoder window
LEVEL_BLOCK_FRAMES = 5_000  # frames (2.5 min of audio, ~19 MB as float64) whose levels are computed at once


@dataclasses.dataclass(frozen=True)
class VadOptions:
    """Energy VAD settings."""

    min_margin_db: float = 8.0  # dB; speech threshold at least this far above the noise floor
    margin_fraction: float = 0.3  # threshold = floor + max(min_margin, fraction * (speech - floor))
    absolute_floor_dbfs: float = -55.0  # dBFS; frames quieter than this are never speech
    min_silence_s: float = 0.3  # s; pauses shorter than this stay inside a region
    min_speech_s: float = 0.12  # s; louder blips shorter than this are dropped
    pad_s: float = 0.2  # s; added before and after each region


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One encoder window: ``[start, end)`` in seconds of the whole file.

    parts: the stretches of the file the window holds, laid end to end (speech packed without
    the silence between it, as Silero windows are); empty = all of ``[start, end)``.
    """

    start: float  # s
    end: float  # s
    parts: tuple[tuple[float, float], ...] = ()  # s, (start, end) in file time

    def spans(self) -> tuple[tuple[float, float], ...]:
        """The file stretches in the window, in order: ``parts`` or the whole window."""
        return self.parts or ((self.start, self.end),)

    def file_time(self, t: float) -> float:
        """File time (s) of ``t`` seconds into the window's audio as it is encoded."""
        for a, b in self.spans():
            if t <= b - a:
                return a + max(t, 0.0)
            t -= b - a
        return self.end


# ---------------------------------------------------------------------------- VAD


def frame_levels_db(samples: Signal, *, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level in dBFS of consecutive, non-overlapping frames (the tail is dropped)."""
    n = int(frame_s * SAMPLE_RATE)
    count = len(samples) // n
    if count == 0:
        return np.zeros(0, np.float32)
    out = np.empty(count, np.float32)
    # in blocks of frames: the float64 copy of a whole 67-min file took 0.5 GB twice over (issue 26), and
    # a Pcm is read a slice at a time; each frame's mean is the same whichever block it is computed in
    for a in range(0, count, LEVEL_BLOCK_FRAMES):
        b = min(a + LEVEL_BLOCK_FRAMES, count)
        block = np.asarray(samples[a * n : b * n]).reshape(b - a, n).astype(np.float64)
        power = np.mean(block * block, axis=1)
        out[a : a + len(block)] = 10.0 * np.log10(power + 1e-12)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def speech_regions(*, samples: Signal, options: VadOptions = VadOptions()) -> list[tuple[float, float]]:
    """Speech regions ``(start_s, end_s)`` of 16 kHz mono audio, in time order.

    samples: float32 in [-1, 1] at ``SAMPLE_RATE``.
    options: thresholds and timing of the energy detector.
    """
    levels = frame_levels_db(samples)
    if levels.size == 0:
        return []
    floor = float(np.percentile(levels, 10))
    loud = float(np.percentile(levels, 95))
    threshold = max(
        floor + max(options.min_margin_db, options.margin_fraction * (loud - floor)), options.absolute_floor_dbfs
    )
    mask = levels > threshold
    # bridge short pauses (hangover), then drop short blips
    gap = int(round(options.min_silence_s / FRAME_S))
    for a, b in _runs(~mask):
        if 0 < a and b < len(mask) and b - a < gap:
            mask[a:b] = True
    shortest = int(round(options.min_speech_s / FRAME_S))
    regions: list[tuple[float, float]] = []
    duration = len(samples) / SAMPLE_RATE
    for a, b in _runs(mask):
        if b - a >= shortest:
            regions.append((max(0.0, a * FRAME_S - options.pad_s), min(duration, b * FRAME_S + options.pad_s)))
    merged: list[tuple[float, float]] = []
    for start, end in regions:  # padding can make neighbours overlap
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


CUT_FROM = 0.7  # cut no earlier than 70 % of a full window (21 s): fewer, fuller windows


def _quietest_cut(levels: np.ndarray, start: float, end: float, max_s: float) -> float:
    """Where to end the first window of the speech region ``[start, end)``: the quietest
    point of ``[start + CUT_FROM * max_s, start + max_s)``.

    Measured on the 13-min sample with base (int8 decoder, bf16 encoder): searching from
    50 % of a window gave 49 windows, 120 s, WER 9.03 %; from 70 %: 36 windows, 76 s,
    WER 7.76 % (sequential whisper: 7.84 %). Only searching the last 8 s was worse
    (1-min, tiny.en: a 6-s tail window without context, WER 17.7 % vs 11.5 %). Balancing the
    last cut of each region (+-6 s around its middle) fixed that clip but moved the 13-min
    WER to 8.59 %: greedy decoding makes WER this sensitive to where two windows are cut.
    """
    lo = int((start + CUT_FROM * max_s) / FRAME_S)
    hi = min(int((start + max_s) / FRAME_S) - 1, int(end / FRAME_S) - 1, len(levels) - 1)
    if hi <= lo:
        return start + max_s
    # smooth over ~90 ms so that one quiet frame inside a word does not win
    window = np.convolve(levels[lo : hi + 1], np.ones(3) / 3, mode="same")
    return (lo + int(np.argmin(window)) + 0.5) * FRAME_S


def plan_chunks(
    *, samples: Signal, regions: Sequence[tuple[float, float]], max_chunk_s: float = CHUNK_S
) -> list[Chunk]:
    """Pack speech regions greedily into windows of at most ``max_chunk_s`` seconds.

    Silence between regions packed into one window stays in it (timestamps inside a
    window are then linear in file time); silence between windows is skipped.
    """
    levels = frame_levels_db(samples)
    pieces: list[tuple[float, float]] = []
    for a, b in regions:  # split regions longer than a window at their quietest point
        while b - a > max_chunk_s:
            cut = _quietest_cut(levels, a, b, max_chunk_s)
            pieces.append((a, cut))
            a = cut
        pieces.append((a, b))
    chunks: list[Chunk] = []
    for a, b in pieces:
        if chunks and b - chunks[-1].start <= max_chunk_s:
            chunks[-1] = Chunk(chunks[-1].start, b)
        else:
            chunks.append(Chunk(a, b))
    return chunks


def pack_speech(*, regions: Sequence[tuple[float, float]], max_chunk_s: float = CHUNK_S) -> list[Chunk]:
    """Windows holding up to ``max_chunk_s`` seconds of speech each, the regions laid end to end
    without the silence (or noise) between them; a region longer than a window is split evenly.

    For Silero's regions on noisy audio: the noise between regions is what makes Whisper invent
    words, and leaving it out puts more speech in each window (13-min sample with pink noise at
    10 dB: 30 windows and WER 13.0 % packed, 35 and 13.3 % with the gaps kept; docs/PERFORMANCE.md).
    """
    pieces: list[tuple[float, float]] = []
    for a, b in regions:
        n = max(1, int(np.ceil((b - a) / max_chunk_s - 1e-9)))
        pieces += [(a + (b - a) * k / n, a + (b - a) * (k + 1) / n) for k in range(n)]
    chunks: list[list[tuple[float, float]]] = []
    for a, b in pieces:
        if chunks and sum(y - x for x, y in chunks[-1]) + (b - a) <= max_chunk_s + 1e-6:
            chunks[-1].append((a, b))
        else:
            chunks.append([(a, b)])
    return [Chunk(c[0][0], c[-1][1], tuple(c)) for c in chunks]


# ---------------------------------------------------------------------------- Silero VAD

# Silero settings for Whisper windows: faster-whisper's batched pipeline's (threshold 0.5, pauses of
# 160 ms end a region, 400 ms of padding each side, regions split before 30 s). With the energy
# detector's settings instead (300 ms, 200 ms) words at region edges were cut on noisy audio.
SILERO_THRESHOLD = 0.5  # speech probability
SILERO_MIN_SILENCE_S = 0.16  # s
SILERO_PAD_S = 0.4  # s
SILERO_MAX_SPEECH_S = CHUNK_S  # s


def silero_regions(*, samples: Signal) -> list[tuple[float, float]]:
    """Speech regions ``(start_s, end_s)`` from Silero VAD (``silero-vad``: its models are in the
    wheel), on onnxruntime where it is installed (13-min sample on 2 cores: 2.2 s, against 4.9 s
    for its TorchScript model on torch, which is used otherwise).
    """
    try:
        import torch
        from silero_vad import get_speech_timestamps
    except ImportError as e:
        from ramble2post.errors import DependencyError

        raise DependencyError("the Silero VAD needs the silero-vad package", hint="pip install silero-vad") from e
    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
        _silero_model(),
        threshold=SILERO_THRESHOLD,
        sampling_rate=SAMPLE_RATE,
        min_silence_duration_ms=int(SILERO_MIN_SILENCE_S * 1000),
        speech_pad_ms=int(SILERO_PAD_S * 1000),
        max_speech_duration_s=SILERO_MAX_SPEECH_S,
        return_seconds=True,
    )
    return [(float(s["start"]), float(s["end"])) for s in stamps]


_SILERO: list = []


def _silero_model():
    if not _SILERO:
        import importlib.util

        from silero_vad import load_silero_vad

        _SILERO.append(load_silero_vad(onnx=importlib.util.find_spec("onnxruntime") is not None))
    return _SILERO[0]


# Below this spread between the loud (95th percentile) and quiet (10th) frame levels the audio is
# noisy and ``auto`` asks Silero: the energy threshold then sits inside the noise and cuts words
# off (pink noise at 5 dB SNR: energy 87.0 of 91.3 s kept as speech, WER 43 % vs Silero 27 %).
NOISY_SPREAD_DB = 25.0  # dB


def level_spread_db(samples: Signal) -> float:
    """95th minus 10th percentile of the frame levels (dB): large for clean speech with pauses."""
    levels = frame_levels_db(samples)
    if levels.size == 0:
        return 0.0
    return float(np.percentile(levels, 95) - np.percentile(levels, 10))


def silero_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("silero_vad") is not None


def choose_vad(*, samples: Signal, engine: str = "auto") -> str:
    """ "energy" or "silero": ``engine`` itself, or for "auto" energy on clean audio (0.01 s per
    minute), Silero where the level spread is under ``NOISY_SPREAD_DB`` and silero-vad is
    installed (~0.2 s per minute on 2 cores with onnxruntime)."""
    if engine == "auto":
        noisy = level_spread_db(samples) < NOISY_SPREAD_DB
        engine = "silero" if noisy and silero_available() else "energy"
        if noisy and engine == "energy":
            import logging

            logging.getLogger(__name__).warning("noisy audio and no silero-vad: the energy VAD may cut words")
    return engine


def detect_speech(
    *, samples: Signal, engine: str = "auto", options: VadOptions = VadOptions()
) -> list[tuple[float, float]]:
    """Speech regions from the ``engine`` VAD: "energy" (numpy, here), "silero", or "auto" (``choose_vad``)."""
    if choose_vad(samples=samples, engine=engine) == "silero":
        return silero_regions(samples=samples)
    return speech_regions(samples=samples, options=options)
