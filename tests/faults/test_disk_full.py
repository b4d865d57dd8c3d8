"""Disk full while writing: one clear line, nothing half-written, the old output and the repo intact.

Simulated for real, not mocked: the CLI subprocess gets ``RLIMIT_FSIZE`` (and
ignores ``SIGXFSZ``), so any write past the limit fails with ``EFBIG`` ("File too
large") exactly where a full disk would fail with ``ENOSPC`` - in our own
atomic writes and in the git subprocesses that write objects.
"""

from __future__ import annotations

import json
import resource
import signal

import pytest

from ramble2post.structure.schema import SCHEMA_VERSION
from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import (
    FAST,
    _default_signals,
    assert_clean_failure,
    assert_unchanged,
    branches,
    cache_files,
    cold_home,
    fsck_ok,
    make_blog,
    no_temp_leftovers,
    run_cli,
    snapshot,
    warm_home,
)

OLD = '{"old": "post the user already had"}\n'


def _limit(max_bytes: int):
    def preexec():
        _default_signals()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return preexec


def test_disk_full_while_writing_the_post_keeps_the_old_file_and_no_cache_entry(tmp_path, warm):
    home = warm_home(warm, tmp_path / "home")
    out = tmp_path / "post.json"
    out.write_text(OLD)
    r = run_cli(["structure", warm.transcript, "--llm", "none", "-o", out], home=home, fake=False, preexec=_limit(4096))
    line = assert_clean_failure(r, contains="no space left to write")
    assert "File too large" in line and "Hint: free disk space" in r.stderr
    assert out.read_text() == OLD  # atomic: the previous file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "post.json"]  # no temp file beside it
    assert cache_files(home, "structure") == {}
    no_temp_leftovers(home)

    ok = run_cli(["structure", warm.transcript, "--llm", "none", "-o", out], home=home, fake=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.read_text())["schema_version"] == SCHEMA_VERSION


@pytest.mark.slow
def test_disk_full_while_transcribing(tmp_path, warm):
    """The decoded audio is the first file a transcription writes (a temporary file, 1.8 MB for the 1-min
    sample, since issue 26's flat memory): the full disk is named there, nothing is cached or written."""
    home = cold_home(warm, tmp_path / "home")
    out = tmp_path / "t.json"
    r = run_cli(
        ["transcribe", SAMPLE_1MIN, "-m", "tiny.en", "--device", "cpu", "-o", out],
        home=home,
        fake=False,
        preexec=_limit(2048),
    )
    line = assert_clean_failure(r, contains="no space left to write")
    assert "decoded audio" in line and "Hint: free disk space" in r.stderr
    assert not out.exists() and cache_files(home, "transcribe") == {}
    no_temp_leftovers(home)


def test_disk_full_while_committing_the_draft_leaves_the_repo_unchanged(tmp_path, warm, fakes):
    from tests.faults.helpers import invoke

    home = warm_home(warm, tmp_path / "home")
    blog = make_blog(tmp_path / "blog")
    # transcript and post cached first, so that the only writes left are the draft's
    assert (
        invoke(
            [SAMPLE_1MIN, *FAST, "--llm", "none", "--blog-repo", make_blog(tmp_path / "scratch")], home=home
        ).returncode
        == 0
    )
    before, refs = snapshot(blog), branches(blog)
    r = run_cli([SAMPLE_1MIN, *FAST, "--llm", "none", "--blog-repo", blog], home=home, fake=False, preexec=_limit(2048))
    line = assert_clean_failure(r, contains="git hash-object failed", code=5)
    assert "file size limit exceeded" in line and "Hint: free disk space" in r.stderr
    assert_unchanged(blog, before)
    assert branches(blog) == refs
    # git itself is killed by SIGXFSZ here (subprocess restores its default action), which can leave
    # one git-internal objects/??/tmp_obj_* file, as any killed git can; `git gc` prunes it. Refs, index,
    # work tree and the object database stay consistent:
    fsck_ok(blog)
