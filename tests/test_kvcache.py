"""kv-cache-growth: KV arithmetic, detection phrasings, and shapes vs real allocations (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ramble2post.experiments.decode_bench import kv_size_from_log
from ramble2post.experiments.detect import detect_experiments
from ramble2post.experiments.kvcache import KVCacheGrowth, diff_pct, fits_tokens, kv_bytes, layouts

REPO = Path(__file__).resolve().parent.parent
SAMPLE_1MIN_TXT = REPO / "samples" / "explain-format-ramble-1min.txt"


def _hit(text: str) -> bool:
    return any(
        d.experiment == "kv-cache-growth" for d in detect_experiments(transcript=text, experiments=[KVCacheGrowth()])
    )


# ------------------------------------------------------------------ maths


def test_kv_bytes_known_models():
    # SmolLM2-135M: 30 layers, 3 KV heads of 64, f16 -> 23,040 bytes per token
    assert kv_bytes(n_layer=30, n_kv_heads=3, head_dim=64, bytes_per_element=2, tokens=1) == 23_040
    # Llama-2-7B (MHA, 32 layers, 32 heads of 128, f16): 0.5 MiB per token, 2 GiB at 4096 tokens
    per_tok = kv_bytes(n_layer=32, n_kv_heads=32, head_dim=128, bytes_per_element=2, tokens=1)
    assert per_tok == 512 * 1024
    assert kv_bytes(n_layer=32, n_kv_heads=32, head_dim=128, bytes_per_element=2, tokens=4096) == 2 * 2**30
    # linear in tokens and in batch
    assert kv_bytes(n_layer=2, n_kv_heads=2, head_dim=4, bytes_per_element=2, tokens=10, batch=3) == 3 * 10 * 64


def test_layouts_gqa_mqa():
    assert layouts(8, 8) == [("as shipped (MHA)", 8), ("GQA (4 queries per KV head)", 2), ("MQA", 1)]
    assert layouts(9, 3) == [("as shipped (GQA 3:1)", 3), ("MHA", 9), ("MQA", 1)]
    assert layouts(32, 1) == [("as shipped (MQA)", 1), ("MHA", 32), ("GQA (4 queries per KV head)", 8)]


def test_fits_tokens_and_diff():
    assert fits_tokens(free_bytes=1000, bytes_per_token=10, batch=1) == 100
    assert fits_tokens(free_bytes=1000, bytes_per_token=10, batch=2) == 50
    assert fits_tokens(free_bytes=1000, bytes_per_token=10, batch=2, fixed_bytes=300) == 20
    assert fits_tokens(free_bytes=100, bytes_per_token=10, batch=1, fixed_bytes=500) == 0
    assert diff_pct(110, 100) == pytest.approx(10.0)
    assert diff_pct(90, 100) == pytest.approx(-10.0)


def test_kv_size_parsed_from_llama_log():
    log = (
        "llama_kv_cache:        CPU KV buffer size =     5.62 MiB\n"
        "llama_kv_cache: size =    5.62 MiB (   256 cells,  30 layers,  1/1 seqs), K (f16):    2.81 MiB\n"
    )
    nbytes, cells = kv_size_from_log(log)
    assert cells == 256
    assert nbytes == pytest.approx(256 * 23_040, rel=0.01)
    assert kv_size_from_log("nothing here") is None


# -------------------------------------------------------------- detection

POSITIVE = [
    "The KV cache is the thing that actually fills up your memory.",
    "Every token you generate, the kv cash gets bigger.",  # transcription slip
    "The key value cache grows with every request.",
    "Grouped query attention cuts that by a factor of eight.",
    "Multi-query attention shares one key and value head.",
    "Llama three uses GQA for exactly this reason.",
    "As the context length grows, the HBM fills up.",
    "With long contexts you just run out of memory on the card.",
    "It's like a container that is filling up the HBM with keys and values.",
    "Think of the K V cache as per token state.",
]


@pytest.mark.parametrize("phrase", POSITIVE)
def test_kv_phrasings_are_detected(phrase):
    assert _hit(phrase), phrase


NEGATIVE = [
    "Clear your browser cache and try again.",
    "The context of this story matters.",
    "High bandwidth memory is expensive to make.",
    "My laptop ran out of battery.",
    "The shipping container arrived late.",
    "If you go int four you save a lot of memory.",
]


@pytest.mark.parametrize("phrase", NEGATIVE)
def test_unrelated_phrasings_are_not_detected(phrase):
    assert not _hit(phrase), phrase


def test_sample_ramble_detects_nothing():
    assert not _hit(SAMPLE_1MIN_TXT.read_text(encoding="utf-8"))


# ------------------------------------------------------------- real run


@pytest.mark.slow
def test_shapes_agree_with_allocations(tmp_path):
    import jsonschema

    from ramble2post import experiments
    from ramble2post.experiments.base import Context, save_result

    exp = experiments.get("kv-cache-growth")
    res = save_result(exp.measure(Context(quick=True, params={"check_steps": 8}, output_dir=tmp_path)), tmp_path)
    jsonschema.validate(json.loads((tmp_path / "result.json").read_text()), experiments.RESULT_SCHEMA)
    rows = [dict(zip(res.columns, r)) for r in res.rows]
    checks = [r for r in rows if r["kind"].startswith("check")]
    models = {r["model"].split(" ")[0] for r in checks}
    assert any(m.startswith("whisper") for m in models) and any("SmolLM2" in m for m in models)
    assert len(checks) >= 4
    for r in checks:
        assert r["measured_bytes"] > 0
        assert abs(r["diff_pct"]) <= 10.0, r
    assert res.summary["checks_agree_within_10pct"] is True
    # growth is linear in context and in batch
    g = [
        r
        for r in rows
        if r["kind"] == "growth" and r["model"].startswith("SmolLM2") and r["attention"].startswith("as shipped")
    ]
    one = {r["context_tokens"]: r["kv_bytes"] for r in g if r["batch"] == 1}
    eight = {r["context_tokens"]: r["kv_bytes"] for r in g if r["batch"] == 8}
    assert one[128] == 2 * one[64] and eight[64] == 8 * one[64]
    fits = {
        r["attention"]: r["fits_tokens"]
        for r in rows
        if r["kind"] == "fits" and r["batch"] == 1 and r["model"].startswith("SmolLM2")
    }
    assert fits["MQA"] == pytest.approx(3 * fits["as shipped (GQA 3:1)"], rel=0.01)
    assert fits["MHA"] == pytest.approx(fits["as shipped (GQA 3:1)"] / 3, rel=0.01)
    assert (tmp_path / "kv-cache-growth.png").stat().st_size > 20_000


RAMBLE_13MIN_TXT = REPO.parent / "shared" / "audio" / "explain-format-ramble.txt"


@pytest.mark.skipif(not RAMBLE_13MIN_TXT.exists(), reason="shared 13-min ramble transcript not present")
def test_users_own_ramble_about_the_kv_container_is_detected():
    det = detect_experiments(transcript=RAMBLE_13MIN_TXT.read_text(encoding="utf-8"), experiments=[KVCacheGrowth()])
    assert det and det[0].experiment == "kv-cache-growth"
    labels = {e.label for e in det[0].evidence}
    assert "KV cache" in labels
