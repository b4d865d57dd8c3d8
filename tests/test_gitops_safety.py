"""Committing drafts never touches the user's checkout; locks; refusals; publish; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_blog_common import (
    HARDWARE,
    branches,
    git,
    make_busy_repo,
    make_post,
    make_repo,
    make_result,
    make_transcript,
    png_bytes,
    snapshot,
    stored,
)

from ramble2post.cli.main import cli
from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops
from ramble2post.publish.draft import create_draft, list_drafts, publish_draft

REPO_ROOT = Path(__file__).resolve().parent.parent


def draft(root, **kw):
    kw.setdefault("post", make_post())
    return create_draft(
        transcript=make_transcript(),
        experiment_results=stored(*kw.pop("results", [])),
        blog_repo=root,
        hardware=HARDWARE,
        **kw,
    )


def test_busy_checkout_is_byte_for_byte_unchanged(tmp_path):
    root = make_busy_repo(tmp_path / "blog")
    before, refs_before = snapshot(root), branches(root)
    d = draft(root, results=[make_result(tmp_path)])
    after = snapshot(root)
    assert after == before  # status, HEAD file, HEAD sha, index bytes, every work-tree file
    assert branches(root) - refs_before == {f"refs/heads/{d.branch}"}
    assert branches(root) >= refs_before
    assert git(root, "rev-list", "--count", f"main..{d.branch}").strip() == "1"
    assert git(root, "rev-parse", f"{d.branch}^").strip() == git(root, "rev-parse", "main").strip()
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature/wip"
    # the commit adds exactly the draft's files, nothing from the dirty checkout
    added = git(root, "diff", "--name-only", "main", d.branch).split()
    assert sorted(added) == sorted(d.files)
    assert "wip.md" not in " ".join(added) and "notes.txt" not in added
    msg = git(root, "log", "-1", "--format=%B", d.branch)
    assert "Draft: Batching makes decoding nearly free" in msg and HARDWARE.label in msg
    assert not (root / ".git" / gitops.LOCK_NAME).exists()
    assert git(root, "worktree", "list").count("\n") == 1  # no extra worktrees


def test_hooks_are_not_run(tmp_path):
    root = make_repo(tmp_path / "blog")
    marker = tmp_path / "hook-ran"
    for hook in ("pre-commit", "commit-msg", "post-commit", "reference-transaction", "post-checkout", "post-merge"):
        h = root / ".git" / "hooks" / hook
        h.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        h.chmod(0o755)
    d = draft(root, post=make_post(unverified=0))
    publish_draft(gitops.open_repo(root), slug=d.slug)
    assert not marker.exists(), marker.read_text()


def test_target_path_exists_is_refused(tmp_path):
    root = make_repo(tmp_path / "blog")
    repo = gitops.open_repo(root)
    before = snapshot(root)
    with pytest.raises(BlogRepoError, match="already exists on main"):
        gitops.commit_new_branch(repo, branch="drafts/hello", files={"src/data/blog/hello.md": b"x"}, message="m")
    assert branches(root) == {"refs/heads/main"} and snapshot(root) == before


def test_existing_branch_is_refused(tmp_path):
    root = make_repo(tmp_path / "blog")
    git(root, "branch", "drafts/x")
    with pytest.raises(BlogRepoError, match="already exists"):
        gitops.commit_new_branch(gitops.open_repo(root), branch="drafts/x", files={"a.md": b"x"}, message="m")


def test_lock_contention_refuses_and_leaves_repo_unchanged(tmp_path):
    root = make_repo(tmp_path / "blog")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (root / ".git" / gitops.LOCK_NAME).write_text(f"{holder.pid}@{os.uname().nodename}\n")
        before = snapshot(root)
        t0 = time.monotonic()
        with pytest.raises(BlogRepoError, match="locked by another ramble2post run") as e:
            draft(root, lock_wait_s=0.5)
        assert 0.4 < time.monotonic() - t0 < 5
        assert str(holder.pid) in str(e.value)
        assert branches(root) == {"refs/heads/main"} and snapshot(root) == before
        assert (root / ".git" / gitops.LOCK_NAME).exists()  # someone else's lock is left alone
    finally:
        holder.kill()
        holder.wait()
    # now the holder is dead: its lock is stale and taken over
    d = draft(root, lock_wait_s=0.5)
    assert d.branch in {b.removeprefix("refs/heads/") for b in branches(root)}
    assert not (root / ".git" / gitops.LOCK_NAME).exists()


def test_lock_is_released_on_failure(tmp_path):
    root = make_repo(tmp_path / "blog", posts_dir="weird")
    with pytest.raises(BlogRepoError):
        draft(root)
    assert not (root / ".git" / gitops.LOCK_NAME).exists()


def test_two_concurrent_runs_both_land_consistently(tmp_path):
    root = make_repo(tmp_path / "blog")
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
        from test_blog_common import *
        from ramble2post.publish.draft import create_draft
        from ramble2post.publish import gitops
        real = gitops.build_tree
        def slow(*a, **k):
            time.sleep(1.0)  # widen the race window inside the lock
            return real(*a, **k)
        gitops.build_tree = slow
        d = create_draft(post=make_post(), transcript=make_transcript(), experiment_results=[],
                         blog_repo={str(root)!r}, hardware=HARDWARE)
        print(d.branch)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0], outs
    made = sorted(o[0].strip() for o in outs)
    assert made == ["drafts/batching-makes-decoding-nearly-free", "drafts/batching-makes-decoding-nearly-free-2"]
    assert git(root, "fsck", "--no-progress").strip() == ""
    assert not (root / ".git" / gitops.LOCK_NAME).exists()


def test_publish_refuses_with_verify_marks_then_force(tmp_path):
    root = make_repo(tmp_path / "blog")
    git(root, "checkout", "-q", "-b", "feature")
    d = draft(root)
    repo = gitops.open_repo(root)
    main_before = git(root, "rev-parse", "main")
    with pytest.raises(BlogRepoError, match="1 VERIFY mark"):
        publish_draft(repo, slug=d.slug)
    assert git(root, "rev-parse", "main") == main_before
    before = snapshot(root)
    p = publish_draft(repo, slug=d.slug, force=True)
    assert not p.worktree_updated and snapshot(root) == before  # main not checked out: files untouched
    text = git(root, "show", f"main:{d.path}")
    assert "\ndraft: false\n" in text
    assert git(root, "rev-parse", "main^2").strip() == d.commit  # merge commit with the draft as parent
    assert f"refs/heads/{d.branch}" not in branches(root)


def test_publish_updates_clean_checkout_and_refuses_dirty(tmp_path):
    root = make_repo(tmp_path / "blog")
    d1 = draft(root, post=make_post(unverified=0))
    d2 = draft(root, post=make_post(unverified=0))
    repo = gitops.open_repo(root)
    (root / "src/data/blog/hello.md").write_text("dirty\n")
    before = snapshot(root)
    with pytest.raises(BlogRepoError, match="uncommitted changes"):
        publish_draft(repo, slug=d1.slug)
    assert snapshot(root) == before
    git(root, "checkout", "--", "src/data/blog/hello.md")
    p = publish_draft(repo, slug=d1.slug)
    assert p.worktree_updated
    assert git(root, "status", "--porcelain") == ""
    assert "draft: false" in (root / d1.path).read_text()
    publish_draft(repo, slug=d2.slug)  # a second publish merges on top
    assert (root / d2.path).is_file() and git(root, "status", "--porcelain") == ""


def test_cli_drafts_publish_and_refusals(tmp_path):
    root = make_repo(tmp_path / "blog")
    git(root, "checkout", "-q", "-b", "feature")
    d = draft(root)
    runner = CliRunner()
    out = runner.invoke(cli, ["drafts", "--blog-repo", str(root)])
    assert out.exit_code == 0, out.output
    assert d.slug in out.output and "1 VERIFY" in out.output and "Batching makes decoding" in out.output
    out = runner.invoke(cli, ["drafts", "--blog-repo", str(root), "--json"])
    assert json.loads(out.output)[0]["verify_marks"] == 1
    out = runner.invoke(cli, ["publish", d.slug, "--blog-repo", str(root), "--yes"])
    assert out.exit_code == 5 and "VERIFY" in out.output and "Traceback" not in out.output
    out = runner.invoke(cli, ["publish", d.slug, "--blog-repo", str(root), "--force"], input="n\n")
    assert out.exit_code != 0 and f"refs/heads/{d.branch}" in branches(root)  # declined
    out = runner.invoke(cli, ["publish", d.slug, "--blog-repo", str(root), "--force"], input="y\n")
    assert out.exit_code == 0, out.output
    assert "Published" in out.output and "Not pushed" in out.output
    assert list_drafts(gitops.open_repo(root)) == []
    out = runner.invoke(cli, ["publish", "../../etc", "--blog-repo", str(root), "--yes"])
    assert out.exit_code == 5 and "not a ramble2post slug" in out.output
    out = runner.invoke(cli, ["drafts", "--blog-repo", str(tmp_path)])
    assert out.exit_code == 5 and "not a git repository" in out.output


def test_main_command_with_stand_in_stages(tmp_path, monkeypatch):
    """``ramble2post AUDIO`` end to end with fake stages (the real ones have their own tests)."""
    import ramble2post.transcribe.stage as tr

    audio = tmp_path / "ramble.m4a"
    audio.write_bytes(b"not really audio")
    calls = []
    monkeypatch.setattr(
        tr, "transcribe_file", lambda *, audio_path, options: calls.append(options) or make_transcript()
    )
    fake_structure = types.ModuleType("ramble2post.structure.stage")
    fake_structure.structure_transcript = lambda *, transcript, llm, prompts_dir=None, progress=None: make_post()
    monkeypatch.setitem(sys.modules, "ramble2post.structure.stage", fake_structure)
    from ramble2post.experiments import pipeline_hook
    from ramble2post.experiments.base import Result

    exp_calls = []

    def fake_run_detected(
        *, transcript, output_dir, selection, device, whisper_model, llm, audio_path, progress, quick=False
    ):
        exp_calls.append(selection)
        out = Path(output_dir) / "batching-speedup"
        out.mkdir(parents=True)
        (out / "throughput.png").write_bytes(png_bytes())
        res = Result(
            experiment="batching-speedup",
            version="1",
            params={},
            models=(),
            hardware={"cpu_model": "Test CPU", "cpu_cores_usable": 2},
            machine="cpu-test-2c",
            started_at="2026-11-24T06:00:00Z",
            duration_s=1.5,
            columns=("batch", "tokens/s"),
            units={"tokens/s": "tok/s"},
            rows=((1, 10.0), (4, 33.0)),
            summary={"speedup_at_4": 3.3},
            reading="Batch 4 is 3.3x faster.",
            plots=("throughput.png",),
        )
        return [
            pipeline_hook.RunOutcome("batching-speedup", "ok", result=res, result_dir=str(out)),
            pipeline_hook.RunOutcome("kv-cache-growth", "failed", error="out of memory: boom"),
        ]

    monkeypatch.setattr(pipeline_hook, "run_detected", fake_run_detected)
    root = make_busy_repo(tmp_path / "blog")
    before = snapshot(root)
    out = CliRunner().invoke(cli, [str(audio), "--blog-repo", str(root), "--device", "cpu", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["branch"].startswith("drafts/") and len(result["commit"]) == 40
    assert set(result["timings_s"]) == {"transcribe", "structure", "experiments", "draft"}
    assert "[1/4] transcribe" in out.stderr and "[4/4] draft" in out.stderr
    assert snapshot(root) == before
    assert git(root, "cat-file", "-t", f"{result['branch']}:{result['path']}").strip() == "blob"
    assert calls[0].device == "cpu" and exp_calls == ["auto"]
    text = git(root, "show", f"{result['branch']}:{result['path']}")
    assert "| batch | tokens/s \\[tok/s\\] |" in text and "**What it shows:** Batch 4 is 3.3x faster." in text
    assert "kv\\-cache\\-growth" not in text or "out of memory: boom" in text
    assert "this experiment failed and produced no numbers: out of memory: boom" in text
    assert sum(f.endswith(".png") for f in result["files"]) == 1
    out = CliRunner().invoke(cli, [str(audio), "--blog-repo", str(root), "--device", "cpu", "--experiments", "none"])
    assert out.exit_code == 0, out.output
    assert "branch  drafts/batching-makes-decoding-nearly-free-2" in out.stdout


def test_author_notes_are_listed_and_block_publishing_until_forced(tmp_path):
    root = make_repo(tmp_path / "blog")
    git(root, "checkout", "-q", "-b", "feature")
    d = draft(root, post=make_post(unverified=0, gaps=("analogy",)))
    runner = CliRunner()
    out = runner.invoke(cli, ["drafts", "--blog-repo", str(root)])
    assert out.exit_code == 0 and "1 NOTE" in out.output and "VERIFY" not in out.output
    assert json.loads(runner.invoke(cli, ["drafts", "--blog-repo", str(root), "--json"]).output)[0]["author_notes"] == 1
    out = runner.invoke(cli, ["publish", d.slug, "--blog-repo", str(root), "--yes"])
    assert out.exit_code == 5 and "AUTHOR NOTE" in out.output and f"refs/heads/{d.branch}" in branches(root)
    out = runner.invoke(cli, ["publish", d.slug, "--blog-repo", str(root), "--force", "--yes"])
    assert out.exit_code == 0, out.output


def test_a_second_draft_of_one_recording_says_where_the_first_is(tmp_path):
    """Running ramble2post twice on one recording made drafts/grinder-2 and -3 without a word (stop 31)."""
    root = make_busy_repo(tmp_path / "blog")
    lines: list[str] = []
    first = draft(root, say=lines.append)
    assert not any("already hold" in x for x in lines)
    second = draft(root, say=lines.append)
    notes = [x for x in lines if "already hold" in x]
    assert second.branch != first.branch and len(notes) == 1
    assert first.branch in notes[0] and second.branch in notes[0]
