"""Verification on labelled paraphrases (tests/data/paraphrase/): the bars it holds today.

Issue 12 asks for >= 90 % of faithful rewrites accepted and >= 95 % of unfaithful ones rejected.
On pairs.jsonl (246 pairs, where the rule changes were chosen) the rules reach 80.2 % and 89.2 %;
on heldout.jsonl (164 pairs from rambles the rules were never tuned on, written before the last
rule change) 47.4 % and 73.9 %: neither bar is met on either file. See docs/STRUCTURE_QUALITY.md.
These bars keep what was gained from slipping back; unfaithful rejection is the one that matters
most ("fewer, right sentences"). Each sits two pairs (one per kind) below the figure measured on
2026-12-04 (OMP_NUM_THREADS 1 and 2 alike), not at it: a pair whose embedding cosine lies on a
threshold may flip with another CPU's float kernels, and one pair is 0.8 to 2.2 points here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def _bench():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import bench_verify

    return bench_verify


def _rule(bench_verify):
    from ramble2post.structure.verify import embedding_cosine

    return bench_verify.current_rule(embedding_cosine())


@pytest.mark.slow
def test_paraphrase_benchmark_bars():
    bench_verify = _bench()
    pairs = bench_verify.load(bench_verify.PAIRS)
    assert len(pairs) >= 200 and sum(p["faithful"] for p in pairs) >= 100
    now = bench_verify.score(_rule(bench_verify), pairs)
    before = bench_verify.score(bench_verify.previous_rule, pairs)
    # measured 107/120 = 89.2 % rejected (previous rule 61.7 %), 101/126 = 80.2 % accepted
    assert now["rejected_unfaithful"] >= 105 / 120 > before["rejected_unfaithful"]
    assert now["accepted_faithful"] >= 99 / 126
    caught, total = map(int, now["by_kind"]["number"].split("/"))
    assert caught == total  # every new number is caught (21/21)
    # measured claim 10/10, negation 11/13, unit 17/19, name 18/20
    for kind, least in (("claim", 9), ("negation", 10), ("unit", 16), ("name", 17)):
        caught, total = map(int, now["by_kind"][kind].split("/"))
        assert caught >= least, kind


@pytest.mark.slow
def test_paraphrase_heldout_bars():
    """The honest figure: pairs from rambles no threshold was chosen on."""
    bench_verify = _bench()
    pairs = bench_verify.load(bench_verify.HELDOUT)
    assert len(pairs) >= 80 and sum(p["faithful"] for p in pairs) >= 40
    now = bench_verify.score(_rule(bench_verify), pairs)
    before = bench_verify.score(bench_verify.previous_rule, pairs)
    # measured 65/88 = 73.9 % rejected (previous rule 59.1 %), 36/76 = 47.4 % accepted
    assert now["rejected_unfaithful"] >= 63 / 88 > before["rejected_unfaithful"]
    assert now["accepted_faithful"] >= 34 / 76


@pytest.mark.slow
def test_paraphrase_benchmark_prints_both_confusion_matrices():
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_verify.py"), "--pairs", str(_bench().PAIRS)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-1000:]
    assert "previous (overlap >= 0.6)" in r.stdout and "current" in r.stdout and "unfaithful rejected" in r.stdout
