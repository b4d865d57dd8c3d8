"""Fault matrix, audio side: every case through the real CLI gives one clear line and exit != 0."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ramble2post.cli.main import cli
from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import record

SR = 16000  # Hz


def _wav(path: Path, samples: np.ndarray, rate: int = SR) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def _cli(args, home: Path, **env):
    full_env = {**os.environ, "RAMBLE2POST_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "ramble2post", *args], capture_output=True, text=True, env=full_env, timeout=600
    )


def _assert_one_clear_error(result, *, contains: str):
    assert result.returncode not in (0, None)
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert contains in errors[0], result.stderr
    record(exit=result.returncode, message=errors[0])


def test_zero_length_audio(tmp_path):
    path = _wav(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    _assert_one_clear_error(
        _cli(["transcribe", str(path), "-m", "tiny.en"], tmp_path / "h"), contains="contains no audio"
    )


def test_ten_minutes_of_silence_is_refused_before_loading_a_model(tmp_path):
    path = _wav(tmp_path / "silence.wav", np.zeros(SR * 600, dtype=np.float32))
    result = _cli(["transcribe", str(path), "-m", "tiny.en"], tmp_path / "h")
    _assert_one_clear_error(result, contains="is silent")
    assert "600 s" in result.stderr


@pytest.mark.slow
def test_white_noise_gives_no_speech_or_a_transcript_never_a_crash(tmp_path):
    rng = np.random.default_rng(0)
    path = _wav(tmp_path / "noise.wav", 0.3 * rng.standard_normal(SR * 20).astype(np.float32))
    result = _cli(["transcribe", str(path), "-m", "tiny.en", "--format", "txt"], tmp_path / "h")
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        _assert_one_clear_error(result, contains="no speech recognised")
    else:
        record(exit=0, message=f"(a transcript: {result.stdout.strip()[:60]!r})")


def test_unsupported_codec(tmp_path):
    # a WAV header announcing a codec id ffmpeg has no decoder for
    path = tmp_path / "weird.wav"
    data = os.urandom(32000)
    fmt = (
        b"fmt "
        + (16).to_bytes(4, "little")
        + (0x7777).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + SR.to_bytes(4, "little")
        + (SR * 2).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
    )
    riff = b"WAVE" + fmt + b"data" + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(riff).to_bytes(4, "little") + riff)
    _assert_one_clear_error(
        _cli(["transcribe", str(path), "-m", "tiny.en"], tmp_path / "h"), contains="not audio ffmpeg can decode"
    )


def test_path_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "my ramblings – été"
    folder.mkdir()
    path = folder / "réunion du matin ✓.m4a"
    path.write_bytes(SAMPLE_1MIN.read_bytes()[:40_000])  # truncated: fails fast, but the path must survive
    result = _cli(["transcribe", str(path), "-m", "tiny.en"], tmp_path / "h")
    _assert_one_clear_error(result, contains="réunion du matin ✓.m4a looks truncated")


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.m4a"
    path.write_bytes(SAMPLE_1MIN.read_bytes())
    path.chmod(0)
    if os.geteuid() == 0:
        # root reads anything: make the permission check see what a normal user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(path) else real_access(p, mode))
    monkeypatch.setenv("RAMBLE2POST_HOME", str(tmp_path / "h"))
    result = CliRunner().invoke(cli, ["transcribe", str(path), "-m", "tiny.en"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot read") and "permission denied" in result.output
    record(exit=result.exit_code, message=result.output.splitlines()[0])
