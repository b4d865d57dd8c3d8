"""Which experiments does a ramble refer to? Rule-based, no LLM needed.

Each experiment lists :class:`~experiments.base.Trigger` patterns (regular
expressions, matched case-insensitively on the original segment text so the
evidence quotes the exact words). Spoken language is loose, so patterns accept
number words as well as digits (:func:`num`) and the usual transcription slips
("in eight" for int8). Hits are weighted; an experiment is detected when the
weights in a window of neighbouring segments reach :data:`THRESHOLD`. Context
triggers ("perplexity", "how much worse") only count next to a real hit, so a
ramble that merely says "worse" or "precision" detects nothing.

A semantic layer (experiments.detect_semantic) then looks for the experiments
the rules missed by meaning: each window is embedded and compared with short
descriptions of each claim, so "with matching it went from twenty to three
hundred tokens a second" still finds batching-speedup.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ramble2post.records import Segment, Transcript

THRESHOLD = 1.0  # summed trigger weight that makes a detection
WINDOW_SEGMENTS = 3  # neighbouring segments whose hits add up (~20-40 s of speech)

NUMBER_WORDS = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    8: "eight",
    16: "sixteen",
    32: "thirty[\\s-]?two",
    64: "sixty[\\s-]?four",
    128: "(?:one[\\s-])?hundred(?:\\s+and)?[\\s-]twenty[\\s-]eight",
}


def num(*values: int) -> str:
    """Regex for numbers written as digits or spoken words: ``num(4, 8)`` -> ``(?:4|four|8|eight)``."""
    alts = []
    for v in values:
        alts.append(str(v))
        if v in NUMBER_WORDS:
            alts.append(NUMBER_WORDS[v])
    return "(?:" + "|".join(alts) + ")"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One trigger hit: where in the ramble, and the words as transcribed."""

    segment_id: int
    start: float  # s
    end: float  # s
    quote: str  # the matched words, verbatim
    label: str  # what the trigger stands for ("int8", "quantize", ...)
    weight: float
    context: bool = False
    shared: bool = False  # a word other experiments' claims use too (Trigger.shared)


@dataclasses.dataclass(frozen=True)
class Detection:
    """An experiment the ramble refers to, with the evidence for it."""

    experiment: str
    claim: str
    score: float  # best window's summed weight (>= THRESHOLD)
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _segments(transcript: Transcript | Sequence[Segment] | Mapping[str, Any] | str) -> list[Segment]:
    if isinstance(transcript, Transcript):
        return list(transcript.segments)
    if isinstance(transcript, Mapping):
        return list(Transcript.from_dict(dict(transcript)).segments)
    if isinstance(transcript, str):
        return segments_from_text(transcript)
    return list(transcript)


def segments_from_text(text: str, *, seconds_per_word: float = 0.4) -> list[Segment]:
    """Split plain text into sentence segments with estimated times (for text-only input)."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text) if p.strip()]
    segs, t = [], 0.0
    for i, p in enumerate(parts):
        dur = max(1, len(p.split())) * seconds_per_word
        segs.append(Segment(id=i, start=round(t, 2), end=round(t + dur, 2), text=p))
        t += dur
    return segs


def _compile(experiments: Iterable[Any]) -> list[tuple[Any, list[tuple[re.Pattern, Any]]]]:
    out = []
    for exp in experiments:
        pats = []
        for trig in exp.triggers:
            pats.append((re.compile(trig.pattern, re.IGNORECASE), trig))
        out.append((exp, pats))
    return out


def _hits(segments: Sequence[Segment], pats) -> list[list[Evidence]]:
    """Per segment, the non-overlapping trigger hits (heavier triggers win overlaps)."""
    per_seg: list[list[Evidence]] = []
    order = sorted(pats, key=lambda pt: (pt[1].context, -pt[1].weight))
    for seg in segments:
        taken: list[tuple[int, int]] = []
        found: list[Evidence] = []
        for rx, trig in order:
            for m in rx.finditer(seg.text):
                a, b = m.span()
                if a == b or any(a < y and x < b for x, y in taken):
                    continue
                taken.append((a, b))
                found.append(
                    Evidence(
                        segment_id=seg.id,
                        start=seg.start,
                        end=seg.end,
                        quote=m.group(0).strip(),
                        label=trig.label or trig.pattern,
                        weight=trig.weight,
                        context=trig.context,
                        shared=getattr(trig, "shared", False),
                    )
                )
        per_seg.append(found)
    return per_seg


def _own(segment: Sequence[Evidence]) -> bool:
    """The segment holds a primary hit of an experiment's own vocabulary (not a shared word)."""
    return any(not e.context and not e.shared for e in segment)


