"""speculative-decoding and repeated-sampling: maths, detection that survives mishearing, real runs (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from test_blog_common import transcript_of

from ramble2post import experiments
from ramble2post.experiments.base import Context, ReaderTable
from ramble2post.experiments.detect import detect_experiments
from ramble2post.experiments.speculative import Proposal, acceptance
from ramble2post.records import Transcript

REPO = Path(__file__).resolve().parent.parent
WINDOWS = REPO / "tests" / "data" / "detect_windows" / "windows.jsonl"


# ------------------------------------------------------------------ maths


def test_acceptance_counts_leading_matches_only():
    seq = [1, 2, 3, 4, 5, 6, 7, 8]
    props = [
        Proposal(position=3, tokens=(4, 5, 9, 7)),  # 2 accepted, then a miss (later matches do not count)
        Proposal(position=5, tokens=()),  # nothing drafted: a step without a draft
        Proposal(position=6, tokens=(7, 8, 9, 9)),  # 2 accepted; the 2 past the end are not counted
    ]
    a = acceptance(props, seq)
    assert (a.steps, a.drafted, a.accepted) == (3, 6, 4)
    assert a.rate == pytest.approx(4 / 6)
    assert a.accepted_per_step == pytest.approx(4 / 3)


# -------------------------------------------------------------- detection


def _transcript(texts: list[str]) -> Transcript:
    return transcript_of(texts, seconds=8.0)


def test_batching_heard_as_matching_next_to_a_throughput_claim_is_detected():
    # the new user's clip: an out-of-the-box tokens/s figure against one more than ten times higher,
    # "batching" transcribed as "matching"
    t = _transcript(
        [
            "So I tried the model on my own box.",
            "Out of the box I was getting about twenty tokens per second.",
            "And then with matching turned on it went to two hundred and fifty tokens per second.",
            "Which is kind of wild.",
        ]
    )
    found = {d.experiment: d for d in detect_experiments(transcript=t)}
    assert set(found) == {"batching-speedup"}
    assert any(e.segment_id == 2 for e in found["batching-speedup"].evidence)


def test_semantic_layer_finds_what_the_rules_miss():
    # no jargon, no trigger word: only the meaning says "batching multiplies throughput"
    text = "One request alone gets thirty tokens a second, but eight at a time gets close to two hundred in total."
    assert "batching-speedup" not in {d.experiment for d in detect_experiments(transcript=text, semantic=False)}
    dets = {d.experiment: d for d in detect_experiments(transcript=text)}
    assert set(dets) == {"batching-speedup"}
    assert dets["batching-speedup"].evidence[0].label.startswith("semantic:")


@pytest.mark.parametrize(
    "text, name",
    [
        ("Speculated decoding gives you like three x faster generation, and the output is identical.", None),
        ("Spectacular decoding, where a little model drafts tokens and the big one verifies them, is lossless.", None),
        ("The key value cash just keeps growing the longer the conversation goes.", "kv-cache-growth"),
        ("Sampling the same prompt a hundred times costs way less than a hundred separate calls.", None),
    ],
)
def test_misheard_jargon(text, name):
    expected = name or ("speculative-decoding" if "decoding" in text else "repeated-sampling")
    assert expected in {d.experiment for d in detect_experiments(transcript=text)}


def test_mentions_without_claims_detect_nothing():
    for text in (
        "We baked a batch of cookies for the meetup, and they were gone in ten minutes.",
        "I need to get some cash out before the weekend, the machine at the bank was broken.",
        "The stock market is pure speculation at this point, nobody knows anything.",
        "We took a sample of people at the conference and asked what they liked.",
    ):
        assert detect_experiments(transcript=text) == [], text


@pytest.mark.slow
def test_labelled_windows_precision_and_recall():
    rows = [json.loads(x) for x in WINDOWS.read_text().splitlines() if x.strip()]
    assert len(rows) >= 60 and sum(not r["expected"] for r in rows) >= 20
    names = sorted({n for r in rows for n in r["expected"]})
    assert set(names) == {
        "quantization-loss",
        "batching-speedup",
        "kv-cache-growth",
        "speculative-decoding",
        "repeated-sampling",
        "low-precision-matmul",
        "lora-finetune",
    }
    exps = [experiments.get(n) for n in names]  # only the real ones (other tests register fakes)
    preds = [{d.experiment for d in detect_experiments(transcript=r["text"], experiments=exps)} for r in rows]
    for n in names:
        tp = sum(n in p and n in r["expected"] for r, p in zip(rows, preds))
        fp = sum(n in p and n not in r["expected"] for r, p in zip(rows, preds))
        fn = sum(n not in p and n in r["expected"] for r, p in zip(rows, preds))
        assert tp / (tp + fp) >= 0.9, (n, tp, fp)
        assert tp / (tp + fn) >= 0.85, (n, tp, fn)


# ----------------------------------------------------- speculative decoding


@pytest.mark.slow
def test_greedy_output_is_identical_with_and_without_prompt_lookup():
    from llama_cpp import Llama

    from ramble2post.experiments import speculative as spec
    from ramble2post.experiments.speculative_decoding import PROMPTS, _chat_tokens, _generate
    from ramble2post.structure import llm as llm_mod

    _name, path, *_ = llm_mod.resolve_gguf("smollm2")
    kw = dict(model_path=str(path), n_ctx=1024, n_threads=1, n_batch=512, verbose=False, seed=0, flash_attn=True)
    plain = Llama(**kw)
    counter = spec.CountingDraft(spec.prompt_lookup(draft=10))
    fast = spec.SpeculativeLlama(**kw, draft_model=counter)
    try:
        prompt = _chat_tokens(plain, PROMPTS["rewrite"])
        a = _generate(plain, prompt, 48, time.perf_counter)
        b = _generate(fast, prompt, 48, time.perf_counter)
    finally:
        plain.close()
        fast.close()
    assert len(a.tokens) >= 32
    assert a.tokens == b.tokens  # lossless: token for token
    acc = acceptance(counter.proposals, list(prompt) + list(b.tokens))
    assert acc.accepted > 0 and acc.steps < len(b.tokens)  # drafts were accepted: fewer passes than tokens


def _run_cli(name: str, *params: str) -> dict:
    args = ["experiments", "run", name, "--quick", "--json"]
    for p in params:
        args += ["--param", p]
    from ramble2post.cli.main import cli

    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # progress goes to stderr


@pytest.mark.slow
def test_speculative_decoding_quick_run_is_a_valid_result():
    t0 = time.perf_counter()
    d = _run_cli("speculative-decoding", "max_tokens=40", "texts=rewrite")
    assert time.perf_counter() - t0 < 120
    jsonschema.validate(d, experiments.RESULT_SCHEMA)
    res = experiments.Result.from_dict(d)
    assert res.summary["all_identical"] is True
    methods = res.column("method")
    assert "plain greedy" in methods and any(m.startswith("prompt lookup") for m in methods)
    assert any(m.startswith("draft model") for m in methods)
    verify = {r[2] + 1: r[14] for r in res.rows if r[0] == "verify pass"}
    assert verify[1] == 1.0 and verify[11] > 1.0  # a forward pass over 11 tokens costs more than one
    exp = experiments.get("speculative-decoding")
    table = exp.reader_table(res)
    assert isinstance(table, ReaderTable) and "identical" in table.finding
    assert "speed-up" in exp.plot_alt(res) or "faster" in exp.plot_alt(res) or "x plain" in exp.plot_alt(res)
    png = exp.plot([res])["speculative-decoding.png"]
    assert png[:4] == b"\x89PNG"


# -------------------------------------------------------- repeated sampling


@pytest.mark.slow
def test_repeated_sampling_shares_the_prompt():
    exp = experiments.get("repeated-sampling")
    res = exp.measure(Context(quick=True, params={"samples": [1, 4, 8], "gen_tokens": 12, "single_runs": 1}))
    jsonschema.validate(res.to_dict(), experiments.RESULT_SCHEMA)
    rows = {r[0]: dict(zip(res.columns, r)) for r in res.rows}
    # 8 samples sharing the prompt cost less than 8 separate runs, and the cache holds the prompt once
    assert rows[8]["shared_s"] < rows[8]["independent_s"]
    assert rows[8]["cost_per_sample"] < 1.0
    assert rows[8]["kv_shared_MiB"] < rows[8]["kv_independent_MiB"]
    assert rows[8]["kv_measured_MiB"] == pytest.approx(rows[8]["kv_shared_MiB"], rel=0.05)
    assert rows[8]["distinct_samples"] > 1  # sampled, not eight copies of one answer
    table = exp.reader_table(res)
    assert len(table.rows) == 3 and "separate runs" in table.finding
    assert exp.plot([res])["repeated-sampling.png"][:4] == b"\x89PNG"
