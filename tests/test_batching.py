"""batching-speedup: roofline maths, detection phrasings, and a quick run on the real small models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ramble2post.experiments import roofline as rl
from ramble2post.experiments.batching import BatchingSpeedup, speedups
from ramble2post.experiments.detect import detect_experiments

REPO = Path(__file__).resolve().parent.parent
SAMPLE_1MIN_TXT = REPO / "samples" / "explain-format-ramble-1min.txt"
GPU_TALK = REPO.parent / "shared" / "seeds" / "gpu-talk-transcript.txt"


def _hit(text: str) -> bool:
    return any(
        d.experiment == "batching-speedup" for d in detect_experiments(transcript=text, experiments=[BatchingSpeedup()])
    )


# ------------------------------------------------------------------ maths


def test_matmul_bytes_flops_and_intensity():
    # [1, 512] @ [512, 2048] fp32: weights dominate, 2 FLOPs per 4-byte weight -> ~0.5 FLOP/byte
    flops = rl.matmul_flops(batch=1, n=2048, k=512)
    nbytes = rl.matmul_bytes(batch=1, n=2048, k=512, bytes_per_element=4)
    assert flops == 2 * 2048 * 512
    assert nbytes == 4 * (2048 * 512 + 512 + 2048)
    assert rl.arithmetic_intensity(flops=flops, bytes_moved=nbytes) == pytest.approx(0.4988, abs=1e-3)
    # batch 64 reads the same weights for 64x the work
    ai64 = rl.arithmetic_intensity(
        flops=rl.matmul_flops(batch=64, n=2048, k=512),
        bytes_moved=rl.matmul_bytes(batch=64, n=2048, k=512, bytes_per_element=4),
    )
    assert 25 < ai64 < 32
    with pytest.raises(ValueError):
        rl.arithmetic_intensity(flops=1, bytes_moved=0)


def test_mbu_ridge_and_compute_bound_batch():
    # 100 MB read in 10 ms = 10 GB/s; on a 20 GB/s machine that is 50 %
    assert rl.mbu(bytes_per_step=100e6, seconds_per_step=0.010, peak_bytes_per_s=20e9) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        rl.mbu(bytes_per_step=1, seconds_per_step=0, peak_bytes_per_s=1)
    ridge = rl.ridge_intensity(peak_flops_per_s=1000e12, peak_bytes_per_s=3.35e12)  # ~H100 bf16 dense / HBM3
    assert ridge == pytest.approx(298.5, rel=1e-3)
    assert rl.compute_bound_batch(ridge_flop_per_byte=ridge, bytes_per_weight=2) == pytest.approx(298.5, rel=1e-3)
    assert rl.compute_bound_batch(ridge_flop_per_byte=3.0, bytes_per_weight=4) == pytest.approx(6.0)


def test_measured_knee():
    pts = [rl.MatmulPoint("x", b, 8, 8, 1, s, 1, 1) for b, s in ((1, 1.0), (2, 1.1), (4, 1.5), (8, 2.4), (16, 5.0))]
    assert rl.measured_knee(pts) == 8
    assert rl.measured_knee(pts[:3]) is None
    assert rl.measured_knee(pts[1:]) is None  # no batch-1 baseline


def test_time_call_excludes_warmup_and_clock_switch():
    calls = []
    times = rl.time_call(lambda: calls.append(1), warmup=3, reps=4)
    assert len(calls) == 7 and len(times) == 4 and all(t >= 0 for t in times)
    old = rl.set_clock("cpu")
    try:
        assert rl.now() == pytest.approx(__import__("time").process_time(), abs=0.05)
    finally:
        rl.set_clock(old)
    with pytest.raises(ValueError):
        rl.set_clock("sundial")


def test_bandwidth_benchmark_is_sane():
    bw = rl.measure_bandwidth(nbytes=32 * 2**20, reps=3)
    assert bw.buffer_bytes == 32 * 2**20
    assert 1e8 < bw.copy_bytes_per_s < 1e13 and 1e8 < bw.read_bytes_per_s < 1e13
    assert bw.peak_bytes_per_s == max(bw.copy_bytes_per_s, bw.read_bytes_per_s)


def test_matmul_sweep_streams_weights_and_counts_layers():
    pts = rl.matmul_sweep(label="t", n=256, k=128, batches=(1, 8), reps=2, min_stream_bytes=4 * 2**20)
    assert [p.batch for p in pts] == [1, 8]
    assert pts[0].layers == 32  # 4 MiB / (256*128*4 bytes)
    assert pts[1].intensity > pts[0].intensity
    assert pts[0].bytes_moved == 32 * rl.matmul_bytes(batch=1, n=256, k=128, bytes_per_element=4)


# -------------------------------------------------------------- detection

POSITIVE = [
    "If you batch it you get way more tokens per second.",
    "Batching is basically free until you run out of compute.",
    "A podcast said they went from a hundred to thirteen hundred tokens per second just by batching.",
    "Throughput goes way up with batched inference.",
    "Decoding is memory bound, it's a matrix vector product every step.",
    "That's what continuous batching in vLLM does.",
    "With a batch size of sixteen the GPU finally does some work.",
    "How many tokens a second can the laptop do if we decode several sequences in one batch?",
    "Serving lots of users at once, you batch them together.",
    "What's the TPS on this thing, and does batching help?",
    "The roofline says you're bandwidth bound at batch one.",
]


@pytest.mark.parametrize("phrase", POSITIVE)
def test_batching_phrasings_are_detected(phrase):
    assert _hit(phrase), phrase


NEGATIVE = [
    "I baked a batch of cookies this weekend.",
    "We process the invoices in batches overnight.",
    "The highway has a lot of throughput at rush hour.",
    "My memory of that day is fuzzy.",
    "If you go int four you save a lot of memory.",
    "It's basically free, the museum on Sundays.",
]


@pytest.mark.parametrize("phrase", NEGATIVE)
def test_unrelated_phrasings_are_not_detected(phrase):
    assert not _hit(phrase), phrase


def test_sample_ramble_detects_nothing():
    assert not _hit(SAMPLE_1MIN_TXT.read_text(encoding="utf-8"))


@pytest.mark.skipif(not GPU_TALK.exists(), reason="shared seed transcript not present")
def test_gpu_talk_detects_batching_with_evidence():
    from ramble2post.records import Segment

    segs = []
    for line in GPU_TALK.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\[(\d+):(\d+):([\d.]+) --> (\d+):(\d+):([\d.]+)\]\s*(.*)", line)
        if m:
            a = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
            b = int(m[4]) * 3600 + int(m[5]) * 60 + float(m[6])
            segs.append(Segment(id=len(segs), start=a, end=b, text=m[7]))
    det = [d for d in detect_experiments(transcript=segs, experiments=[BatchingSpeedup()])]
    assert det and det[0].experiment == "batching-speedup"
    quotes = " ".join(e.quote.lower() for e in det[0].evidence)
    assert "matrix vector" in quotes or "memory bandwidth" in quotes
    assert all(e.end >= e.start for e in det[0].evidence)


# ------------------------------------------------------------- real run


@pytest.mark.slow
def test_quick_run_on_real_models(tmp_path):
    import jsonschema

    from ramble2post import experiments
    from ramble2post.experiments.base import Context, save_result

    exp = experiments.get("batching-speedup")
    ctx = Context(
        quick=True,
        output_dir=tmp_path,
        params={"batches": (1, 4, 8), "steps": 8, "rounds": 2, "roofline_batches": (1, 16)},
    )
    res = save_result(exp.measure(ctx), tmp_path)
    d = json.loads((tmp_path / "result.json").read_text())
    jsonschema.validate(d, experiments.RESULT_SCHEMA)
    parts = {r[0] for r in res.rows}
    assert {"peak", "llm (llama.cpp)", "whisper decoder (torch)", "roofline fp32"} <= parts
    for part in ("llm (llama.cpp)", "whisper decoder (torch)"):
        sp = speedups(res, part)
        assert sp[1] == pytest.approx(1.0)
        # batching raises throughput: at the largest batch, and never falls far below batch 1 on the way
        # (quick mode times 8 steps x 2 rounds; on 2 cores shared with other jobs batch 4 of llama.cpp
        # measured 0.93-0.96x, while batch 8 stayed above 1.1x)
        assert sp[max(sp)] > 1.0 and min(sp.values()) > 0.8, (part, sp)
    for r in res.rows:
        row = dict(zip(res.columns, r))
        if row["part"] != "peak" or row["GB_per_s"] is not None:
            assert row["MBU_pct"] is not None and row["MBU_pct"] > 0, row
    assert {m.role for m in res.models} == {"llm", "whisper"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", m.sha256) for m in res.models)
    png = tmp_path / "batching-speedup.png"
    assert png.stat().st_size > 20_000
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 800 and im.size[1] > 300
    assert "tokens/s" in res.reading


def test_list_params_accept_cli_spellings():
    from ramble2post.errors import ExperimentError
    from ramble2post.experiments.batching import int_list, str_list

    assert int_list([1, 2, 4], "b") == [1, 2, 4]
    assert int_list("1,2, 4", "b") == [1, 2, 4]
    assert int_list(8, "b") == [8]
    assert str_list("llm,whisper") == ["llm", "whisper"]
    assert str_list(("roofline",)) == ["roofline"]
    with pytest.raises(ExperimentError, match="list of integers"):
        int_list("a,b", "batches")


def test_batches_without_one_is_a_clear_error():
    from ramble2post.errors import ExperimentError
    from ramble2post.experiments.base import Context

    with pytest.raises(ExperimentError, match="must include 1"):
        BatchingSpeedup().run(Context(params={"batches": [2, 4]}))
