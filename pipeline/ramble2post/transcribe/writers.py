"""Transcript writers, one per output format, in a registry keyed by format name."""

from __future__ import annotations

import json
from collections.abc import Callable

from ramble2post.records import Transcript


def format_timestamp(seconds: float, *, decimal: str = ".", always_hours: bool = False) -> str:
    """``seconds`` as [hh:]mm:ss.mmm (SRT uses ',' as the decimal marker)."""
    ms = round(seconds * 1000.0)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def to_json(t: Transcript) -> str:
    return json.dumps(t.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_txt(t: Transcript) -> str:
    return "".join(f"{s.text}\n" for s in t.segments)


def to_srt(t: Transcript) -> str:
    blocks = [
        f"{i}\n{format_timestamp(s.start, decimal=',', always_hours=True)} --> "
        f"{format_timestamp(s.end, decimal=',', always_hours=True)}\n{s.text}\n"
        for i, s in enumerate(t.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    cues = "".join(f"{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text}\n\n" for s in t.segments)
    return "WEBVTT\n\n" + cues


WRITERS: dict[str, Callable[[Transcript], str]] = {"json": to_json, "txt": to_txt, "srt": to_srt, "vtt": to_vtt}
