"""The structure quality benchmark runs, and its figures hold their bars (issues 11, 23, 24).

``scripts/bench_structure_quality.py`` scores drafts against the labelled gold set
(``tests/data/structure_gold/``). Two runs, as a user would run them:

- every gold ramble with ``--llm none`` (the role model and key phrases alone, ~1 min);
- the bundled 13-minute ramble with the default model (Qwen2.5-Coder-1.5B judging the
  candidate passages; rewrites included).

Bars sit well below the figures measured here (docs/STRUCTURE_QUALITY.md, beside each bar), so
that another CPU's rounding of the model's logits does not cross them; they still fail on the
code before issue 23 (role model thresholds at 0.99, one sentence per item: recall 0.30 on the
26 gold rambles, confident precision 0.66).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "scripts" / "bench_structure_quality.py"


def bench(tmp_path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, str(BENCH), "--json", str(out), *args], capture_output=True, text=True, timeout=2400
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "recall" in r.stdout and "all:" in r.stdout  # the table a person reads
    return json.loads(out.read_text())


@pytest.mark.slow
def test_gold_set_without_llm_holds_the_bars(tmp_path):
    data = bench(tmp_path, "--llm", "none")
    t = data["totals"]
    assert t["rambles"] >= 25 and sum(r["register"] == "real" for r in data["rambles"]) >= 10
    assert t["confident_precision"] >= 0.75  # without a judge only sure items are shown
    assert t["honesty"] >= 0.85  # roles the ramble lacks left to the author
    assert t["junk"] == 0
    assert t["layer1_complete"] >= t["rambles"] - 1  # layer 1 a complete statement
    assert t["titles_misheard"] <= 1


@pytest.mark.slow
def test_bundled_ramble_with_the_default_model(tmp_path):
    from ramble2post.config import DEFAULT_LLM

    data = bench(tmp_path, "--only", "explain-format")
    t, (r,) = data["totals"], data["rambles"]
    assert data["llm"] == DEFAULT_LLM
    assert t["junk"] == 0 and t["honesty"] == 1.0
    assert t["ai_verified"] == t["ai_items"]  # every model sentence shown passed verification
    assert r["filled_right"] >= 4  # of the 6 roles it has (measured 5; 4 before issue 23)
    assert t["confident_precision"] >= 0.75
    assert t["titles_on_topic"] == 1 and t["layer1_on_topic"] == 1 and t["layer1_complete"] == 1
    assert t["titles_misheard"] == 0
