"""Ctrl-C (SIGINT) and SIGTERM in every stage: exit 130, nothing half-written, and a rerun resumes.

Each run is a real subprocess; the test waits for the stage's progress line on
stderr (``[n/4] ...``, plus a marker inside slow stages) and signals it there.
Slow stages are made slow on purpose with the fakes of ``tests.faults.fakecli``
(an LLM that takes a minute per answer, an experiment that sleeps, a commit
that holds the repo lock), so the signal always lands inside the stage.
"""

from __future__ import annotations

import signal

import pytest

from tests.conftest import SAMPLE_1MIN
from tests.faults.fakecli import HOLDING_LOCK
from tests.faults.helpers import (
    FAST,
    LOCK_NAME,
    Running,
    assert_only_new_branch,
    assert_success,
    assert_unchanged,
    branches,
    cache_files,
    cold_home,
    make_blog,
    no_temp_leftovers,
    record,
    snapshot,
    warm_home,
)

INTERRUPTED = 130
RESUME_MSG = "Interrupted. Finished stages are cached: run the same command again to resume."
SLOW = "60"  # s per slow step: far longer than any test waits


def _cmd(blog, *extra):
    return [SAMPLE_1MIN, *FAST, "--llm", "fake", "--blog-repo", blog, "--json", *extra]


def _interrupt(run: Running, wait_for: str, sig: signal.Signals):
    run.wait_for(wait_for, timeout=240)
    run.proc.send_signal(sig)
    r = run.finish(timeout=120)
    assert r.returncode == INTERRUPTED, r.stderr
    assert "Traceback" not in r.stderr and RESUME_MSG in r.stderr
    assert not [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert not r.stdout.strip()  # no half summary
    record(exit=r.returncode, message=RESUME_MSG)
    return r


def _tmp_empty(tmp):
    leftovers = sorted(p.name for p in tmp.iterdir())
    assert not leftovers, f"temp files left behind: {leftovers}"


@pytest.mark.slow
def test_sigint_during_structuring_then_rerun_resumes_without_transcribing_again(tmp_path, warm):
    """The acceptance test of issue 7."""
    home = cold_home(warm, tmp_path / "home")
    blog = make_blog(tmp_path / "blog")
    counter = tmp_path / "count"
    counter.mkdir()
    before, refs = snapshot(blog), branches(blog)

    run = Running(_cmd(blog), home=home, env={"FAKE_COUNT_DIR": counter, "FAKE_LLM_SLEEP_S": SLOW})
    r = _interrupt(run, r"structure: title", signal.SIGINT)
    assert "[2/4] structure" in r.stderr and "[3/4]" not in r.stderr
    assert (counter / "transcribe.count").read_text().count("\n") == 1  # transcribed once
    assert len(cache_files(home, "transcribe")) == 1  # ...and that stage is cached
    assert cache_files(home, "structure") == {}  # the cut stage left nothing behind
    no_temp_leftovers(home)
    assert_unchanged(blog, before)
    assert not (blog / ".git" / LOCK_NAME).exists()

    again = Running(_cmd(blog), home=home, env={"FAKE_COUNT_DIR": counter, "FAKE_LLM_SLEEP_S": "0"}).finish()
    out = assert_success(again)
    assert (counter / "transcribe.count").read_text().count("\n") == 1  # NOT transcribed again
    assert "cached: not transcribed again" in again.stderr  # and the user is told so
    assert "structure: cached result" not in again.stderr  # structuring is what resumes
    assert len(cache_files(home, "structure")) == 1
    assert assert_only_new_branch(blog, before, refs) == out["branch"]


def _case_transcribe(warm, tmp):
    return cold_home(warm, tmp / "home"), {}, r"^\[1/4\] transcribe", "transcribe"


def _case_structure(warm, tmp):
    return warm_home(warm, tmp / "home"), {"FAKE_LLM_SLEEP_S": SLOW}, r"structure: title", "structure"


def _case_experiments(warm, tmp):
    return (warm_home(warm, tmp / "home"), {"FAKE_EXPERIMENT_SLEEP_S": SLOW}, r"^\[3/4\] experiments", "experiments")


def _case_draft(warm, tmp):
    return warm_home(warm, tmp / "home"), {"FAKE_DRAFT_SLEEP_S": SLOW}, HOLDING_LOCK, "draft"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    "case",
    [_case_transcribe, _case_structure, _case_experiments, _case_draft],
    ids=["transcribe", "structure", "experiments", "draft"],
)
def test_signal_in_each_stage_leaves_nothing_half_done(case, sig, tmp_path, warm):
    home, env, marker, stage = case(warm, tmp_path)
    blog = make_blog(tmp_path / "blog")
    (tmp_path / "tmp").mkdir()
    before, refs = snapshot(blog), branches(blog)
    cached_before = {s: cache_files(home, s) for s in ("transcribe", "structure")}
    extra = ("--experiments", "fault-sleep") if stage == "experiments" else ()
    run = Running(_cmd(blog, *extra), home=home, env={**env, "TMPDIR": tmp_path / "tmp"})
    r = _interrupt(run, marker, sig)

    assert_unchanged(blog, before)  # refs, index, work tree, status, worktrees, no lock
    assert branches(blog) == refs
    assert not (blog / ".git" / LOCK_NAME).exists()
    no_temp_leftovers(home)
    _tmp_empty(tmp_path / "tmp")  # temp index, temp files: released
    # finished stages stay cached; the cut stage and later ones left no entry
    done = {"transcribe": 0, "structure": 1, "experiments": 2, "draft": 3}[stage]
    if done >= 1:
        assert cache_files(home, "transcribe") and cache_files(home, "transcribe") == cached_before["transcribe"]
    else:  # no entry; or, when a library swallowed the KeyboardInterrupt, the stage finished, was
        # cached whole, and the run stopped at the next stage boundary (interrupt_pending)
        assert len(cache_files(home, "transcribe")) <= 1 and "[2/4]" not in r.stderr
    if done == 1:
        assert cache_files(home, "structure") == cached_before["structure"] == {}
    if done >= 2:
        assert len(cache_files(home, "structure")) == 1

    if sig == signal.SIGINT and stage in ("experiments", "draft"):
        # rerun: finished stages come from the cache and the draft lands once
        again = Running(
            _cmd(blog, *extra), home=home, env={"FAKE_EXPERIMENT_SLEEP_S": "0", "TMPDIR": tmp_path / "tmp"}
        ).finish()
        out = assert_success(again)
        assert "cached: not transcribed again" in again.stderr and "structure: cached result" in again.stderr
        assert assert_only_new_branch(blog, before, refs) == out["branch"]
        if stage == "experiments":
            assert any("fault-sleep" in f for f in out["files"])
