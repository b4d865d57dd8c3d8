"""Convert a CTranslate2 Whisper model directory into an openai-whisper checkpoint.

The only real Whisper weights on the package registry are CTranslate2
(faster-whisper) float16 conversions. This module reads CTranslate2's
``model.bin`` and writes ``{"dims": ..., "model_state_dict": ...}``, the
checkpoint format that ``whisper.load_model(path)`` accepts.

``model.bin`` layout (binary version 6, little endian):

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 rank | u32 dims[rank] | u8 dtype | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is ``u16 length (including a trailing NUL) | bytes``.

Mapping notes (CTranslate2 -> openai-whisper):
- self-attention ``linear_0`` is q, k, v fused along the output dimension; its
  key bias is all zeros because openai-whisper's key projection has no bias.
- decoder cross-attention ``linear_0`` is the query, ``linear_1`` fused k, v,
  ``linear_2`` the output projection.
- ``decoder/projection/weight`` is an alias of the token embeddings (tied).
- positional encodings (sinusoids for the encoder, learned for the decoder)
  are stored as variables.
- a vocabulary of 51864 tokens means an English-only model (51865: multilingual).
- alignment heads (for word timestamps) live in ``config.json``.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ramble2post.errors import ModelError

SUPPORTED_BINARY_VERSIONS = (5, 6)
HEAD_DIM = 64  # every released Whisper model uses 64-dim attention heads

# CTranslate2 DataType enum -> numpy dtype (bfloat16 handled separately)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_CT2_BFLOAT16 = 5


@dataclasses.dataclass(frozen=True)
class CT2Model:
    """Variables of a CTranslate2 model, with aliases resolved."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    config: dict


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ModelError(f"CTranslate2 model file is truncated (wanted {n} bytes, got {len(data)})")
    return data


def _u(f: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, _read_exact(f, struct.calcsize(fmt)))[0]


def _str(f: BinaryIO) -> str:
    n = _u(f, "H")
    return _read_exact(f, n)[:-1].decode("utf-8")


def _read_variable(f: BinaryIO) -> tuple[str, np.ndarray]:
    name = _str(f)
    rank = _u(f, "B")
    shape = tuple(_u(f, "I") for _ in range(rank))
    dtype_id = _u(f, "B")
    n_bytes = _u(f, "I")
    raw = _read_exact(f, n_bytes)
    if dtype_id == _CT2_BFLOAT16:
        u16 = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        array = u16.view(np.float32)
    elif dtype_id in _CT2_DTYPES:
        array = np.frombuffer(raw, dtype=_CT2_DTYPES[dtype_id])
    else:
        raise ModelError(f"unsupported CTranslate2 dtype id {dtype_id} for variable {name}")
    return name, array.reshape(shape)


def read_ct2_model(model_dir: Path, model_bin: BinaryIO | None = None) -> CT2Model:
    """Parse ``model.bin`` (or the given stream) and ``config.json`` of a CTranslate2 model.

    model_dir: folder holding config.json (and model.bin unless ``model_bin`` is given).
    model_bin: an open binary stream to read instead of ``model_dir/model.bin``
        (used for models split into parts).
    """
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    except json.JSONDecodeError as e:
        raise ModelError(f"{config_path} is not valid JSON: {e}") from e
    own = model_bin is None
    f: BinaryIO = open(model_dir / "model.bin", "rb") if model_bin is None else model_bin  # noqa: SIM115
    try:
        version = _u(f, "I")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ModelError(f"unsupported CTranslate2 binary version {version}")
        spec = _str(f)
        revision = _u(f, "I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(_u(f, "I")):
            name, array = _read_variable(f)
            variables[name] = array
        for _ in range(_u(f, "I")):
            alias, target = _str(f), _str(f)
            variables[alias] = variables[target]
    except (struct.error, UnicodeDecodeError) as e:
        raise ModelError(f"CTranslate2 model file is corrupt: {e}") from e
    finally:
        if own:
            f.close()
    if spec != "WhisperSpec":
        raise ModelError(f"not a Whisper model: CTranslate2 spec is {spec!r}")
    return CT2Model(spec=spec, revision=revision, variables=variables, config=config)


def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for name in variables if (m := pattern.match(name)))


def whisper_dims(ct2: CT2Model) -> dict[str, int]:
    """openai-whisper ``ModelDimensions`` fields derived from the variable shapes."""
    v = ct2.variables
    n_audio_state = v["encoder/conv1/weight"].shape[0]
    n_text_state = v["decoder/embeddings/weight"].shape[1]

    def heads(prefix: str, state: int) -> int:
        key = f"{prefix}/num_heads"
        return int(v[key]) if key in v else state // HEAD_DIM

    return {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": heads("encoder", n_audio_state),
        "n_audio_layer": _count_layers(v, "encoder"),
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": heads("decoder", n_text_state),
        "n_text_layer": _count_layers(v, "decoder"),
    }


