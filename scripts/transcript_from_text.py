#!/usr/bin/env python
"""Convert a timestamped or plain text transcript into ramble2post transcript JSON.

- Lines like ``[00:00:18.440 --> 00:00:23.100]   text`` (whisper.cpp / the GPU talk
  seed) become one segment each (empty or dash-only lines are skipped).
- Plain text is split into ~10 s pseudo-segments (``WORDS_PER_SEGMENT`` words at an
  assumed speaking rate of ``WPM`` words per minute), for tests before real audio
  transcripts exist.

Usage: python scripts/transcript_from_text.py INPUT.txt -o transcript.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ramble2post.records import ModelInfo, Segment, Transcript  # noqa: E402

WPM = 150  # words per minute, a typical speaking rate
WORDS_PER_SEGMENT = 25  # words; ~10 s at WPM
_LINE = re.compile(r"^\[(\d+):(\d+):(\d+(?:\.\d+)?)\s*-->\s*(\d+):(\d+):(\d+(?:\.\d+)?)\]\s*(.*)$")


def _secs(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def transcript_from_text(text: str, *, source: str = "text") -> Transcript:
    """Build a Transcript from timestamped lines or plain text (see module docstring)."""
    segments: list[Segment] = []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    timed = [m for m in (_LINE.match(ln.strip()) for ln in lines) if m]
    if timed and len(timed) >= len(lines) // 2:
        for m in timed:
            body = m.group(7).strip()
            body = re.sub(r"^-\s*", "", body)
            if not body.strip("- "):
                continue
            segments.append(
                Segment(len(segments), round(_secs(*m.group(1, 2, 3)), 3), round(_secs(*m.group(4, 5, 6)), 3), body)
            )
    else:
        words = text.split()
        per_word = 60.0 / WPM
        for i in range(0, len(words), WORDS_PER_SEGMENT):
            chunk = words[i : i + WORDS_PER_SEGMENT]
            segments.append(
                Segment(len(segments), round(i * per_word, 3), round((i + len(chunk)) * per_word, 3), " ".join(chunk))
            )
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Transcript(
        audio_path=source,
        audio_sha256=sha,
        duration=segments[-1].end if segments else 0.0,
        language="en",
        text=" ".join(s.text for s in segments),
        segments=tuple(segments),
        model=ModelInfo(name="text", source="text", path=source, sha256=sha),
        device="none",
        options={"from_text": True},
        timing={},
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="text file (timestamped lines or plain text)")
    ap.add_argument("-o", "--output", help="transcript JSON to write (default: stdout)")
    a = ap.parse_args(argv)
    p = Path(a.input)
    t = transcript_from_text(p.read_text(encoding="utf-8"), source=str(p))
    blob = json.dumps(t.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if a.output:
        Path(a.output).write_text(blob, encoding="utf-8")
        print(f"{len(t.segments)} segments, {t.duration:.0f} s -> {a.output}", file=sys.stderr)
    else:
        sys.stdout.write(blob)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
