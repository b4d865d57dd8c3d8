"""The library entry point: ``ramble2post.run`` passes typed records from stage to stage."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
from test_blog_common import git, make_post, make_repo, make_transcript

import ramble2post
from ramble2post.config import Settings
from ramble2post.records import Hardware
from ramble2post.structure.schema import Post


def test_import_ramble2post_stays_light():
    """``run`` is re-exported lazily: importing the package loads no stage, model or git library."""
    code = (
        "import sys, ramble2post; "
        "heavy = [m for m in ('ramble2post.api', 'torch', 'git', 'llama_cpp', 'whisper') if m in sys.modules]; "
        "print(heavy); assert ramble2post.run.__module__ == 'ramble2post.api'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_returns_the_draft_and_the_records_it_came_from(tmp_path, monkeypatch):
    import ramble2post.transcribe.stage as tr

    audio = tmp_path / "ramble.m4a"
    audio.write_bytes(b"not really audio")
    monkeypatch.setattr(tr, "transcribe_file", lambda *, audio_path, options: make_transcript())
    fake_structure = types.ModuleType("ramble2post.structure.stage")
    fake_structure.structure_transcript = lambda *, transcript, llm, progress=None: make_post()
    monkeypatch.setitem(sys.modules, "ramble2post.structure.stage", fake_structure)
    root = make_repo(tmp_path / "blog")
    lines: list[str] = []

    result = ramble2post.run(
        audio=audio,
        blog_repo=root,
        settings=Settings(device="cpu", experiments="none"),
        llm="none",
        progress=lines.append,
    )

    assert isinstance(result, ramble2post.RunResult)
    assert isinstance(result.post, Post) and result.post.title.text == "Batching makes decoding nearly free"
    assert result.transcript.audio_sha256 == "a" * 64 and result.outcomes == ()
    assert isinstance(result.hardware, Hardware) and result.hardware.device == "cpu"
    assert set(result.timings_s) == {"transcribe", "structure", "experiments", "draft"}
    assert git(root, "cat-file", "-t", f"{result.draft.branch}:{result.draft.path}").strip() == "blob"
    d = result.to_dict()  # what `ramble2post AUDIO --json` prints
    assert d["branch"] == result.draft.branch and d["hardware"]["device"] == "cpu" and d["timings_s"]
    assert lines[0].startswith("[1/4] transcribe") and any(x.startswith("[4/4] draft") for x in lines)


def test_run_stops_between_stages_when_asked(tmp_path, monkeypatch):
    import ramble2post.transcribe.stage as tr

    audio = tmp_path / "ramble.m4a"
    audio.write_bytes(b"not really audio")
    monkeypatch.setattr(tr, "transcribe_file", lambda *, audio_path, options: make_transcript())
    root = make_repo(tmp_path / "blog")
    calls = iter([False, True])  # checked before each stage: the second check stops the run
    with pytest.raises(KeyboardInterrupt):
        ramble2post.run(
            audio=audio,
            blog_repo=root,
            settings=Settings(device="cpu", experiments="none"),
            llm="none",
            should_stop=lambda: next(calls),
        )
