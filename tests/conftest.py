"""Shared fixtures: every test session gets its own RAMBLE2POST_HOME.

Converted Whisper checkpoints are cached under that home for the whole session,
so the CTranslate2 -> openai-whisper conversion runs once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
SAMPLE_1MIN = REPO_ROOT / "samples" / "explain-format-ramble-1min.m4a"
SAMPLE_1MIN_TXT = REPO_ROOT / "samples" / "explain-format-ramble-1min.txt"
SAMPLE_13MIN = SHARED / "audio" / "explain-format-ramble.m4a"


@pytest.fixture(scope="session", autouse=True)
def ramble2post_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ramble2post-home")
    old = {k: os.environ.get(k) for k in ("RAMBLE2POST_HOME", "RAMBLE2POST_CACHE")}
    os.environ["RAMBLE2POST_HOME"] = str(home)
    os.environ.pop("RAMBLE2POST_CACHE", None)
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny():
    """Whisper tiny.en on CPU and the bundled 1-min sample, loaded once a session (tests copy, never modify, it)."""
    from ramble2post.transcribe.audio import load_audio
    from ramble2post.transcribe.models import load_whisper_model

    model, _ = load_whisper_model(name_or_path="tiny.en", device="cpu")
    return model, load_audio(SAMPLE_1MIN).samples


# .ci/run sets RAMBLE2POST_SKIPPED_LOG for its first, plain run of ./scripts/test.sh: every test (or module)
# that skips is written there, one pytest node id a line, and run again once the extras are installed.
_SKIPPED_LOG = os.environ.get("RAMBLE2POST_SKIPPED_LOG")


def _log_skip(report) -> None:
    if _SKIPPED_LOG and report.skipped and report.nodeid and not hasattr(report, "wasxfail"):  # xfail is no skip
        with open(_SKIPPED_LOG, "a", encoding="utf-8") as f:
            f.write(report.nodeid + "\n")


def pytest_runtest_logreport(report):
    if report.when in ("setup", "call"):
        _log_skip(report)


def pytest_collectreport(report):
    _log_skip(report)