def _linear(sd: dict, dst: str, v: dict, src: str, *, bias: bool = True) -> None:
    sd[f"{dst}.weight"] = v[f"{src}/weight"]
    if bias:
        sd[f"{dst}.bias"] = v[f"{src}/bias"]


def _norm(sd: dict, dst: str, v: dict, src: str) -> None:
    sd[f"{dst}.weight"] = v[f"{src}/gamma"]
    sd[f"{dst}.bias"] = v[f"{src}/beta"]


def _fused_qkv(sd: dict, dst: str, v: dict, src: str) -> None:
    """Split a fused q,k,v projection; the key's bias must be zero."""
    w = v[f"{src}/weight"]
    b = v[f"{src}/bias"]
    q_w, k_w, v_w = np.split(w, 3, axis=0)
    q_b, k_b, v_b = np.split(b, 3, axis=0)
    if np.any(k_b != 0):
        raise ModelError(f"{src}: key bias is not zero, cannot map to openai-whisper (no key bias)")
    sd[f"{dst}.query.weight"], sd[f"{dst}.query.bias"] = q_w, q_b
    sd[f"{dst}.key.weight"] = k_w
    sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = v_w, v_b


def _ffn(sd: dict, dst: str, v: dict, src: str) -> None:
    _norm(sd, f"{dst}.mlp_ln", v, f"{src}/layer_norm")
    _linear(sd, f"{dst}.mlp.0", v, f"{src}/linear_0")
    _linear(sd, f"{dst}.mlp.2", v, f"{src}/linear_1")


def whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """openai-whisper parameter names -> arrays (same dtype as stored, usually float16)."""
    v = ct2.variables
    dims = whisper_dims(ct2)
    sd: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(sd, f"encoder.{conv}", v, f"encoder/{conv}")
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(dims["n_audio_layer"]):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        _norm(sd, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
        _fused_qkv(sd, f"{dst}.attn", v, f"{src}/self_attention/linear_0")
        _linear(sd, f"{dst}.attn.out", v, f"{src}/self_attention/linear_1")
        _ffn(sd, dst, v, f"{src}/ffn")
    _norm(sd, "encoder.ln_post", v, "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(dims["n_text_layer"]):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        _norm(sd, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
        _fused_qkv(sd, f"{dst}.attn", v, f"{src}/self_attention/linear_0")
        _linear(sd, f"{dst}.attn.out", v, f"{src}/self_attention/linear_1")
        _norm(sd, f"{dst}.cross_attn_ln", v, f"{src}/attention/layer_norm")
        _linear(sd, f"{dst}.cross_attn.query", v, f"{src}/attention/linear_0")
        k_w, v_w = np.split(v[f"{src}/attention/linear_1/weight"], 2, axis=0)
        k_b, v_b = np.split(v[f"{src}/attention/linear_1/bias"], 2, axis=0)
        if np.any(k_b != 0):
            raise ModelError(f"{src}: cross-attention key bias is not zero")
        sd[f"{dst}.cross_attn.key.weight"] = k_w
        sd[f"{dst}.cross_attn.value.weight"], sd[f"{dst}.cross_attn.value.bias"] = v_w, v_b
        _linear(sd, f"{dst}.cross_attn.out", v, f"{src}/attention/linear_2")
        _ffn(sd, dst, v, f"{src}/ffn")
    _norm(sd, "decoder.ln", v, "decoder/layer_norm")
    if "decoder/projection/weight" in v and not np.array_equal(
        v["decoder/projection/weight"], v["decoder/embeddings/weight"]
    ):
        raise ModelError("output projection is not tied to the embeddings; openai-whisper requires it")
    return sd


def encode_alignment_heads(heads: list[list[int]], dims: dict[str, int]) -> bytes:
    """Alignment heads in openai-whisper's format: base85(gzip(bool[n_layer, n_head]))."""
    mask = np.zeros((dims["n_text_layer"], dims["n_text_head"]), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def convert(ct2: CT2Model) -> dict:
    """Build the checkpoint dict that ``whisper.load_model(path)`` reads."""
    import torch

    dims = whisper_dims(ct2)
    state = {k: torch.from_numpy(np.array(a, copy=True)) for k, a in whisper_state_dict(ct2).items()}
    # alignment heads are kept beside the checkpoint (pipeline.models applies them
    # with set_alignment_heads): whisper.load_model ignores extra checkpoint keys.
    return {"dims": dims, "model_state_dict": state}


def save_checkpoint(checkpoint: dict) -> bytes:
    """Serialise a checkpoint with torch.save into bytes (written atomically by the caller)."""
    import torch

    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    return buf.getvalue()
