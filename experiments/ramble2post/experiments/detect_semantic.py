"""The semantic layer of detection: claims found by meaning when the jargon was misheard.

Whisper hears "batching" as "matching", "KV cache" as "cave cache", "speculative"
as "spectacular": the rules (experiments.detect) then miss a claim a reader
wants measured. Here every window of neighbouring segments is embedded with the
project's MiniLM sentence embeddings and compared with short descriptions of
each experiment's claim (``Experiment.descriptions``, falling back to ``claim``).
A window refers to an experiment when its best cosine similarity reaches the
experiment's ``high`` threshold, or its ``low`` threshold when the window also
holds a number pattern that signals a measurable claim (tokens per second,
"ten x faster", "four bits", "a hundred samples", gigabytes) — and the
experiment is the window's closest one (ties within :data:`MARGIN`).

Thresholds were calibrated by ``scripts/bench_detect.py`` on the calibration half
of ``tests/data/detect_windows/windows.jsonl`` (the other half is held out).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

from ramble2post.records import Segment

log = logging.getLogger(__name__)

MARGIN = 0.02  # cosine: an experiment within this of the window's best one also counts


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Cosine thresholds of one experiment: ``high`` alone, ``low`` with a number pattern in the window."""

    high: float
    low: float


DEFAULT_THRESHOLDS = Thresholds(high=0.60, low=0.45)
# calibrated with scripts/bench_detect.py --calibrate on the calibration split (see docs/EXPERIMENTS.md)
THRESHOLDS: dict[str, Thresholds] = {
    "batching-speedup": Thresholds(high=0.51, low=0.39),
    "kv-cache-growth": Thresholds(high=0.45, low=0.39),
    "lora-finetune": Thresholds(high=0.66, low=0.39),
    "low-precision-matmul": Thresholds(high=0.66, low=0.48),
    "quantization-loss": Thresholds(high=0.51, low=0.39),
    "repeated-sampling": Thresholds(high=0.54, low=0.36),
    "speculative-decoding": Thresholds(high=0.57, low=0.51),
}

_NUM = (
    r"(?:\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|sixteen|twenty|"
    r"thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|a few|several|many)"
)
NUMBER_CLAIM = re.compile(
    rf"\b{_NUM}[\s-]+(?:tokens?|t\.?\s?p\.?\s?s)\b(?:\s+(?:per|a|/)\s*(?:second|sec|s)\b)?"
    rf"|\b{_NUM}[\s-]?(?:x|times)\s+(?:faster|slower|more|less|the|smaller|bigger|as)\b"
    rf"|\b{_NUM}[\s-]+bits?\b|\b(?:int|in|into)[\s-]?(?:4|8|four|eight)\b"
    rf"|\b{_NUM}[\s-]+(?:samples?|completions|answers|tries|requests|users|sequences|prompts)\b"
    rf"|\b{_NUM}[\s-]+(?:gigabytes?|megabytes?|GB|MB|GiB|MiB)\b|\b{_NUM}\s+percent\b|\b\d+\s?%",
    re.IGNORECASE,
)


def has_number_claim(text: str) -> bool:
    """True when the text holds a number pattern that signals a measurable claim."""
    return NUMBER_CLAIM.search(text) is not None


def descriptions(exp: Any) -> tuple[str, ...]:
    """The short claim descriptions an experiment is recognised by (its ``claim`` if it lists none)."""
    return tuple(getattr(exp, "descriptions", ()) or ()) or (exp.claim,)


def window_texts(segments: Sequence[Segment], window: int) -> list[tuple[int, str]]:
    """(first segment index, joined text) of every window of ``window`` neighbouring segments."""
    if not segments:
        return []
    n = max(1, len(segments) - window + 1)
    return [(i, " ".join(s.text.strip() for s in segments[i : i + window])) for i in range(n)]


@dataclasses.dataclass(frozen=True)
class SemanticHit:
    """The best window of one experiment by meaning."""

    experiment: str
    similarity: float  # cosine with the closest description
    window_start: int  # index of the window's first segment
    text: str
    numbers: bool  # a number pattern was in the window
    description: str


@functools.lru_cache(maxsize=8)
def _description_vectors(texts: tuple[str, ...]):
    """Embeddings of the claim descriptions, computed once per process (numpy, rows = texts)."""
    from ramble2post.structure.embed import embed

    return embed(list(texts)).numpy()


def similarities(texts: Sequence[str], experiments: Sequence[Any]):
    """(windows x experiments) best cosine of each window with each experiment's descriptions (numpy)."""
    import numpy as np

    from ramble2post.structure.embed import embed

    descs = [descriptions(e) for e in experiments]
    w = embed(list(texts)).numpy()
    sims = w @ _description_vectors(tuple(d for ds in descs for d in ds)).T
    out = np.zeros((len(texts), len(experiments)), dtype=np.float32)
    best_desc = np.zeros((len(texts), len(experiments)), dtype=np.int64)
    j = 0
    for k, ds in enumerate(descs):
        block = sims[:, j : j + len(ds)]
        out[:, k] = block.max(axis=1)
        best_desc[:, k] = block.argmax(axis=1)
        j += len(ds)
    return out, best_desc


def semantic_hits(
    segments: Sequence[Segment],
    experiments: Sequence[Any],
    *,
    window: int,
    thresholds: dict[str, Thresholds] | None = None,
    only: set[str] | None = None,
    skip_segments: set[int] | frozenset[int] = frozenset(),
    numbers_lower: bool = True,
) -> list[SemanticHit]:
    """Experiments found by meaning, each with its best qualifying window. Empty if embeddings are unavailable.

    experiments: all candidates (a window counts only for its closest ones); only: names to report (default all);
    skip_segments: indices of segments whose words a rule already explained (windows touching them are skipped).
    numbers_lower: a number claim in the window lowers the bar to ``Thresholds.low`` (off: ``high`` always).
    """
    wins = [(i, t) for i, t in window_texts(segments, window) if not skip_segments.intersection(range(i, i + window))]
    if not wins or not experiments:
        return []
    try:
        sims, best_desc = similarities([t for _, t in wins], experiments)
    except Exception as e:  # noqa: BLE001 - detection must not fail because the embedding model is missing
        log.warning("semantic detection skipped: %s", e)
        return []
    th = THRESHOLDS if thresholds is None else thresholds
    hits: dict[str, SemanticHit] = {}
    for wi, (start, text) in enumerate(wins):
        nums = has_number_claim(text)
        top = float(sims[wi].max())
        for k, exp in enumerate(experiments):
            s = float(sims[wi, k])
            if only is not None and exp.name not in only:
                continue
            t = th.get(exp.name, DEFAULT_THRESHOLDS)
            if s + MARGIN < top or not (s >= t.high or (numbers_lower and nums and s >= t.low)):
                continue
            if exp.name not in hits or s > hits[exp.name].similarity:
                hits[exp.name] = SemanticHit(
                    experiment=exp.name,
                    similarity=round(s, 4),
                    window_start=start,
                    text=text,
                    numbers=nums,
                    description=descriptions(exp)[int(best_desc[wi, k])],
                )
    return sorted(hits.values(), key=lambda h: -h.similarity)
