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
    assert not any("note: the speech was heard as" in x for x in lines)  # English: no language note


def test_a_recording_with_a_few_words_is_an_error_not_a_draft(tmp_path, monkeypatch):
    """Seen through the CLI on an espeak-ng "Hello.": a draft branch titled "Hello" with five author notes."""
    import dataclasses

    import ramble2post.transcribe.stage as tr
    from ramble2post.errors import InputError

    audio = tmp_path / "hello.m4a"
    audio.write_bytes(b"not really audio")
    hello = dataclasses.replace(make_transcript(), text="Hello.", segments=make_transcript().segments[:1], duration=1.0)
    monkeypatch.setattr(tr, "transcribe_file", lambda *, audio_path, options: hello)
    structured: list[object] = []
    fake_structure = types.ModuleType("ramble2post.structure.stage")
    fake_structure.structure_transcript = lambda *, transcript, llm, progress=None: structured.append(1) or make_post()
    monkeypatch.setitem(sys.modules, "ramble2post.structure.stage", fake_structure)
    root = make_repo(tmp_path / "blog")
    branches = git(root, "branch", "--list")

    with pytest.raises(InputError, match=r"only 1 word of speech in hello.m4a .*too little to draft"):
        ramble2post.run(audio=audio, blog_repo=root, settings=Settings(device="cpu", experiments="none"), llm="none")
    assert not structured and git(root, "branch", "--list") == branches  # nothing structured, no branch


def test_run_says_when_the_speech_is_not_english(tmp_path, monkeypatch):
    """German speech gets a draft, and one line saying the stages after transcription are built for
    English (seen on an espeak-ng German clip: the draft was titled "Ist" with no word of warning)."""
    import dataclasses

    import ramble2post.transcribe.stage as tr

    audio = tmp_path / "ramble.m4a"
    audio.write_bytes(b"not really audio")
    german = dataclasses.replace(make_transcript(), language="de")
    monkeypatch.setattr(tr, "transcribe_file", lambda *, audio_path, options: german)
    fake_structure = types.ModuleType("ramble2post.structure.stage")
    fake_structure.structure_transcript = lambda *, transcript, llm, progress=None: make_post()
    monkeypatch.setitem(sys.modules, "ramble2post.structure.stage", fake_structure)
    lines: list[str] = []
    ramble2post.run(
        audio=audio,
        blog_repo=make_repo(tmp_path / "blog"),
        settings=Settings(device="cpu", experiments="none"),
        llm="none",
        progress=lines.append,
    )
    notes = [x for x in lines if "note: the speech was heard as" in x]
    assert len(notes) == 1 and "German (de)" in notes[0] and "--language en" in notes[0]


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


def test_experiments_measure_with_the_small_model_unless_the_user_named_one():
    """The default 1.5B structure model made the speculative-decoding experiment take 413 s for a 3-minute
    ramble (stop 31); experiments use their own 135M default unless the user names a model."""
    from ramble2post.api import _experiment_llm
    from ramble2post.config import DEFAULT_LLM, EXPERIMENT_LLM

    assert _experiment_llm(DEFAULT_LLM) == EXPERIMENT_LLM != DEFAULT_LLM
    assert _experiment_llm("gemma3-270m") == "gemma3-270m"
    assert _experiment_llm("openai:http://127.0.0.1:8080/v1/qwen") == "openai:http://127.0.0.1:8080/v1/qwen"
