"""Quantization math: error bounds, group-wise vs per-channel, monotonic in bits, byte counts, casts."""

from __future__ import annotations

import pytest
import torch

from ramble2post.experiments import quant


@pytest.fixture()
def gen():
    return torch.Generator().manual_seed(0)


def test_int8_per_channel_error_is_within_half_a_step(gen):
    w = torch.randn(64, 256, generator=gen)
    q, scales = quant.quantize_per_channel(w, 8)
    assert q.dtype == torch.int8 and scales.shape == (64, 1)
    assert int(q.abs().max()) <= 127
    err = (quant.dequantize_per_channel(q, scales) - w).abs()
    # round-to-nearest: every weight is within half a quantization step of its row's grid
    assert bool((err <= scales / 2 + 1e-7).all())
    assert quant.relative_error(w, quant.round_trip(w, "int8")) < 0.01


def test_groupwise_beats_per_channel_on_heavy_tailed_weights(gen):
    # Student-t (df=2) rows: a few huge outliers set the per-channel scale and crush the rest
    w = torch.distributions.StudentT(2.0).sample((128, 512))
    e_chan = quant.relative_error(w, quant.round_trip(w, "int4"))
    e_g128 = quant.relative_error(w, quant.round_trip(w, "int4-g128"))
    e_g32 = quant.relative_error(w, quant.round_trip(w, "int4-g32"))
    assert e_g32 < e_g128 < e_chan


@pytest.mark.parametrize("family", ["", "-g32"])
def test_error_grows_monotonically_as_bits_drop(gen, family):
    w = torch.randn(96, 256, generator=gen)
    errs = [quant.relative_error(w, quant.round_trip(w, f"int{b}{family}")) for b in (8, 6, 5, 4, 3, 2)]
    assert all(a < b for a, b in zip(errs, errs[1:])), errs


def test_groupwise_pads_rows_that_do_not_divide(gen):
    w = torch.randn(8, 100, generator=gen)  # 100 is not a multiple of 32
    q, scales = quant.quantize_groupwise(w, 4, 32)
    assert scales.shape == (8, 4) and q.shape == (8, 128)
    back = quant.dequantize_groupwise(q, scales, 100)
    assert back.shape == w.shape
    assert quant.relative_error(w, back) < 0.2


def test_zero_rows_do_not_divide_by_zero():
    w = torch.zeros(4, 64)
    w[1] = 1.0
    for s in ("int8", "int4-g32", "int2"):
        out = quant.round_trip(w, s)
        assert torch.isfinite(out).all() and torch.equal(out[0], w[0])


def test_float_round_trips():
    w = torch.tensor([[1.0 + 2**-12, 3.0, 65504.0, 1e-8]])
    assert quant.round_trip(w, "fp16")[0, 0] == 1.0  # 2^-12 is below fp16's 10-bit mantissa step at 1.0
    assert quant.round_trip(w, "bf16")[0, 1] == 3.0
    assert quant.relative_error(w, quant.round_trip(w, "bf16")) > quant.relative_error(w, quant.round_trip(w, "fp16"))


def test_exhaustive_casts():
    assert quant.int8_fp16_survivors() == 256
    bad, first = quant.int16_fp16_casualties()
    # fp16 holds every integer up to 2048; above, only every 2nd/4th/8th/16th one survives
    survivors = 1 + 2 * (2048 + 1024 + 1024 + 1024) + 1023 + 1024  # 0, ±(1..2048), ±(steps of 2,4,8), 16s
    assert first == 2049
    assert bad == 65536 - survivors == 53248


def test_get_scheme_parses_and_rejects():
    assert quant.get_scheme("int5-g64").group_size == 64
    assert quant.get_scheme("int4").family == "channel"
    with pytest.raises(ValueError):
        quant.get_scheme("int1")
    with pytest.raises(ValueError):
        quant.get_scheme("fp7")


def _tiny_whisper():
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=16,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=300,
        n_text_ctx=16,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=1,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    with torch.no_grad():  # Whisper leaves the decoder's positional embedding uninitialised (torch.empty)
        model.decoder.positional_embedding.normal_()
    return model


def test_apply_scheme_works_on_a_copy_and_counts_bytes():
    model = _tiny_whisper()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd8, s8 = quant.apply_scheme(model, "int8")
    sd4, s4 = quant.apply_scheme(model, "int4-g32")
    # the model itself is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    keys = quant.quantizable_weights(model)
    assert "decoder.token_embedding.weight" in keys
    assert "encoder.conv1.weight" not in keys
    assert not torch.equal(sd8["decoder.token_embedding.weight"], before["decoder.token_embedding.weight"])
    assert torch.equal(sd8["encoder.conv1.weight"], before["encoder.conv1.weight"])
    total = sum(v.numel() for v in before.values() if v.is_floating_point())
    assert s8.n_params_total == total
    # int8: one byte per quantized weight + 2-byte scale per row; the rest stays 4 bytes
    rows = sum(before[k].shape[0] for k in keys)
    assert s8.model_bytes == s8.n_params_quantized + 2 * rows + 4 * (total - s8.n_params_quantized)
    assert s4.model_bytes < s8.model_bytes
    assert s8.mean_rel_error < s4.mean_rel_error
    model.load_state_dict(sd8)  # loads cleanly


def test_excluding_the_embedding_leaves_it_exact():
    model = _tiny_whisper()
    sd, stats = quant.apply_scheme(model, "int4", include_embedding=False)
    assert torch.equal(sd["decoder.token_embedding.weight"], model.state_dict()["decoder.token_embedding.weight"])
    assert stats.n_tensors == len(quant.quantizable_weights(model, include_embedding=False))
