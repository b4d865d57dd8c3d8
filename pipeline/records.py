"""Typed records passed between stages: audio -> Transcript -> Post -> ... -> Draft.

Records are frozen dataclasses with ``to_dict``/``from_dict`` so that each stage's
output can be cached as JSON and read back by the next stage (or by a user with
``ramble2post structure transcript.json``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

TRANSCRIPT_SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Segment:
    """One Whisper segment. Times are seconds from the start of the audio."""

    id: int
    start: float  # s
    end: float  # s
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Which weights produced an output, and where they came from."""

    name: str  # e.g. "base", "tiny.en", or a file stem
    source: str  # "path" | "cache" | "package:<dist>" | "download"
    path: str
    sha256: str  # of the checkpoint file actually loaded
    source_sha256: str | None = None  # of the original (e.g. CTranslate2 model.bin)


@dataclasses.dataclass(frozen=True)
class Transcript:
    """Output of the transcription stage (JSON written by ``ramble2post transcribe``)."""

    audio_path: str
    audio_sha256: str
    duration: float  # s of audio
    language: str
    text: str
    segments: tuple[Segment, ...]
    model: ModelInfo
    device: str  # "cpu" | "cuda"
    options: dict[str, Any]  # decoding options that were used (part of the cache key)
    timing: dict[str, float]  # wall seconds per step, plus real-time factor
    schema_version: int = TRANSCRIPT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transcript:
        d = dict(d)
        d["segments"] = tuple(Segment(**s) for s in d["segments"])
        d["model"] = ModelInfo(**d["model"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
