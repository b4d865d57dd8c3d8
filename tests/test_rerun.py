"""`ramble2post rerun`: adds this machine's results next to the old ones, never overwrites, branches for published posts."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from test_blog_common import branches, git, make_post, make_repo, make_transcript, snapshot, stored

from ramble2post.experiments.base import Context
from ramble2post.experiments.batching import COLUMNS, UNITS, BatchingSpeedup
from ramble2post.experiments.pipeline_hook import RunOutcome
from ramble2post.publish.draft import create_draft, publish_draft
from ramble2post.publish.gitops import open_repo
from ramble2post.publish.rerun import comparison_table, rerun_post
from ramble2post.records import Hardware

OLD_MACHINE = "cpu-old-laptop-4c"


def _result(*, machine: str, started: str, tps1: float, threads: int = 4):
    """A batching-speedup Result shaped like a real one (rows for every part), on ``machine``."""
    exp = BatchingSpeedup()
    rows = [("peak", "copy (read+write)", None, None, None, None, 268.4, 20.0, None, None, 100.0)]
    for part in ("llm (llama.cpp)", "whisper decoder (torch)"):
        for b, sp in ((1, 1.0), (4, 2.5), (8, 3.9)):
            tps = tps1 * sp
            rows.append((part, "m", b, tps, sp, 1000 * b / tps, 100.0, 5.0, 3.0, 0.6, 25.0))
    rows.append(("roofline fp32", "mlp 512x2048 x16 layers", 1, 200.0, 1.0, 5.0, 67.0, 13.0, 6.6, 0.5, 65.0))
    res = exp.make_result(
        Context(),
        params={"batches": [1, 4, 8], "steps": 12, "rounds": 2, "threads": threads, "clock": "wall"},
        models=(),
        started_at=started,
        duration_s=1.0,
        columns=COLUMNS,
        units=UNITS,
        rows=rows,
        summary={"llm_best_tokens_per_s": tps1 * 3.9, "peak_GB_per_s": 20.0, "threads": threads},
        reading="Batching helped.",
    )
    return dataclasses.replace(res, machine=machine)


def _stored_draft(tmp_path):
    root = make_repo(tmp_path / "blog")
    old = _result(machine=OLD_MACHINE, started="2026-11-20T10:00:00Z", tps1=50.0)
    out = tmp_path / "old"
    out.mkdir()
    (out / "p.png").write_bytes(BatchingSpeedup().plot([old])["batching-speedup.png"])
    ran = RunOutcome(old.experiment, "ok", result=dataclasses.replace(old, plots=("p.png",)), result_dir=str(out))
    draft = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=[ran],
        blog_repo=root,
        hardware=Hardware(label="old laptop"),
    )
    return root, draft


class FakeRunner:
    """Stands in for running the experiment: records the context, returns a result for this machine."""

    def __init__(self, tps1: float = 400.0):
        self.contexts = []
        self.tps1 = tps1
        self.n = 0

    def __call__(self, exp, ctx):
        from ramble2post.experiments.hardware import machine_label

        self.contexts.append(ctx)
        self.n += 1
        return _result(
            machine=machine_label(device=ctx.device), started=f"2026-11-24T07:0{self.n}:00Z", tps1=self.tps1, threads=16
        )


def _results_files(root, ref, slug):
    out = git(root, "ls-tree", "-r", "--name-only", ref, "--", f"src/assets/images/ramble2post/{slug}/results")
    return sorted(p for p in out.split() if p.endswith(".json"))


def test_rerun_on_draft_adds_a_machine_and_keeps_old_numbers(tmp_path):
    root, draft = _stored_draft(tmp_path)
    before_files = _results_files(root, draft.branch, draft.slug)
    old_blobs = {p: git(root, "rev-parse", f"{draft.branch}:{p}").strip() for p in before_files}
    snap = snapshot(root)
    runner = FakeRunner()
    res = rerun_post(slug=draft.slug, blog_repo=root, device="cpu", runner=runner, say=lambda m: None)
    assert res.branch == draft.branch and not res.published
    assert git(root, "rev-parse", f"{res.commit}^").strip() == draft.commit  # one commit on top of the draft
    after = _results_files(root, draft.branch, draft.slug)
    assert len(after) == len(before_files) + 1
    for p, blob in old_blobs.items():  # never overwritten
        assert git(root, "rev-parse", f"{draft.branch}:{p}").strip() == blob
    # machine-specific params are chosen afresh; the rest are the old run's
    ctx = runner.contexts[0]
    assert ctx.params == {"batches": [1, 4, 8], "steps": 12, "rounds": 2}
    text = git(root, "show", f"{draft.branch}:{draft.path}")
    assert OLD_MACHINE in text and res.machine in text
    assert "Side by side, one column per machine" in text
    assert text.count("<!-- ramble2post:measurements -->") == 1
    assert any(p.endswith(".png") for p in res.added)
    assert snapshot(root) == snap  # the user's checkout is untouched


def test_second_rerun_on_same_machine_is_a_dated_run(tmp_path):
    root, draft = _stored_draft(tmp_path)
    runner = FakeRunner()
    rerun_post(slug=draft.slug, blog_repo=root, device="cpu", runner=runner, say=lambda m: None)
    first = set(_results_files(root, draft.branch, draft.slug))
    rerun_post(slug=draft.slug, blog_repo=root, device="cpu", runner=runner, say=lambda m: None)
    second = set(_results_files(root, draft.branch, draft.slug))
    assert first < second and len(second) == 3
    text = git(root, "show", f"{draft.branch}:{draft.path}")
    assert "2026-11-24 07:01" in text and "2026-11-24 07:02" in text  # both runs kept, each dated


def test_rerun_of_published_post_goes_to_a_new_branch(tmp_path):
    root, draft = _stored_draft(tmp_path)
    publish_draft(open_repo(root), slug=draft.slug, force=True)
    git(root, "branch", "-D", draft.branch, check=False)  # publish may already have removed it
    main_before = git(root, "rev-parse", "main").strip()
    runner = FakeRunner()
    res = rerun_post(slug=draft.slug, blog_repo=root, device="cpu", runner=runner, say=lambda m: None)
    assert res.published and res.branch.startswith(f"rerun/{draft.slug}/")
    assert f"refs/heads/{res.branch}" in branches(root)
    assert git(root, "rev-parse", "main").strip() == main_before  # published post untouched
    assert len(_results_files(root, res.branch, draft.slug)) == 2
    # a second rerun on the same machine adds to that branch
    res2 = rerun_post(slug=draft.slug, blog_repo=root, device="cpu", runner=runner, say=lambda m: None)
    assert res2.branch == res.branch and git(root, "rev-parse", f"{res2.commit}^").strip() == res.commit
    assert len(_results_files(root, res.branch, draft.slug)) == 3
    # a result whose file name (machine + start time) already exists is refused, not overwritten
    from ramble2post.errors import BlogRepoError

    tip = git(root, "rev-parse", res.branch).strip()
    with pytest.raises(BlogRepoError, match="refusing to overwrite"):
        rerun_post(slug=draft.slug, blog_repo=root, device="cpu", runner=FakeRunner(), say=lambda m: None)
    assert git(root, "rev-parse", res.branch).strip() == tip


def test_comparison_table_has_one_column_per_machine():
    a = _result(machine="cpu-a-2c", started="2026-11-20T10:00:00Z", tps1=50.0).to_dict()
    b = _result(machine="nvidia-h100", started="2026-11-24T10:00:00Z", tps1=900.0).to_dict()
    table = comparison_table([a, b])
    header = table.splitlines()[2]
    assert "cpu-a-2c" in header and "nvidia-h100" in header
    assert "llm\\_best\\_tokens\\_per\\_s" in table or "llm_best_tokens_per_s" in table
    assert comparison_table([a]) == ""  # one machine: nothing to compare


def test_rerun_cli_unknown_slug_is_one_line_error(tmp_path):
    from ramble2post.cli.main import cli

    root = make_repo(tmp_path / "blog")
    r = CliRunner().invoke(cli, ["rerun", "no-such-post", "--blog-repo", str(root)])
    assert r.exit_code != 0
    assert "Error:" in r.output and "Traceback" not in r.output


def test_rerun_without_results_says_so(tmp_path):
    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=[],
        blog_repo=root,
        hardware=Hardware(label="x"),
    )
    from ramble2post.errors import ExperimentError

    with pytest.raises(ExperimentError, match="no experiment results"):
        rerun_post(slug=d.slug, blog_repo=root, device="cpu", runner=FakeRunner(), say=lambda m: None)


@pytest.mark.slow
def test_real_rerun_redraws_the_plot_with_both_runs(tmp_path):
    """End to end with a real (small) experiment: the stored result is read back, rerun, and plotted together."""
    from ramble2post import experiments
    from ramble2post.experiments.base import save_result

    exp = experiments.get("kv-cache-growth")
    first = exp.measure(Context(quick=True, params={"models": ["llm"], "check_steps": 4, "check_batches": [1]}))
    out = tmp_path / "first"
    saved = save_result(first, out)
    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=[RunOutcome(saved.experiment, "ok", result=saved, result_dir=str(out))],
        blog_repo=root,
        hardware=Hardware(label="x"),
    )
    res = rerun_post(slug=d.slug, blog_repo=root, device="cpu", quick=True, say=lambda m: None)
    assert res.experiments == ("kv-cache-growth",)
    files = _results_files(root, d.branch, d.slug)
    assert len(files) == 2
    new = json.loads(git(root, "show", f"{d.branch}:{[f for f in files if f in res.added][0]}"))
    assert new["params"]["models"] == ["llm"] and new["params"]["check_batches"] == [1]
    assert new["summary"]["checks_agree_within_10pct"] is True
    png = [p for p in res.added if p.endswith(".png")]
    assert png and int(git(root, "cat-file", "-s", f"{d.branch}:{png[0]}")) > 20_000


def test_failed_experiment_is_rerun_too(tmp_path):
    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=stored(
            {"experiment": "batching-speedup", "error": "out of memory"},
            {"experiment": "not-a-real-one", "error": "boom"},
        ),
        blog_repo=root,
        hardware=Hardware(label="x"),
    )
    runner = FakeRunner()
    res = rerun_post(slug=d.slug, blog_repo=root, device="cpu", runner=runner, say=lambda m: None)
    assert res.experiments == ("batching-speedup",)
    assert runner.contexts[0].params == {}  # no earlier numbers: the experiment's own defaults
