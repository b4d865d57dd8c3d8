"""Audio input: find ffmpeg, decode any format it reads to 16 kHz mono float32, validate.

Whisper wants 16 kHz mono. We decode with ffmpeg (argument list, never a shell)
so that m4a, mp3, wav, flac, ogg, mp4 ... all work. ffmpeg is taken from
``RAMBLE2POST_FFMPEG`` if set, else from PATH, else from the ``imageio-ffmpeg``
package (a static build shipped on PyPI, so a fresh machine needs no apt).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ramble2post.config import current
from ramble2post.errors import AudioError, DependencyError

SAMPLE_RATE = 16_000  # Hz, what Whisper's mel front end expects
BYTES_PER_SAMPLE = 2  # s16le from ffmpeg
SILENCE_RMS_DBFS = -60.0  # dBFS; quieter than this over the whole file counts as silence
MIN_DURATION = 0.1  # s; shorter than this is "no audio"


@dataclasses.dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is float32 in [-1, 1] at ``SAMPLE_RATE``."""

    path: str
    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def find_ffmpeg() -> str:
    """Path of an ffmpeg executable, or DependencyError naming how to get one."""
    explicit = current().ffmpeg
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise DependencyError(
            f"ffmpeg not found at RAMBLE2POST_FFMPEG={explicit}",
            hint="unset RAMBLE2POST_FFMPEG or point it at an ffmpeg binary",
        )
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise DependencyError(
            "ffmpeg not found",
            hint="install it (apt-get install ffmpeg) or pip install imageio-ffmpeg",
        ) from e


def check_readable(path: str | os.PathLike) -> Path:
    """Fail early, with one clear line, on paths that cannot be audio."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"{p} is a folder, not an audio file")
    if not os.access(p, os.R_OK):
        raise AudioError(f"cannot read {p}: permission denied")
    if p.stat().st_size == 0:
        raise AudioError(f"{p} is empty (0 bytes)")
    return p


def _ffmpeg_reason(stderr: str) -> str:
    """The most telling line of ffmpeg's error output."""
    # drop ffmpeg's "[in#0 @ 0x55...] " context prefixes: noise for the user
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", ln.strip()) for ln in stderr.splitlines() if ln.strip()]
    for key in (
        "moov atom not found",
        "Invalid data found",
        "does not contain any stream",
        "Decoder",
        "not supported",
        "Invalid argument",
        "Permission denied",
    ):
        for ln in lines:
            if key.lower() in ln.lower():
                return ln
    return lines[-1] if lines else "unknown ffmpeg error"


def load_audio(path: str | os.PathLike, *, check_silence: bool = True) -> Audio:
    """Decode ``path`` to 16 kHz mono float32.

    path: any file ffmpeg can read.
    check_silence: raise AudioError when the whole file is below ``SILENCE_RMS_DBFS``.
    """
    p = check_readable(path)
    ffmpeg = find_ffmpeg()
    cmd = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "0",
        "-i",
        str(p),
        "-vn",
        "-f",
        "s16le",
        "-ac",
        "1",
        "-acodec",
        "pcm_s16le",
        "-ar",
        str(SAMPLE_RATE),
        "-",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as e:
        raise DependencyError(f"could not run ffmpeg ({ffmpeg}): {e}") from e
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        reason = _ffmpeg_reason(stderr)
        if "moov atom not found" in reason and _has_mp4_header(p):
            raise AudioError(
                f"{p.name} looks truncated (ffmpeg: {reason})",
                hint="the recording may not have finished saving; re-export it",
            )
        raise AudioError(
            f"{p.name} is not audio ffmpeg can decode: {_ffmpeg_reason(stderr)}",
            hint="try converting it: ffmpeg -i INPUT out.wav",
        )
    samples = np.frombuffer(proc.stdout, np.int16).astype(np.float32) / 32768.0
    if len(samples) < MIN_DURATION * SAMPLE_RATE:
        raise AudioError(f"{p.name} contains no audio (decoded {len(samples) / SAMPLE_RATE:.2f} s)")
    if stderr.strip() and ("error" in stderr.lower() or "invalid" in stderr.lower()):
        # ffmpeg decoded something but complained: a truncated or damaged file
        raise AudioError(
            f"{p.name} looks damaged or truncated: {_ffmpeg_reason(stderr)}",
            hint="re-export the recording, or cut the damaged end with ffmpeg",
        )
    audio = Audio(path=str(p), samples=samples)
    if check_silence and rms_dbfs(samples) < SILENCE_RMS_DBFS:
        raise AudioError(
            f"{p.name} is silent ({audio.duration:.0f} s below {SILENCE_RMS_DBFS:.0f} dBFS)",
            hint="check the microphone input level",
        )
    return audio


_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")


def probe_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the container header, without decoding the audio.

    Cheap even for a 3-hour file: ffmpeg reads the header and stops.
    """
    p = check_readable(path)
    ffmpeg = find_ffmpeg()
    try:
        proc = subprocess.run(
            [ffmpeg, "-nostdin", "-hide_banner", "-i", str(p)], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DependencyError(f"could not run ffmpeg ({ffmpeg}): {e}") from e
    stderr = proc.stderr.decode("utf-8", "replace")
    m = _DURATION_RE.search(stderr)
    if not m or "Audio:" not in stderr:
        raise AudioError(f"{p.name} is not audio ffmpeg can decode: {_ffmpeg_reason(stderr)}")
    hours, minutes, seconds = int(m.group(1)), int(m.group(2)), float(m.group(3))
    return hours * 3600 + minutes * 60 + seconds


def _has_mp4_header(path: Path) -> bool:
    """True when the file starts like an MP4/M4A container (an ``ftyp`` box)."""
    with open(path, "rb") as f:
        return f.read(12)[4:8] == b"ftyp"


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
