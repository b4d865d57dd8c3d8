"""Bad input through the real CLI: one clear line, exit code != 0, no traceback, no cache entry."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import record


def _run(args, home, **env):
    full_env = {**os.environ, "RAMBLE2POST_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "ramble2post", *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((samples * 32767).astype(np.int16).tobytes())
    return path


def _cases(tmp: Path):
    text = tmp / "notes.m4a"
    text.write_text("this is a text file, not audio\n" * 50)
    empty = tmp / "empty.m4a"
    empty.write_bytes(b"")
    truncated = tmp / "truncated.m4a"
    truncated.write_bytes(SAMPLE_1MIN.read_bytes()[:60_000])
    silence = _write_wav(tmp / "silence.wav", np.zeros(16000 * 5, dtype=np.float32))
    video = tmp / "screen.mp4"  # a screen recording saved without its sound
    from ramble2post.transcribe.audio import find_ffmpeg

    subprocess.run(
        [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=32x32", str(video)], check=True
    )
    return {
        "missing": (tmp / "nope.m4a", "audio file not found"),
        "empty": (empty, "is empty"),
        "text file": (text, "not audio ffmpeg can decode"),
        "truncated": (truncated, "looks truncated"),
        "silence": (silence, "is silent"),
        "video without sound": (video, "has no audio track"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text file", "truncated", "silence", "video without sound"])
def test_bad_audio(case, tmp_path):
    path, message = _cases(tmp_path)[case]
    home = tmp_path / "home"
    result = _run(["transcribe", str(path), "--model", "tiny.en"], home)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(error_lines) == 1, result.stderr
    assert message in error_lines[0], result.stderr
    assert not list(home.glob("cache/transcribe/*.json"))  # no cache entry for a failed run
    assert result.stdout == ""
    record(exit=result.returncode, message=error_lines[0])


def test_missing_ffmpeg(tmp_path):
    result = _run(
        ["transcribe", str(SAMPLE_1MIN), "--model", "tiny.en"],
        tmp_path / "home",
        RAMBLE2POST_FFMPEG=str(tmp_path / "no-ffmpeg"),
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ffmpeg not found")
    record(exit=result.returncode, message=result.stderr.splitlines()[0])


def test_debug_flag_shows_traceback(tmp_path):
    result = _run(["--debug", "transcribe", str(tmp_path / "nope.m4a")], tmp_path / "home")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_a_bad_recording_is_the_error_even_when_the_model_fails_too(tmp_path):
    """The recording is decoded while the model loads (``stage._audio_and_model``): when both fail, the
    user hears about the recording, the input they can fix, in one line."""
    path, message = _cases(tmp_path)["text file"]
    model = tmp_path / "broken.pt"
    model.write_bytes(b"not a checkpoint" * 1000)
    result = _run(["transcribe", str(path), "--model", str(model)], tmp_path / "home")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    error_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr


def test_a_broken_model_is_one_clear_line_when_the_recording_is_fine(tmp_path):
    model = tmp_path / "broken.pt"
    model.write_bytes(b"not a checkpoint" * 1000)
    result = _run(["transcribe", str(SAMPLE_1MIN), "--model", str(model)], tmp_path / "home")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    error_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(error_lines) == 1 and "broken.pt" in error_lines[0], result.stderr


def test_a_typo_in_llm_fails_before_the_transcription(tmp_path):
    """`--llm nosuchmodel` used to fail at the structure stage, after transcribing (stop 31)."""
    result = _run([str(SAMPLE_1MIN), "--llm", "nosuchmodel", "--blog-repo", str(tmp_path / "nope")], tmp_path / "h")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "[1/4]" not in result.stderr, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "unknown LLM 'nosuchmodel'" in errors[0], result.stderr


def test_every_model_the_help_names_passes_the_check():
    from ramble2post.api import _check_llm
    from ramble2post.config import DEFAULT_LLM, EXPERIMENT_LLM
    from ramble2post.errors import ModelError

    for ok in (
        DEFAULT_LLM,
        EXPERIMENT_LLM,
        "gemma3-270m",
        "none",
        "qwen2.5-coder-0.5b",
        "openai:http://127.0.0.1:8080/v1/m",
    ):
        _check_llm(ok)
    with pytest.raises(ModelError, match="not found"):
        _check_llm("/no/such/model.gguf")
