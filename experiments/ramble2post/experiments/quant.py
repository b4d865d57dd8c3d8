"""Weight quantization as pure tensor functions (gpt-fast ``quantize.py`` style).

Every scheme is *simulated*: weights are quantized and dequantized again
("round-tripped"), so the model still runs in floating point but computes with
exactly the values an int kernel would see. That isolates the quality loss from
kernel speed.

Integer schemes are symmetric absmax with round-to-nearest (RTN), no zero point:
``scale = absmax / qmax``, ``q = clamp(round(w / scale), -qmax, qmax)`` with
``qmax = 2**(bits-1) - 1``. So int8 uses 255 levels, int4 15 and int2 only 3
(-1, 0, +1). Per-channel takes one scale per output row; group-wise one scale
per ``group_size`` consecutive inputs of a row. Scales are stored as fp16
(2 bytes each) when counting model bytes.

Which weights: every ``nn.Linear`` weight (biases stay fp32), plus Whisper's
token embedding, because the decoder *reuses it as its output projection*
(logits = x @ W_embᵀ) so it is the largest linear layer of the model; llama.cpp
quantizes its ``token_embd``/``output`` tensors too. ``include_embedding=False``
leaves it in fp32. Convolutions, LayerNorms and positional embeddings stay fp32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

SCALE_BYTES = 2  # bytes per stored scale (fp16)
FP32_BYTES = 4  # bytes per unquantized parameter


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A weight format: ``float`` (fp16/bf16), ``channel`` or ``group`` integer RTN."""

    name: str
    kind: str  # "fp32" | "float" | "channel" | "group"
    bits: int  # bits per weight value (scales counted separately)
    group_size: int | None = None
    dtype: torch.dtype | None = None  # for kind == "float"

    @property
    def family(self) -> str:
        """Schemes that differ only in bits share a family (for monotonicity checks)."""
        if self.kind == "group":
            return f"g{self.group_size}"
        return self.kind


def _int_scheme(bits: int, group: int | None = None) -> Scheme:
    if group is None:
        return Scheme(f"int{bits}", "channel", bits)
    return Scheme(f"int{bits}-g{group}", "group", bits, group)


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("fp32", "fp32", 32),
        Scheme("fp16", "float", 16, dtype=torch.float16),
        Scheme("bf16", "float", 16, dtype=torch.bfloat16),
        *(_int_scheme(b) for b in (8, 6, 5, 4, 3, 2)),
        *(_int_scheme(b, g) for g in (128, 64, 32) for b in (8, 4, 3, 2)),
    )
}


def get_scheme(name: str) -> Scheme:
    """A scheme by name: fp16, bf16, int8, int4, int4-g128, int3-g32, ... (any intN[-gG])."""
    if name in SCHEMES:
        return SCHEMES[name]
    import re

    m = re.fullmatch(r"int(\d+)(?:-g(\d+))?", name)
    if m and 2 <= int(m.group(1)) <= 8:
        return _int_scheme(int(m.group(1)), int(m.group(2)) if m.group(2) else None)
    raise ValueError(f"unknown quantization scheme {name!r}; known: {', '.join(SCHEMES)}")


# --------------------------------------------------------------- primitives


def qmax_for(bits: int) -> int:
    """Largest integer level of a symmetric ``bits``-bit code (int8: 127, int4: 7, int2: 1)."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be 2..16, got {bits}")
    return 2 ** (bits - 1) - 1


def _storage_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16


def quantize_per_channel(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax RTN, one scale per output row. Returns (q, scales[out, 1])."""
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(w.shape)}")
    qmax = qmax_for(bits)
    w32 = w.detach().float()
    absmax = w32.abs().amax(dim=1, keepdim=True)
    scales = (absmax / qmax).clamp(min=torch.finfo(torch.float32).tiny)
    q = torch.clamp(torch.round(w32 / scales), -qmax, qmax).to(_storage_dtype(bits))
    return q, scales


