"""low-precision-matmul and lora-finetune: the maths, the kernel names, real quick runs (slow), a GPU column."""

from __future__ import annotations

import jsonschema
import pytest
import torch
from torch import nn

from ramble2post import experiments
from ramble2post.experiments.base import Context, ReaderTable
from ramble2post.experiments.detect import detect_experiments
from ramble2post.experiments.lora import LoRALinear, add_lora, trainable
from ramble2post.experiments.lowprec_paths import cpu_flags, describe_path, published_peak

# ------------------------------------------------------------------- pure parts


def test_lora_layer_starts_as_the_frozen_layer_and_trains_only_r_times_in_plus_out():
    torch.manual_seed(0)
    base = nn.Linear(32, 48)
    x = torch.randn(5, 32)
    want = base(x).detach()
    layer = LoRALinear(base, rank=4)
    assert torch.allclose(layer(x), want)  # B starts at zero: no change before training
    assert [p.numel() for p in trainable(layer)] == [4 * 32, 48 * 4]
    layer.b.data.fill_(0.1)
    assert not torch.allclose(layer(x), want)  # the update reaches the output once B moves


def test_add_lora_wraps_every_linear_and_freezes_the_rest():
    net = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16)))
    assert add_lora(net, rank=2) == 2
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    assert names and all(n.endswith((".a", ".b")) for n in names)


def test_kernel_names_are_read_from_the_libraries_verbose_lines():
    amx = "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512_amx,undef,src:bf16,,,256x256:256x256,0.28"
    assert describe_path([amx]) == "oneDNN brg_matmul:avx10_1_512_amx, AMX tiles"
    avx = "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512,undef,src:f16,,,256x256:256x256,0.2"
    assert describe_path([avx]).endswith("AVX-512")
    s8 = "onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_s8::blocked:ab:f0 wei_s8,,,32x256:256x256,9.3"
    assert "int8 in" in describe_path([s8])
    assert describe_path(["MKL_VERBOSE SGEMM(N,N,64,64,64,...) 305.74us CNR:OFF"]).startswith("oneMKL SGEMM")
    assert "no oneDNN" in describe_path(["something else"])


def test_published_peaks_match_gpu_names():
    assert published_peak("NVIDIA H100 80GB HBM3")[0] == "H100"
    assert published_peak("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert published_peak("NVIDIA H200")[1]["bf16"] > published_peak("NVIDIA A100-SXM4-40GB")[1]["bf16"]
    assert published_peak("NVIDIA GeForce GTX 1080") is None


# -------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("All those teraflops on the spec sheet are the tensor cores doing bf16 matmuls.", "low-precision-matmul"),
        (
            "The tensor course only help when you multiply matrices, not when you decode one token.",
            "low-precision-matmul",
        ),
        ("On the Xeon the AMX units do the bf16 matrix multiply.", "low-precision-matmul"),
        ("With Laura you only train two tiny matrices, so it fits on my laptop.", "lora-finetune"),
        ("I fine-tuned it with LoRA adapters at rank sixteen on a consumer GPU.", "lora-finetune"),
        ("Q Lora lets you fine tune a seven B model on one card.", "lora-finetune"),
    ],
)
def test_spoken_phrasings_find_the_new_experiments(text, name):
    assert name in {d.experiment for d in detect_experiments(transcript=text)}, text


@pytest.mark.parametrize(
    "text",
    [
        "Laura from the infra team said the build is fixed.",
        "Of course the core team will review it.",
        "Tensor parallelism splits every layer across the GPUs.",
        "Fine, tune in next week for part two.",
    ],
)
def test_near_words_find_neither(text):
    found = {d.experiment for d in detect_experiments(transcript=text)}
    assert not found & {"low-precision-matmul", "lora-finetune"}, (text, found)


# -------------------------------------------------------------------- real runs


def _check_common(exp, res) -> ReaderTable:
    jsonschema.validate(res.to_dict(), experiments.RESULT_SCHEMA)
    table = exp.reader_table(res)
    assert isinstance(table, ReaderTable) and len(table.rows) <= ReaderTable.MAX_ROWS
    assert table.finding and exp.plot_alt(res)
    png = exp.plot([res, res])[f"{exp.name}.png"]  # two machines' results side by side
    assert png[:4] == b"\x89PNG"
    return table


@pytest.mark.slow
def test_low_precision_matmul_quick_run_on_this_machine():
    exp = experiments.get("low-precision-matmul")
    res = exp.measure(Context(quick=True, params={"square": [256, 512], "reps": 2}))
    table = _check_common(exp, res)
    s = res.summary
    assert {"fp32", "bf16", "int8"} <= set(res.params["dtypes"])
    assert s["fp32_mm_speedup"] == pytest.approx(1.0)
    kinds = {(r[0], r[5]) for r in res.rows}
    assert ("matrix-vector", "bf16") in kinds and ("matrix-matrix", "int8") in kinds
    # where the machine cannot show something, the result says so in a row and a note, not an empty column
    by_dtype = {r[0]: r for r in table.rows}
    assert "not on this machine" in by_dtype["fp8"][-1]
    assert any(n.startswith("fp8:") for n in res.notes)
    if "amx_bf16" in cpu_flags():  # matrix units present: they must show on matrix-matrix, not on one token
        assert "AMX" in s["bf16_mm_path"]
        assert s["bf16_mm_speedup"] > 1.5
        assert s["bf16_mm_speedup"] > 1.5 * s["bf16_mv_speedup"]


@pytest.mark.slow
def test_lora_finetune_quick_run_shrinks_gradients_and_optimizer_state():
    exp = experiments.get("lora-finetune")
    res = exp.measure(Context(quick=True, whisper_model="tiny.en", params={"steps": 2}))
    _check_common(exp, res)
    rows = {r[0]: dict(zip(res.columns, r)) for r in res.rows}
    full, lora = rows["full"], rows["LoRA r=8"]
    assert lora["trainable_params"] < 0.05 * full["trainable_params"]
    assert lora["grad_bytes"] + lora["optimizer_bytes"] < (full["grad_bytes"] + full["optimizer_bytes"]) / 20
    assert lora["weight_bytes"] == pytest.approx(full["weight_bytes"], rel=0.05)  # the weights stay
    assert lora["activation_bytes"] > 0 and full["activation_bytes"] > 0
    for r in (full, lora):  # both learn the batch
        assert r["final_loss"] < r["first_loss"]
    assert res.summary["lora_r8_memory_saving"] > 1.2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the tensor-core column)")
def test_low_precision_matmul_on_cuda_names_tensor_cores():
    exp = experiments.get("low-precision-matmul")
    res = exp.measure(Context(device="cuda", quick=True, params={"square": [1024, 4096], "reps": 3}))
    s = res.summary
    assert "tensor cores" in s["bf16_mm_path"] and s["bf16_mm_speedup"] > 2
    assert "tf32" in res.params["dtypes"] and "fp8" in res.params["dtypes"]
    assert "published" in s["peak_source"] or "measured" in s["peak_source"]


def test_a_rerun_on_another_machine_chooses_its_own_dtypes():
    """A GPU rerun must add tf32/fp8: the dtypes one machine could run are never copied to another."""
    from ramble2post.publish.rerun import _params_for

    prior = [{"params": {"dtypes": ["fp32", "bf16", "fp16", "int8"], "square": [256, 512], "reps": 3}}]
    params = _params_for(experiments.get("low-precision-matmul"), prior)
    assert "dtypes" not in params and params["square"] == [256, 512]
