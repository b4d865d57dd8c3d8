"""An experiment that raises or runs out of memory: the draft is still produced, the failure recorded in it."""

from __future__ import annotations

from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import (
    FAST,
    assert_only_new_branch,
    assert_success,
    branches,
    git,
    invoke,
    make_blog,
    snapshot,
)


def test_failing_experiments_are_recorded_in_the_draft(tmp_path, warm, fakes):
    blog = make_blog(tmp_path / "blog")
    before, refs = snapshot(blog), branches(blog)
    r = invoke(
        [SAMPLE_1MIN, *FAST, "--llm", "fake", "--experiments", "fault-raise,fault-oom", "--blog-repo", blog, "--json"],
        home=warm.home,
    )
    out = assert_success(r)
    assert_only_new_branch(blog, before, refs)
    # the user is told on stderr, once per failure, and the post carries it for review
    assert "fault-raise failed: RuntimeError: simulated bug in an experiment (recorded in the draft)" in r.stderr
    assert "fault-oom failed: out of memory: simulated: cannot allocate 64 GiB (recorded in the draft)" in r.stderr
    md = git(blog, "show", f"{out['branch']}:{out['path']}")
    assert "fault\\-raise" in md or "fault-raise" in md
    assert "simulated bug in an experiment" in md and "out of memory" in md
    assert out["verify_marks"] >= 2  # each failure is a VERIFY mark: publishing refuses until reviewed
    assert md.count("VERIFY") >= 2


def test_unknown_experiment_name_is_refused_before_any_work(tmp_path):
    from tests.faults.helpers import invoke

    home = tmp_path / "home"
    r = invoke([SAMPLE_1MIN, "--experiments", "quantisation-los"], home=home)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "Error: unknown experiment 'quantisation-los'"
    assert "quantization-loss" in r.stderr  # the hint lists the real names
    assert not (home / "blog").exists() and not (home / "cache").exists()