def dequantize_per_channel(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quantize_per_channel` (fp32 result)."""
    return q.float() * scales


def quantize_groupwise(w: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax RTN, one scale per ``group_size`` inputs of each row.

    Rows whose length is not a multiple of ``group_size`` are zero-padded (the
    padding is dropped again by :func:`dequantize_groupwise`). Returns
    (q[out, in_padded], scales[out, n_groups]).
    """
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(w.shape)}")
    if group_size < 1:
        raise ValueError("group_size must be >= 1")
    qmax = qmax_for(bits)
    out_f, in_f = w.shape
    pad = (-in_f) % group_size
    w32 = torch.nn.functional.pad(w.detach().float(), (0, pad))
    g = w32.reshape(out_f, -1, group_size)
    absmax = g.abs().amax(dim=2, keepdim=True)
    scales = (absmax / qmax).clamp(min=torch.finfo(torch.float32).tiny)
    q = torch.clamp(torch.round(g / scales), -qmax, qmax).to(_storage_dtype(bits))
    return q.reshape(out_f, -1), scales.squeeze(2)


def dequantize_groupwise(q: torch.Tensor, scales: torch.Tensor, in_features: int) -> torch.Tensor:
    """Inverse of :func:`quantize_groupwise`, cropped back to ``in_features`` columns."""
    out_f, n_groups = scales.shape
    g = q.float().reshape(out_f, n_groups, -1) * scales.unsqueeze(2)
    return g.reshape(out_f, -1)[:, :in_features]


def round_trip_float(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp32 -> fp16/bf16 -> fp32."""
    return w.detach().to(dtype).to(w.dtype)


# ------------------------------------------------------------------ handlers
# One handler per scheme kind: weight -> (round-tripped weight, bytes to store it).


def _fp32(w: torch.Tensor, s: Scheme) -> tuple[torch.Tensor, int]:
    return w.detach().clone(), w.numel() * FP32_BYTES


def _float(w: torch.Tensor, s: Scheme) -> tuple[torch.Tensor, int]:
    assert s.dtype is not None, f"{s.name}: a float scheme names its dtype"
    return round_trip_float(w, s.dtype), w.numel() * 2


def _channel(w: torch.Tensor, s: Scheme) -> tuple[torch.Tensor, int]:
    q, sc = quantize_per_channel(w, s.bits)
    return dequantize_per_channel(q, sc).to(w.dtype), math.ceil(w.numel() * s.bits / 8) + sc.numel() * SCALE_BYTES


def _group(w: torch.Tensor, s: Scheme) -> tuple[torch.Tensor, int]:
    assert s.group_size is not None, f"{s.name}: a group scheme names its group size"
    q, sc = quantize_groupwise(w, s.bits, s.group_size)
    w_hat = dequantize_groupwise(q, sc, w.shape[1]).to(w.dtype)
    return w_hat, math.ceil(w.numel() * s.bits / 8) + sc.numel() * SCALE_BYTES


HANDLERS: dict[str, Callable[[torch.Tensor, Scheme], tuple[torch.Tensor, int]]] = {
    "fp32": _fp32,
    "float": _float,
    "channel": _channel,
    "group": _group,
}


def round_trip(w: torch.Tensor, scheme: Scheme | str) -> torch.Tensor:
    """Quantize then dequantize one weight matrix with ``scheme``."""
    s = get_scheme(scheme) if isinstance(scheme, str) else scheme
    return HANDLERS[s.kind](w, s)[0]


def relative_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """‖W − Ŵ‖_F / ‖W‖_F."""
    w32, h32 = w.detach().float(), w_hat.detach().float()
    denom = torch.linalg.vector_norm(w32)
    if denom == 0:
        return 0.0
    return float(torch.linalg.vector_norm(w32 - h32) / denom)


# -------------------------------------------------------------- whole model


@dataclasses.dataclass(frozen=True)
class QuantStats:
    """What a scheme did to a model's weights."""

    scheme: str
    n_tensors: int  # weights that were round-tripped
    n_params_quantized: int
    n_params_total: int
    model_bytes: int  # quantized tensors at their bit width + scales, the rest fp32
    mean_rel_error: float  # mean over tensors of ‖W − Ŵ‖_F / ‖W‖_F
    max_rel_error: float


def quantizable_weights(model: nn.Module, *, include_embedding: bool = True) -> list[str]:
    """State-dict keys of the weights a scheme touches: nn.Linear weights (+ tied embedding)."""
    keys = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) or (include_embedding and isinstance(mod, nn.Embedding)):
            keys.append(f"{name}.weight" if name else "weight")
    return keys


def apply_scheme(
    model: nn.Module,
    scheme: Scheme | str,
    *,
    include_embedding: bool = True,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], QuantStats]:
    """Round-trip the model's linear weights with ``scheme`` on a COPY of its state dict.

    The model itself is not modified; load the returned dict with
    ``model.load_state_dict(sd)`` to run it. Pass ``state_dict`` (the fp32
    reference) to start from it instead of the model's current weights.
    """
    s = get_scheme(scheme) if isinstance(scheme, str) else scheme
    src = state_dict if state_dict is not None else model.state_dict()
    keys = set(quantizable_weights(model, include_embedding=include_embedding))
    handler = HANDLERS[s.kind]
    out: dict[str, torch.Tensor] = {}
    total_bytes, n_q, n_total, errs = 0, 0, 0, []
    seen_storage: set[int] = set()
    for k, v in src.items():
        if not torch.is_floating_point(v):
            out[k] = v.clone()
            continue
        ptr = v.data_ptr()
        shared = ptr in seen_storage  # tied weights are stored (and counted) once
        seen_storage.add(ptr)
        if k in keys and v.dim() == 2:
            w_hat, nbytes = handler(v, s)
            out[k] = w_hat
            if not shared:
                total_bytes += nbytes
                n_q += v.numel()
                n_total += v.numel()
            errs.append(relative_error(v, w_hat))
        else:
            out[k] = v.detach().clone()
            if not shared:
                total_bytes += v.numel() * FP32_BYTES
                n_total += v.numel()
    stats = QuantStats(
        scheme=s.name,
        n_tensors=len(errs),
        n_params_quantized=n_q,
        n_params_total=n_total,
        model_bytes=int(total_bytes),
        mean_rel_error=float(sum(errs) / len(errs)) if errs else 0.0,
        max_rel_error=float(max(errs)) if errs else 0.0,
    )
    return out, stats


# -------------------------------------------------------- exhaustive checks


def int8_fp16_survivors() -> int:
    """How many of the 256 int8 values survive int8 -> fp16 -> int8 unchanged."""
    x = torch.arange(-128, 128, dtype=torch.int16).to(torch.int8)
    back = x.to(torch.float16).to(torch.int8)
    return int((back == x).sum())


def int16_fp16_casualties() -> tuple[int, int]:
    """(values that do NOT survive int16 -> fp16 -> int16, smallest |value| that fails).

    fp16 has an 11-bit significand, so every integer up to 2048 is exact and
    above that only every 2nd, 4th, ... integer is representable.
    """
    x = torch.arange(-32768, 32768, dtype=torch.int32)
    # compare in int32: 32767 rounds to 32768 in fp16, which int16 cannot hold (a failure,
    # not a survivor that a clamp would hide)
    back = x.to(torch.int16).to(torch.float16).to(torch.int32)
    bad = back != x
    smallest = int(x[bad].abs().min()) if bad.any() else -1
    return int(bad.sum()), smallest


def schemes_by_family(names: Iterable[str]) -> dict[str, list[Scheme]]:
    """Integer schemes grouped by family, most bits first (for monotonicity checks)."""
    fam: dict[str, list[Scheme]] = {}
    for n in names:
        s = get_scheme(n)
        if s.kind in ("channel", "group"):
            fam.setdefault(s.family, []).append(s)
    return {k: sorted(v, key=lambda s: -s.bits) for k, v in fam.items()}
