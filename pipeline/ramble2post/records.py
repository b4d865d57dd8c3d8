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
class Hardware:
    """The machine that made a draft, as the draft names it (front matter, commit message, provenance)."""

    label: str  # human description (``experiments.hardware.describe``): CPU, cores, memory, GPU
    machine: str | None = None  # short stable label (``machine_label``), one column per machine in reruns
    device: str = "cpu"  # "cpu" | "cuda"

    def to_dict(self) -> dict[str, str]:
        """The fields that are set, in order (the draft's provenance block and ``--json``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Repair:
    """A span the loop/dropped-passage guard decoded again (``transcribe/guard.py``)."""

    reason: str  # what the guard saw, e.g. a repetition loop or a passage with too few words
    start: float  # s
    end: float  # s
    before: str  # the text Whisper gave the span
    after: str  # the text decoding it again gave
    applied: bool  # True: ``after`` replaced ``before`` in the segments


@dataclasses.dataclass(frozen=True)
class Correction:
    """A glossary fix after decoding (``transcribe/glossary.py``): a domain term spelled right."""

    original: str  # the word(s) as Whisper heard them
    corrected: str  # the glossary's term
    start: float  # s, of the segment
    end: float  # s, of the segment
    segment: int  # index of the segment in ``Transcript.segments``


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
    repairs: tuple[Repair, ...] = ()  # spans decoded again by the loop/dropped-passage guard
    corrections: tuple[Correction, ...] = ()  # glossary fixes after decoding
    schema_version: int = TRANSCRIPT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The transcript JSON (``ramble2post transcribe -o``, the stage cache, the blog repo's copy)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transcript:
        """Read transcript JSON back (unknown keys ignored); TypeError/KeyError when fields are missing."""
        d = dict(d)
        d["segments"] = tuple(Segment(**s) for s in d["segments"])
        d["model"] = ModelInfo(**d["model"])
        d["repairs"] = tuple(Repair(**r) for r in d.get("repairs") or ())
        d["corrections"] = tuple(Correction(**c) for c in d.get("corrections") or ())
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
