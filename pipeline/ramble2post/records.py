"""Typed records passed between stages: audio -> Transcript -> Post -> ... -> Draft.

Records are frozen dataclasses with ``to_dict``/``from_dict`` so that each stage's
output can be cached as JSON and read back by the next stage (or by a user with
``ramble2post structure transcript.json``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ramble2post.errors import InputError

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
    # the ffmpeg that decoded the audio, "kind: first line of ffmpeg -version" (kind: imageio-ffmpeg |
    # RAMBLE2POST_FFMPEG | PATH); builds decode differently, so it is part of the result. "" = not recorded
    decoder: str = ""
    # spans decoded again by the loop/dropped-passage guard: reason, start, end (s), before, after, applied
    repairs: tuple[dict[str, Any], ...] = ()
    # glossary fixes after decoding: original word(s), corrected term, start/end (s) of the segment
    corrections: tuple[dict[str, Any], ...] = ()
    schema_version: int = TRANSCRIPT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transcript:
        d = dict(d)
        d["segments"] = tuple(Segment(**s) for s in d["segments"])
        d["model"] = ModelInfo(**d["model"])
        d["repairs"] = tuple(d.get("repairs") or ())
        d["corrections"] = tuple(d.get("corrections") or ())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def load_transcript(path: Path) -> Transcript:
    """Read transcript JSON written by ``ramble2post transcribe``; InputError (one line) on bad input."""
    hint = "make one with: ramble2post transcribe AUDIO -o transcript.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"transcript not found: {path}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not transcript JSON: {e}", hint=hint) from e
    if not isinstance(data, dict) or "segments" not in data:
        raise InputError(f"{path} is not a transcript (no 'segments')", hint=hint)
    try:
        return Transcript.from_dict(data)
    except (KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path} lacks transcript fields: {e}", hint=hint) from e
