"""Audio input: find ffmpeg, decode any format it reads to 16 kHz mono float32, validate.

Whisper wants 16 kHz mono. We decode with ffmpeg (argument list, never a shell)
so that m4a, mp3, wav, flac, ogg, mp4 ... all work. ffmpeg is taken from
``RAMBLE2POST_FFMPEG`` if set, else from the ``imageio-ffmpeg`` package (a static
build pinned in requirements.txt, so a fresh machine needs no apt and every machine
decodes the same samples), else from PATH. The decoder is part of the result: builds
differ in their AAC decoder and resampler, which moves the WER of the 1-min sample by
about a point, so ``describe_decoder`` names it in each transcript's provenance.
"""

from __future__ import annotations

import dataclasses
import functools
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
    return _locate_ffmpeg()[1]


def _locate_ffmpeg() -> tuple[str, str]:
    """(kind, path) of the ffmpeg to use; kind is "RAMBLE2POST_FFMPEG", "imageio-ffmpeg" or "PATH"."""
    explicit = current().ffmpeg
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return "RAMBLE2POST_FFMPEG", explicit
        raise DependencyError(
            f"ffmpeg not found at RAMBLE2POST_FFMPEG={explicit}",
            hint="unset RAMBLE2POST_FFMPEG or point it at an ffmpeg binary",
        )
    try:
        import imageio_ffmpeg

        return "imageio-ffmpeg", imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass  # not installed (or no binary for this platform): a system ffmpeg will do
    found = shutil.which("ffmpeg")
    if found:
        return "PATH", found
    raise DependencyError(
        "ffmpeg not found",
        hint="pip install imageio-ffmpeg (requirements.txt pins it) or apt-get install ffmpeg",
    )


def describe_decoder() -> str:
    """Which ffmpeg decodes audio, for provenance: e.g. ``imageio-ffmpeg: ffmpeg version 9.0.2-static ...``."""
    kind, path = _locate_ffmpeg()
    return f"{kind}: {_ffmpeg_version(path)}"


@functools.cache
def _ffmpeg_version(path: str) -> str:
    """First line of ``ffmpeg -version`` (run once per binary), or why it could not be read."""
    try:
        proc = subprocess.run([path, "-version"], capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DependencyError(f"could not run ffmpeg ({path}): {e}") from e
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else f"{Path(path).name} (version unknown)"


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
    samples, returncode, stderr = _decode_stream(cmd, expected_s=_expected_duration(p))
    if returncode != 0:
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


READ_BYTES = 1 << 20  # bytes of s16le read from ffmpeg at a time (~33 s of audio)


def _expected_duration(path: Path) -> float | None:
    """The header's duration (s), to size the sample buffer once; None when the header has none."""
    try:
        return probe_duration(path)
    except AudioError:
        return None  # decoding will say what is wrong


def _decode_stream(cmd: list[str], *, expected_s: float | None) -> tuple[np.ndarray, int, str]:
    """Run ffmpeg and convert its s16le output to float32 as it arrives: (samples, exit code, stderr).

    The float32 buffer is sized from the header and grown only if the file is longer, so decoding
    holds the samples once (a 67-min file: 257 MB) instead of the pipe's bytes, an int16 copy and two
    float32 copies at once (~0.9 GB, issue 26).
    """
    import tempfile

    capacity = int(((expected_s or 60.0) + 1.0) * SAMPLE_RATE)
    out = np.empty(capacity, np.float32)
    n = 0
    pending = b""  # an odd byte left over between reads
    with tempfile.TemporaryFile() as err:  # stderr to a file: a full pipe would block ffmpeg
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            raise DependencyError(f"could not run ffmpeg ({cmd[0]}): {e}") from e
        assert proc.stdout is not None
        with proc:
            while chunk := proc.stdout.read(READ_BYTES):
                chunk = pending + chunk
                usable = len(chunk) - len(chunk) % BYTES_PER_SAMPLE
                pending = chunk[usable:]
                block = np.frombuffer(chunk[:usable], np.int16)
                if n + len(block) > len(out):  # longer than the header said
                    out = np.resize(out, max(n + len(block), int(len(out) * 1.5)))
                np.multiply(block, 1.0 / 32768.0, out=out[n : n + len(block)], casting="unsafe")
                n += len(block)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    samples = out[:n] if n > 0.9 * len(out) else out[:n].copy()  # a header far too long: no idle buffer kept
    return samples, proc.returncode, stderr


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
    # in blocks of ~1 min: a float64 square of a whole 67-min file is 0.5 GB (issue 26)
    step = 1 << 20
    total = sum(
        float(np.dot(b, b)) for b in (samples[i : i + step].astype(np.float64) for i in range(0, samples.size, step))
    )
    rms = float(np.sqrt(total / samples.size))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
