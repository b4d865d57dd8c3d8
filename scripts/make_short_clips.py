#!/usr/bin/env python
"""Synthesise the short-clip set (tests/data/short_clips/clips.json) into a cache folder.

Each clip: espeak-ng reads the reference text with the clip's voice and words per minute
(with ``pause_s`` > 0, the text is split at the sentence nearest its middle and that many
seconds of silence go between the halves), then white, pink or brown noise (numpy, seeded
by the clip's ``seed``) is mixed in at ``snr_db`` (speech RMS over noise RMS, the speech's
RMS taken where it is not silent), and the tool's own ffmpeg encodes it as AAC in .m4a.
The file name carries a hash of the clip's entry, so an edited entry is synthesised again.

    .venv/bin/python scripts/make_short_clips.py                 # -> ~/.cache/ramble2post/short_clips
    .venv/bin/python scripts/make_short_clips.py --out /tmp/clips --clips c01-us-kv,c05-m3-int8
    .venv/bin/python scripts/make_short_clips.py --set tests/data/command_clips/clips.json   # the 8-min clips
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "pipeline"))
CLIPS_JSON = REPO / "tests/data/short_clips/clips.json"
DEFAULT_OUT = Path.home() / ".cache/ramble2post/short_clips"


def load_clips(path: Path = CLIPS_JSON) -> list[dict[str, Any]]:
    """The clip entries of ``path`` (id, reference, voice, wpm, noise, snr_db, pause_s, seed)."""
    return json.loads(path.read_text(encoding="utf-8"))["clips"]


def clip_path(clip: dict[str, Any], out: Path) -> Path:
    digest = hashlib.sha256(json.dumps(clip, sort_keys=True).encode()).hexdigest()[:8]
    return out / f"{clip['id']}-{digest}.m4a"


def _espeak(text: str, voice: str, wpm: int, folder: Path, name: str) -> tuple[np.ndarray, int]:
    wav = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0, rate


def split_middle(text: str) -> tuple[str, str]:
    """``text`` cut after the sentence end nearest its middle word."""
    words = text.split()
    ends = [i for i, w in enumerate(words[:-1]) if w.endswith((".", "?", "!"))]
    if not ends:
        return text, ""
    cut = min(ends, key=lambda i: abs(i - len(words) / 2)) + 1
    return " ".join(words[:cut]), " ".join(words[cut:])


def noise(kind: str, n: int, seed: int) -> np.ndarray:
    """``n`` samples of unit-RMS white, pink (1/f power) or brown (1/f^2) noise."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        spectrum /= np.sqrt(f) if kind == "pink" else f
        out = np.fft.irfft(spectrum, n)
    out = out - out.mean()
    return (out / (np.sqrt(np.mean(out**2)) or 1.0)).astype(np.float32)


def synthesise(clip: dict[str, Any], out: Path) -> Path:
    """The clip's .m4a in ``out`` (made if missing)."""
    from ramble2post.transcribe.audio import find_ffmpeg

    target = clip_path(clip, out)
    if target.exists():
        return target
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first, second = split_middle(clip["reference"]) if clip.get("pause_s") else (clip["reference"], "")
        speech, rate = _espeak(first, clip["voice"], clip["wpm"], folder, "a")
        if second:
            rest, _ = _espeak(second, clip["voice"], clip["wpm"], folder, "b")
            speech = np.concatenate([speech, np.zeros(int(clip["pause_s"] * rate), np.float32), rest])
        mixed = speech
        if clip.get("noise", "none") != "none":
            voiced = speech[np.abs(speech) > 0.01]
            rms = float(np.sqrt(np.mean(voiced**2))) if len(voiced) else 0.1
            level = rms / 10 ** (float(clip["snr_db"]) / 20)
            mixed = speech + level * noise(clip["noise"], len(speech), int(clip["seed"]))
        mixed = mixed / max(1.0, float(np.max(np.abs(mixed))) / 0.95)
        wav = folder / "mixed.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes((mixed * 32767).astype(np.int16).tobytes())
        tmp_target = folder / target.name
        subprocess.run(
            [find_ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "64k", str(tmp_target)],
            check=True,
        )
        tmp_target.replace(target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache folder for the .m4a files")
    ap.add_argument("--clips", default="", help="comma list of clip ids (default: all)")
    ap.add_argument("--set", type=Path, default=CLIPS_JSON, help="clip list (e.g. tests/data/command_clips/clips.json)")
    args = ap.parse_args()
    wanted = set(filter(None, args.clips.split(",")))
    for clip in load_clips(args.set):
        if wanted and clip["id"] not in wanted:
            continue
        print(synthesise(clip, args.out), flush=True)


if __name__ == "__main__":
    main()
