"""Which ffmpeg decodes audio: the pinned imageio-ffmpeg build first, named in the transcript's provenance."""

from __future__ import annotations

import os
import sys

import pytest

from ramble2post.errors import DependencyError
from ramble2post.transcribe import audio
from ramble2post.transcribe.stage import TranscribeOptions, cache_key


@pytest.fixture
def fake_path_ffmpeg(tmp_path, monkeypatch):
    """A PATH whose only ffmpeg is a stub script that prints a version line."""
    exe = tmp_path / "ffmpeg"
    exe.write_text("#!/bin/sh\necho 'ffmpeg version 0.0-fake Copyright'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("RAMBLE2POST_FFMPEG", raising=False)
    return str(exe)


def test_pinned_imageio_build_wins_over_path(fake_path_ffmpeg):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    assert audio.find_ffmpeg() == imageio_ffmpeg.get_ffmpeg_exe() != fake_path_ffmpeg
    assert audio.describe_decoder().startswith("imageio-ffmpeg: ffmpeg version ")


def test_env_var_overrides_and_path_is_the_fallback(fake_path_ffmpeg, monkeypatch):
    monkeypatch.setenv("RAMBLE2POST_FFMPEG", fake_path_ffmpeg)
    assert audio.find_ffmpeg() == fake_path_ffmpeg
    assert audio.describe_decoder() == "RAMBLE2POST_FFMPEG: ffmpeg version 0.0-fake Copyright"
    monkeypatch.delenv("RAMBLE2POST_FFMPEG")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # not installed: import raises ImportError
    assert audio.find_ffmpeg() == fake_path_ffmpeg
    assert audio.describe_decoder() == "PATH: ffmpeg version 0.0-fake Copyright"


def test_no_ffmpeg_anywhere_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RAMBLE2POST_FFMPEG", raising=False)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyError, match="ffmpeg not found"):
        audio.find_ffmpeg()


def test_the_decoder_is_part_of_the_transcript_cache_key():
    key = {"audio_sha256": "a", "model_sha256": "m", "options": TranscribeOptions(), "device": "cpu"}
    assert cache_key(**key, decoder="imageio-ffmpeg: ffmpeg version 9.0.2") != cache_key(
        **key, decoder="PATH: ffmpeg version 5.1.9"
    )


def test_transcripts_written_before_the_field_still_load():
    from ramble2post.records import Transcript

    old = {
        "audio_path": "a.m4a",
        "audio_sha256": "",
        "duration": 1.0,
        "language": "en",
        "text": "Hi.",
        "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": "Hi."}],
        "model": {"name": "tiny.en", "source": "path", "path": "m.pt", "sha256": "0" * 64},
        "device": "cpu",
        "options": {},
        "timing": {},
    }
    assert Transcript.from_dict(old).decoder == ""
