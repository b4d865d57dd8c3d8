"""Audio input: find ffmpeg, decode any format it reads to 16 kHz mono (kept on disk, read as float32), validate.

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
from typing import Any

import numpy as np

from ramble2post.config import current
from ramble2post.errors import AudioError, DependencyError

SAMPLE_RATE = 16_000  # Hz, what Whisper's mel front end expects
BYTES_PER_SAMPLE = 2  # s16le from ffmpeg
SILENCE_RMS_DBFS = -60.0  # dBFS; quieter than this over the whole file counts as silence
MIN_DURATION = 0.1  # s; shorter than this is "no audio"


class Pcm:
    """16 kHz mono audio kept in a temporary file as ffmpeg wrote it (s16le), read a slice at a time.

    Slicing gives float32 in [-1, 1] (the same values as converting the whole file at once), so a
    window of audio costs memory while it is decoded and nothing after: the process holds no copy of
    the recording (issue 26: a 67-min file held 257 MB of float32 for the whole run, 3 h 0.69 GB). The
    file is unlinked from the start (``tempfile.TemporaryFile``) and goes when this object does.
    ``np.asarray`` gives the whole recording (the sequential engine, short files).
    """

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, file: Any, count: int) -> None:
        self._file = file  # keeps the file open; reads use its descriptor at explicit offsets (thread-safe)
        self._count = count  # samples

    @classmethod
    def from_array(cls, samples: np.ndarray) -> Pcm:
        """A ``Pcm`` holding float32 samples in [-1, 1] (tests, generated audio), rounded to int16."""
        import tempfile

        f = tempfile.TemporaryFile()
        f.write(np.round(np.clip(np.asarray(samples, np.float32), -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes())
        f.flush()
        return cls(f, len(samples))

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        return self._count

    @property
    def shape(self) -> tuple[int]:
        return (self._count,)

    def __getitem__(self, key: slice | int) -> Any:
        if isinstance(key, int):
            if not -self._count <= key < self._count:
                raise IndexError(f"sample {key} of {self._count}")
            i = key % self._count
            return self[i : i + 1][0]
        start, stop, step = key.indices(self._count)
        if stop <= start:
            return np.zeros(0, np.float32)
        raw = os.pread(self._file.fileno(), (stop - start) * BYTES_PER_SAMPLE, start * BYTES_PER_SAMPLE)
        out = np.multiply(np.frombuffer(raw, "<i2"), 1.0 / 32768.0, dtype=np.float32)
        return out[::step] if step != 1 else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


Signal = np.ndarray | Pcm  # what the stages slice: an array (tests, short generated audio) or a Pcm


@dataclasses.dataclass(frozen=True)
class Audio:
    """Decoded audio: ``pcm`` (sliced as float32 in [-1, 1]) at ``SAMPLE_RATE``."""

    path: str
    pcm: Pcm
    sample_rate: int = SAMPLE_RATE

    @property
    def samples(self) -> np.ndarray:
        """The whole recording as one float32 array (4 bytes a sample; the pipeline slices ``pcm``)."""
        return self.pcm[:]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / self.sample_rate


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
    pcm, returncode, stderr = _decode_to_file(cmd)
    if returncode != 0:
        reason = _ffmpeg_reason(stderr)
        if "moov atom not found" in reason and _has_mp4_header(p):
            raise AudioError(
                f"{p.name} looks truncated (ffmpeg: {reason})",
                hint="the recording may not have finished saving; re-export it",
            )
        if "does not contain any stream" in reason:  # "-vn" left nothing: a video or image with no sound
            raise AudioError(
                f"{p.name} has no audio track", hint="export the recording with its sound, or pick the audio file"
            )
        raise AudioError(
            f"{p.name} is not audio ffmpeg can decode: {reason}",
            hint="try converting it: ffmpeg -i INPUT out.wav",
        )
    if len(pcm) < MIN_DURATION * SAMPLE_RATE:
        raise AudioError(f"{p.name} contains no audio (decoded {len(pcm) / SAMPLE_RATE:.2f} s)")
    if stderr.strip() and ("error" in stderr.lower() or "invalid" in stderr.lower()):
        # ffmpeg decoded something but complained: a truncated or damaged file
        raise AudioError(
            f"{p.name} looks damaged or truncated: {_ffmpeg_reason(stderr)}",
            hint="re-export the recording, or cut the damaged end with ffmpeg",
        )
    audio = Audio(path=str(p), pcm=pcm)
    if check_silence and rms_dbfs(pcm) < SILENCE_RMS_DBFS:
        raise AudioError(
            f"{p.name} is silent ({audio.duration:.{0 if audio.duration >= 10 else 1}f} s below "
            f"{SILENCE_RMS_DBFS:.0f} dBFS)",
            hint="check the microphone input level",
        )
    return audio


READ_BYTES = 1 << 20  # bytes of s16le read from ffmpeg at a time (~33 s of audio)


def _decode_to_file(cmd: list[str]) -> tuple[Pcm, int, str]:
    """Run ffmpeg and copy its s16le output to a temporary file as it arrives: (pcm, exit code, stderr).

    Python never holds the recording: before, its output was converted to float32 into one buffer (a
    67-min file: 257 MB for the whole run; before that, ~0.9 GB at once, issue 26). The copy goes through
    Python, not ffmpeg, so that a full disk is the one clear "no space left" error, not an ffmpeg failure.
    """
    import errno
    import tempfile

    out = tempfile.TemporaryFile()
    with tempfile.TemporaryFile() as err:  # stderr to a file: a full pipe would block ffmpeg
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            out.close()
            raise DependencyError(f"could not run ffmpeg ({cmd[0]}): {e}") from e
        assert proc.stdout is not None
        with proc:
            try:
                while chunk := proc.stdout.read(READ_BYTES):
                    out.write(chunk)
                out.flush()
            except OSError as e:
                proc.kill()
                out.close()
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    where = f"the decoded audio in {tempfile.gettempdir()}"
                    raise OSError(e.errno, e.strerror, where) from e
                raise
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    count = os.fstat(out.fileno()).st_size // BYTES_PER_SAMPLE  # an odd last byte is no sample
    return Pcm(out, count), proc.returncode, stderr


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


def rms_dbfs(samples: Signal) -> float:
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
