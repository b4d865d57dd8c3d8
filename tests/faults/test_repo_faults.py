"""Fault matrix, blog-repo side: refusals leave the repo byte-for-byte as it was; odd but valid repos work.

Refusals are checked before any slow stage (the main command checks the blog
repo first), so they run in-process; runs that commit use the warm transcript
and the ``fake`` LLM.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import (
    FAST,
    LOCK_NAME,
    Running,
    assert_clean_failure,
    assert_only_new_branch,
    assert_success,
    assert_unchanged,
    branches,
    dirty,
    fsck_ok,
    git,
    invoke,
    make_blog,
    snapshot,
)

RUN = [SAMPLE_1MIN, *FAST, "--llm", "fake", "--json"]


def _run(blog, warm, **env):
    return invoke([*RUN, "--blog-repo", blog], home=warm.home, env=env)


# ---------------------------------------------------------------- refusals


def _not_git(tmp):
    d = tmp / "blog"
    (d / "src/data/blog").mkdir(parents=True)
    (d / "src/data/blog/post.md").write_text("hi\n")
    return d, "is not a git repository"


def _bare(tmp):
    d = tmp / "blog.git"
    git(tmp, "init", "-q", "--bare", str(d))
    return d, "is a bare repository"


def _missing(tmp):
    return tmp / "no-such-blog", "does not exist"


def _no_commits(tmp):
    d = tmp / "blog"
    d.mkdir()
    git(d, "init", "-q", "-b", "main")
    return d, "has no commits"


def _not_astropaper(tmp):
    d = make_blog(tmp / "blog", posts_dir="content/articles")
    return d, "does not look like an AstroPaper blog"


@pytest.mark.parametrize(
    "case",
    [_not_git, _bare, _missing, _no_commits, _not_astropaper],
    ids=["not-a-git-repo", "bare", "missing", "no-commits", "not-astropaper"],
)
def test_unusable_blog_repo_is_refused_before_any_work(case, tmp_path, warm, fakes):
    blog, message = case(tmp_path)
    before = snapshot(blog) if blog.exists() else None
    transcripts = sorted((warm.home / "cache" / "transcribe").iterdir())
    r = _run(blog, warm)
    assert_clean_failure(r, contains=message, code=5)
    assert "[1/4]" not in r.stderr  # refused before transcribing: no minutes lost on a typo
    if before is not None:
        assert_unchanged(blog, before)
    else:
        assert not blog.exists()
    assert sorted((warm.home / "cache" / "transcribe").iterdir()) == transcripts


# ---------------------------------------------------------------- odd but valid repos


def test_uncommitted_changes_on_a_feature_branch_succeed_and_stay_as_they_were(tmp_path, warm, fakes):
    blog = dirty(make_blog(tmp_path / "blog"))
    before, refs = snapshot(blog), branches(blog)
    out = assert_success(_run(blog, warm))
    branch = assert_only_new_branch(blog, before, refs)
    assert out["branch"] == branch and out["base_branch"] == "main"
    assert git(blog, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature/wip"
    added = git(blog, "diff", "--name-only", "main", branch).split()
    assert sorted(added) == sorted(out["files"]) and not {"notes.txt", "src/data/blog/wip.md"} & set(added)
    fsck_ok(blog)


def test_detached_head_succeeds_and_stays_detached(tmp_path, warm, fakes):
    blog = make_blog(tmp_path / "blog")
    (blog / "extra.txt").write_text("second commit\n")
    git(blog, "add", "extra.txt")
    git(blog, "commit", "-q", "-m", "second")
    git(blog, "checkout", "-q", "--detach", "HEAD~1")
    before, refs = snapshot(blog), branches(blog)
    assert_success(_run(blog, warm))
    assert_only_new_branch(blog, before, refs)
    assert git(blog, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"  # still detached, same commit


def test_branch_of_the_same_name_gets_a_new_slug(tmp_path, warm, fakes):
    blog = make_blog(tmp_path / "blog")
    first = assert_success(_run(blog, warm))
    before, refs = snapshot(blog), branches(blog)
    second = assert_success(_run(blog, warm))
    branch = assert_only_new_branch(blog, before, refs)  # the first draft's branch is untouched
    assert second["slug"] == f"{first['slug']}-2" and branch == f"drafts/{first['slug']}-2"
    assert second["path"] != first["path"]


def test_locked_by_a_live_run_is_refused_and_the_lock_is_left_to_its_owner(tmp_path, warm, fakes):
    blog = make_blog(tmp_path / "blog")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = blog / ".git" / LOCK_NAME
        lock.write_text(f"{holder.pid}@{socket.gethostname()}\n")
        before = snapshot(blog)
        r = _run(blog, warm)
        assert_clean_failure(r, contains="is locked by another ramble2post run", code=5)
        assert f"pid {holder.pid}" in r.stderr and str(lock) in r.stderr  # the hint says what to delete
        assert_unchanged(blog, before)
        assert lock.read_text() == f"{holder.pid}@{socket.gethostname()}\n"
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path, warm, fakes):
    blog = make_blog(tmp_path / "blog")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (blog / ".git" / LOCK_NAME).write_text(f"{dead.pid}@{socket.gethostname()}\n")
    refs = branches(blog)
    before = snapshot(blog)
    before["locks"] = []  # the stale lock is expected to go
    assert_success(_run(blog, warm))
    assert_only_new_branch(blog, before, refs)
    assert not (blog / ".git" / LOCK_NAME).exists()


def test_two_concurrent_runs_one_waits_and_both_land_consistently(tmp_path, warm):
    blog = make_blog(tmp_path / "blog")
    before, refs = snapshot(blog), branches(blog)
    env = {"FAKE_DRAFT_SLEEP_S": "2"}  # each holds the lock 2 s: the other must wait for it
    runs = [Running([*RUN, "--blog-repo", blog], home=warm.home, env=env) for _ in range(2)]
    results = [run.finish() for run in runs]
    outs = [assert_success(r) for r in results]
    holding = [r.stderr.count("fault-hook") for r in results]
    assert holding == [1, 1]
    fsck_ok(blog)
    now = branches(blog)
    new = sorted(set(now) - set(refs))
    assert len(new) == 2 and {o["branch"] for o in outs} == {n.removeprefix("refs/heads/") for n in new}
    assert outs[0]["slug"] != outs[1]["slug"]
    for o in outs:
        assert git(blog, "rev-list", "--count", f"main..{o['branch']}").strip() == "1"
        assert git(blog, "rev-parse", f"{o['branch']}^").strip() == refs["refs/heads/main"]
    after = snapshot(blog)
    for key in ("HEAD", "index", "status", "worktrees", "locks", "files"):
        assert after[key] == before[key], key
    assert not (blog / ".git" / LOCK_NAME).exists()


def test_debug_before_the_audio_path_shows_the_traceback_instead(tmp_path, warm, fakes):
    """`ramble2post --debug audio.m4a ...` is the main command with tracebacks on (not 'No such command')."""
    from ramble2post.errors import BlogRepoError

    blog, _ = _not_git(tmp_path)
    with pytest.raises(BlogRepoError, match="is not a git repository"):
        invoke(["--debug", *RUN, "--blog-repo", blog], home=warm.home)