def _yields(window: Sequence[list[Evidence]], others: Sequence[Sequence[list[Evidence]]]) -> bool:
    """A window that reaches the threshold on shared words only ("FP8", "four bit") yields when every
    sentence holding them also holds another experiment's own words ("tensor cores", "KV cache",
    "QLoRA"): the dtype is that claim's detail. A sentence of its own keeps the detection."""
    if any(_own(seg) for seg in window):
        return False
    primary = [j for j, seg in enumerate(window) if any(not e.context for e in seg)]
    return bool(primary) and all(any(_own(o[j]) for o in others if j < len(o)) for j in primary)


def _window_score(window: Sequence[list[Evidence]]) -> float:
    hits = [e for seg in window for e in seg]
    primary = sum(e.weight for e in hits if not e.context)
    if primary <= 0:
        return 0.0
    return primary + sum(e.weight for e in hits if e.context)


def detect_experiments(
    *,
    transcript: Transcript | Sequence[Segment] | Mapping[str, Any] | str,
    experiments: Iterable[Any] | None = None,
    threshold: float = THRESHOLD,
    window: int = WINDOW_SEGMENTS,
    semantic: bool = True,
) -> list[Detection]:
    """Experiments the transcript refers to, strongest first, each with its evidence.

    ``transcript`` may be a Transcript, its dict (transcript.json), a list of
    Segments, or plain text (split into sentences). ``experiments`` defaults to
    every registered experiment. ``semantic=False`` keeps to the rules (no embedding model).
    """
    if experiments is None:
        from ramble2post.experiments.base import all_experiments

        experiments = all_experiments()
    experiments = list(experiments)
    segments = _segments(transcript)
    compiled = [(exp, pats) for exp, pats in _compile(experiments) if pats]
    hits = {exp.name: _hits(segments, pats) for exp, pats in compiled}
    detections = []
    for exp, _pats in compiled:
        per_seg = hits[exp.name]
        others = [h for name, h in hits.items() if name != exp.name]
        windows = [
            i
            for i in range(len(per_seg))
            if _window_score(per_seg[i : i + window]) + 1e-9 >= threshold
            and not _yields(per_seg[i : i + window], [h[i : i + window] for h in others])
        ]
        if not windows:
            continue
        best = max(_window_score(per_seg[i : i + window]) for i in windows)
        # evidence: every hit in a window that reaches the threshold (not only the best one)
        keep: set[int] = set()
        for i in windows:
            keep.update(range(i, min(i + window, len(per_seg))))
        evidence = tuple(e for i in sorted(keep) for e in per_seg[i])
        detections.append(Detection(experiment=exp.name, claim=exp.claim, score=round(best, 3), evidence=evidence))
    if semantic:
        detections += _semantic(segments, experiments, detections, window, threshold)
    detections.sort(key=lambda d: (-d.score, d.experiment))
    return detections


def _semantic(
    segments: Sequence[Segment],
    experiments: Sequence[Any],
    detections: Sequence[Detection],
    window: int,
    threshold: float,
) -> list[Detection]:
    """Detections by meaning for the experiments the rules missed, in windows the rules left unexplained.

    Where the rules already tied the ramble to an experiment, a number claim no longer lowers the bar for
    another one: the ramble's numbers are mostly about its own subject. On the 38 rambles of
    tests/data/claims/quoted/ the semantic layer alone ran 5 experiments, 1 of them backed by the labels
    (a continuous-batching ramble's "4000 token prompt" ran speculative decoding for 146 s at stop 32);
    with this rule 2, 0 backed (all measured: 21, 13 backed -> 18, 12 backed; scripts/bench_quotes.py)."""
    found = {d.experiment for d in detections}
    missed = [e for e in experiments if e.name not in found]
    if not missed or not segments:
        return []
    from ramble2post.experiments.claims import _sentences, is_claim
    from ramble2post.experiments.detect_semantic import semantic_hits

    out = []
    index = {s.id: i for i, s in enumerate(segments)}
    skip = {index[e.segment_id] for d in detections for e in d.evidence if not e.context and e.segment_id in index}
    hits = semantic_hits(
        segments, experiments, window=window, only={e.name for e in missed}, skip_segments=skip, numbers_lower=not found
    )
    for h in hits:
        segs = segments[h.window_start : h.window_start + window]
        if not any(is_claim(sentence) for s in segs for sentence in _sentences(str(s.text))):
            continue  # close in meaning to the topic, but no sentence there claims an outcome to measure
        ev = Evidence(
            segment_id=segs[0].id,
            start=segs[0].start,
            end=segs[-1].end,
            quote=h.text,
            label=f"semantic: close in meaning to '{h.description}' (cosine {h.similarity:.2f}"
            + (", with a number claim)" if h.numbers else ")"),
            weight=h.similarity,
        )
        exp = next(e for e in missed if e.name == h.experiment)
        out.append(Detection(experiment=exp.name, claim=exp.claim, score=round(threshold, 3), evidence=(ev,)))
    return out
