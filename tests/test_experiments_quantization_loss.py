"""quantization-loss on a real packaged Whisper model (quick mode), through the CLI."""

from __future__ import annotations

import json
import struct
import time

import jsonschema
import pytest
from click.testing import CliRunner

from ramble2post import experiments
from ramble2post.experiments.quantization_loss import _windows, reading


def test_windows_share_reference_words_by_what_was_heard():
    segs = [(0.0, 10.0, "a b c d"), (10.0, 25.0, "e f g h"), (25.0, 40.0, "i j k l")]
    w = _windows(segs, "one two three four five six seven eight nine ten eleven twelve", 40.0, 4)
    assert [x["start"] for x in w] == [0.0, 25.0]
    assert w[0]["end"] == 25.0 and w[1]["end"] == 40.0
    assert w[0]["text"].split() == "one two three four five six seven eight".split()
    assert _windows(segs, "x " * 12, 40.0, 1)[0]["start"] == 0.0 and len(_windows(segs, "x " * 12, 40.0, 1)) == 1


def test_reading_is_templated_from_the_numbers():
    res = {
        "int8": {
            "same_top1_pct": 99.5,
            "mean_KLD": 0.0021,
            "ppl_ratio": 1.004,
            "model_MB": 42.0,
            "weight_rel_error": 0.01,
        },
        "int4": {"same_top1_pct": 60.0, "mean_KLD": 2.0, "ppl_ratio": 9.0, "model_MB": 24.0, "weight_rel_error": 0.2},
        "int4-g32": {
            "same_top1_pct": 90.0,
            "mean_KLD": 0.25,
            "ppl_ratio": 1.2,
            "model_MB": 26.0,
            "weight_rel_error": 0.1,
        },
        "int2": {"same_top1_pct": 1.0, "mean_KLD": 10.0, "ppl_ratio": 4e4, "model_MB": 15.0, "weight_rel_error": 0.8},
        "fp16": {"same_top1_pct": 100.0, "mean_KLD": 0.0, "ppl_ratio": 1.0, "model_MB": 78.0, "weight_rel_error": 0.0},
    }
    text = reading({"fp32_model_MB": 151.0, "tokens": 227, "audio_seconds": 57.0}, res, model_name="tiny.en")
    for expected in (
        "99.5%",
        "0.0021",
        "x1.004",
        "42 MB instead of 151 MB",
        "int4-g32 cut its KL divergence 8.0x",
        "breaks down",
        "already fp16",
        "227 tokens",
    ):
        assert expected in text, (expected, text)


@pytest.mark.slow
def test_quick_run_on_tiny_en_meets_the_acceptance_checks(tmp_path):
    from ramble2post.cli.main import cli

    t0 = time.perf_counter()
    out = tmp_path / "ql"
    r = CliRunner().invoke(
        cli,
        [
            "experiments",
            "run",
            "quantization-loss",
            "--quick",
            "--json",
            "-o",
            str(out),
            "--model",
            "tiny.en",
            "--device",
            "cpu",
        ],
    )
    wall = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    data = json.loads((out / "result.json").read_text())
    jsonschema.validate(data, experiments.RESULT_SCHEMA)
    assert data["experiment"] == "quantization-loss" and data["device"] == "cpu"
    assert data["models"][0]["name"] == "tiny.en" and len(data["models"][0]["sha256"]) == 64
    rows = {row[0]: dict(zip(data["columns"], row)) for row in data["rows"]}
    s = data["summary"]
    assert rows["fp32"]["mean_KLD"] == 0 and rows["fp32"]["same_top1_pct"] == 100
    # acceptance: int8 keeps the top token >= 95%; KLD and perplexity ratio rise 8 -> 4 -> 3 -> 2 bits
    assert rows["int8"]["same_top1_pct"] >= 95
    kld = [rows[f"int{b}"]["mean_KLD"] for b in (8, 4, 3, 2)]
    ppl = [rows[f"int{b}"]["ppl_ratio"] for b in (8, 4, 3, 2)]
    assert kld == sorted(kld) and ppl == sorted(ppl) and s["monotonic_channel"] is True
    # group-wise int4 beats per-channel int4 on KLD
    assert rows["int4-g32"]["mean_KLD"] < rows["int4"]["mean_KLD"]
    assert rows["int4-g128"]["mean_KLD"] < rows["int4"]["mean_KLD"]
    assert rows["int8"]["model_MB"] < rows["fp16"]["model_MB"] < rows["fp32"]["model_MB"]
    assert rows["int8"]["WER_pct"] is not None and rows["int4"]["delta_WER_pp"] > rows["int8"]["delta_WER_pp"]
    assert s["int8_fp16_int8_survivors"] == 256 and s["int16_fp16_int16_casualties"] == 53248
    assert data["reading"].startswith("With int8 weights, Whisper tiny.en")
    png = (out / "quantization-loss.png").read_bytes()
    assert struct.unpack(">II", png[16:24])[0] >= 800 and len(png) > 20_000
    assert (out / "result.csv").read_text().count("\n") == len(rows) + 1
    assert wall < 900, f"quick mode took {wall:.0f} s"  # ~40 s on 2 idle cores; generous for shared CI
