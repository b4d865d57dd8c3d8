"""Verification on labelled paraphrases (tests/data/paraphrase/): the bars it holds today.

Issue 12 asks for >= 90 % of faithful rewrites accepted and >= 95 % of unfaithful ones rejected.
On pairs.jsonl (246 pairs, where the thresholds were chosen) the rules reach 95.2 % and 83.3 %;
on heldout.jsonl (164 pairs from rambles the rules were never tuned on, written before the last
rule change) 68.4 % and 63.6 %: the unfaithful bar is not met on either, the faithful one only
where the thresholds were chosen. See docs/STRUCTURE_QUALITY.md. These bars keep what was gained
from slipping back.
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
    from ramble2post.structure.support import word_similarity
    from ramble2post.structure.verify import embedding_cosine

    return bench_verify.current_rule(embedding_cosine(), word_similarity())


@pytest.mark.slow
def test_paraphrase_benchmark_bars():
    bench_verify = _bench()
    pairs = bench_verify.load(bench_verify.PAIRS)
    assert len(pairs) >= 200 and sum(p["faithful"] for p in pairs) >= 100
    now = bench_verify.score(_rule(bench_verify), pairs)
    before = bench_verify.score(bench_verify.previous_rule, pairs)
    assert now["rejected_unfaithful"] >= 0.83 > before["rejected_unfaithful"]
    assert now["accepted_faithful"] >= 0.95 > before["accepted_faithful"]
    caught, total = map(int, now["by_kind"]["number"].split("/"))
    assert caught == total  # every new number is caught
    for kind, least in (("claim", 9), ("unit", 18), ("name", 18)):
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
    assert now["accepted_faithful"] >= 0.68 > before["accepted_faithful"]
    assert now["rejected_unfaithful"] >= 0.63


@pytest.mark.slow
def test_paraphrase_benchmark_prints_both_confusion_matrices():
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_verify.py"), "--pairs", str(_bench().PAIRS)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-1000:]
    assert "previous (overlap >= 0.6)" in r.stdout and "current" in r.stdout and "unfaithful rejected" in r.stdout
