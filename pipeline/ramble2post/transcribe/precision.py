"""CPU and CUDA precision for the batched engine: int8 decoder, faster decoding step, bf16 check.

What each lever buys is measured in docs/PERFORMANCE.md ("Transcription"); the batched engine's
module docstring (``batched.py``, point 5) says why these and not others.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

_PREPARED: dict[tuple[int, str, bool, str], Any] = {}

# Tokens whose int8 logits are computed again in fp32 at each decoding step; 0 = off. Greedy decoding
# takes the argmax, and int8 logits turn near-ties into coin flips; rescoring the 8 best candidates
# exactly costs ~0.1 ms a step and gives the fp32 head's tokens (tests/test_batched_engine.py). 12
# re-synthesised rambles, base: mean WER 8.68 -> 8.26 % clean (9 of 12 better), 16.56 -> 16.37 % with
# pink noise at 10 dB; faster-whisper batched 8.35 / 16.29 % (docs/PERFORMANCE.md).
RESCORE_TOP = 8


def _swap_linears(module) -> int:
    """Replace whisper's ``Linear`` subclass with plain ``nn.Linear`` (same tensors)."""
    from torch import nn

    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Linear) and type(child) is not nn.Linear:
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            plain.weight = child.weight
            plain.bias = child.bias
            setattr(module, name, plain)
            swapped += 1
        else:
            swapped += _swap_linears(child)
    return swapped


def quantize_int8(model):
    """int8 dynamic quantization of the decoder's linear layers of a (CPU, fp32) whisper model, in place.

    Only the decoder: torch's dynamic quantization uses one activation scale per tensor, and
    an encoder tensor holds batch x 1500 frames, so one loud frame costs all others their
    precision (measured, base, 13-min: int8 everywhere WER 10.9 % vs 9.0 % fp32). Returns the
    number of quantized layers.
    """
    import torch
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    _swap_linears(model.decoder)
    with warnings.catch_warnings():  # torch 2.13 flags its quantized tensor API as deprecated; it works
        warnings.simplefilter("ignore", UserWarning)
        torch.ao.quantization.quantize_dynamic(model.decoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return sum(isinstance(m, QLinear) for m in model.modules())


def _fast_decoder_classes():
    """Subclasses of whisper's ``TextDecoder`` and ``MultiHeadAttention`` for the CPU decoding loop.

    Two hot spots of whisper's per-token step, measured on 1 thread (base, batch 3-8):
    the logits ``x @ token_embedding.weight.T`` in fp32 reads a 51865 x 512 matrix through a
    transposed view: 22-38 ms per step, vs 1.1-1.5 ms as an int8 ``quantized.linear_dynamic``;
    the cross-attention reads its cached keys/values (B x 1500 x 512) through a permuted view on
    every step: SDPA 3.4-10.4 ms per layer, vs 0.7-4.9 ms on a contiguous (B, heads, 1500, 64)
    copy made once per decode.
    """
    import torch
    import torch.nn.functional as F
    from whisper.model import MultiHeadAttention, TextDecoder

    class FastCrossAttention(MultiHeadAttention):
        group = 1  # rows per window (the beam width), set for a decode by decoding.BatchTask
        # values kept in bf16 (set for a decode by decoding.decode where the encoder runs in bf16): a decoding
        # step reads every window's 1500 cached frames per layer (6 windows: 37 MB in fp32, the step's largest
        # memory traffic); the values' half of it halves. The keys stay fp32: bf16 keys round the scores
        # before the softmax, and moved twice as many greedy tokens on the 1-min sample (tiny.en: 8 % vs 5 %).
        # Measured: docs/PERFORMANCE.md (stop 25)
        values_bf16 = False

        def forward(self, x, xa=None, mask=None, kv_cache=None):
            if xa is None or kv_cache is None or not MultiHeadAttention.use_sdpa:
                return super().forward(x, xa, mask, kv_cache)
            kk, vk = (self.key, "heads"), (self.value, "heads")
            if kk not in kv_cache:  # once per decode (and re-made for each fallback decode)
                # beam search: xa repeats each window's features ``group`` times; keys and values
                # are made once per window and the beams' queries read them together (below)
                xa = xa[:: self.group] if self.group > 1 else xa
                n_batch, n_ctx, _ = xa.shape
                k = self.key(xa).view(n_batch, n_ctx, self.n_head, -1).transpose(1, 2).contiguous()
                v = self.value(xa).view(n_batch, n_ctx, self.n_head, -1).transpose(1, 2).contiguous()
                kv_cache[kk], kv_cache[vk] = k, v.to(torch.bfloat16) if self.values_bf16 else v
                kv_cache.pop(self.key, None)  # what whisper's hooks stored: not needed, not kept
                kv_cache.pop(self.value, None)
                values = v  # the first pass (start tokens and prompt: ~146 queries) reads the fp32 values
            else:
                values = kv_cache[vk]
            q = self.query(x)
            n_rows, n_q, d = q.shape
            keys = kv_cache[kk]
            n_batch = keys.shape[0]
            # a window's beams are consecutive rows: their queries become one longer query sequence
            # against the window's keys (no mask in cross-attention, so this is the same maths)
            q = q.view(n_batch, n_rows // n_batch * n_q, self.n_head, -1).transpose(1, 2)
            if values.dtype == torch.bfloat16:  # a step: scores and softmax in fp32, the weighted sum in bf16
                w = (q * (q.shape[-1] ** -0.5)) @ keys.transpose(-1, -2)  # scaled on the 2 queries, not 1500 scores
                a = (w.softmax(-1).to(torch.bfloat16) @ values).float()
            else:
                a = F.scaled_dot_product_attention(q, keys, values)
            return self.out(a.transpose(1, 2).reshape(n_rows, n_q, d)), None

    class FastTextDecoder(TextDecoder):
        # first position whose logits are computed; decoding.BatchTask sets it for the first pass of a decode
        # to the start-of-transcript token, after a prompt: whisper reads the logits there and at the last
        # position only, and a 100-token prompt's rows x 105 x 51865 fp32 logits cost ~0.35 GB and 30 % of the time
        logits_from = 0

        def forward(self, x, xa, kv_cache=None):
            offset = next(iter(kv_cache.values())).shape[1] if kv_cache else 0  # first entry: layer 0 self-attn keys
            x = self.token_embedding(x) + self.positional_embedding[offset : offset + x.shape[-1]]
            x = x.to(xa.dtype)
            for block in self.blocks:
                x = block(x, xa, mask=self.mask, kv_cache=kv_cache)
            h = self.ln(x)
            if 0 < self.logits_from < h.shape[1]:
                h = h[:, self.logits_from :]
            logits = self.logits_int8(h).float()
            if RESCORE_TOP:  # the int8 head's best candidates again in fp32: near-ties decided exactly
                top = logits.topk(RESCORE_TOP, dim=-1).indices
                emb = self.token_embedding.weight
                exact = (emb[top].float() @ h.float().unsqueeze(-1)).squeeze(-1)
                logits.scatter_(-1, top, exact)
            return logits

    return FastTextDecoder, FastCrossAttention


def speed_up_decoder(decoder) -> None:
    """Switch a (CPU) whisper decoder to int8 logits and contiguous cross-attention caches, in place.

    The logits layer shares the token embedding's weights, quantized per output channel (one
    scale per vocabulary row) so that rare tokens with small embeddings keep their precision;
    its ``RESCORE_TOP`` best candidates are computed again in fp32 at every step.
    """
    import torch
    from torch import nn

    fast_decoder, fast_cross = _fast_decoder_classes()
    emb = decoder.token_embedding.weight
    # made without initialising its 26.5M weights (random init, then a copy by quantize_dynamic: 0.6 s of an
    # 8-min command); quantization reads the embedding and keeps only the int8 copy
    head = nn.Linear(1, 1, bias=False)
    head.in_features, head.out_features = emb.shape[1], emb.shape[0]
    head.weight = nn.Parameter(emb.detach().float(), requires_grad=False)
    with warnings.catch_warnings():  # see prepare_model: deprecated-API notice only
        warnings.simplefilter("ignore", UserWarning)
        qhead = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(head),
            {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            inplace=True,
        )
    decoder.logits_int8 = qhead[0]
    decoder.__class__ = fast_decoder
    for block in decoder.blocks:
        if block.cross_attn is not None:
            block.cross_attn.__class__ = fast_cross


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 / AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def prepare_model(model, *, device: str, quantize: str = "auto"):
    """A copy of ``model`` set up for the batched engine, memoised per (model, device, quantize).

    quantize: "int8" (decoder, CPU only; ignored on CUDA), "none", or "auto" = int8 on CPU.
    On CUDA the copy holds fp16 weights. The caller's model is never modified.
    """
    int8 = device == "cpu" and quantize in ("int8", "auto")
    half = device == "cuda"
    key = (id(model), device, int8, "half" if half else "full")
    if key not in _PREPARED:
        prepared = model
        if half:
            prepared = copy.deepcopy(model).half()
        elif int8:
            prepared = _with_own_decoder(model)
            quantize_int8(prepared)
            speed_up_decoder(prepared.decoder)
        prepared.eval()
        _PREPARED.clear()
        _PREPARED[key] = (model, prepared)  # hold the source so its id() is not reused
    return _PREPARED[key][1]


def _with_own_decoder(model):
    """A view of ``model`` with its own decoder modules, all tensors shared.

    The int8 preparation replaces the decoder's linear layers and classes and never writes a
    tensor; the encoder is not touched. Copying only the modules (not the 74M parameters of base)
    takes ~0.05 s instead of ~0.6 s and ~0.3 GB less memory (an 8-min command: ~23 s).
    """
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    view = copy.copy(model)
    view._modules = dict(model._modules)  # nn.Module keeps its children in this dict
    view.decoder = copy.deepcopy(model.decoder, memo=dict(shared))
    return view


_REPLICAS: dict[tuple[int, int], tuple[Any, list[Any]]] = {}


def replicate_decoder(net, n: int) -> list[Any]:
    """``n`` views of a prepared model sharing its encoder, each with its own decoder, memoised.

    whisper keeps the KV cache in forward hooks registered on the decoder's modules, so two
    threads decoding through the same decoder would write into each other's caches.
    """
    key = (id(net), n)
    if key not in _REPLICAS:
        replicas = [net]
        for _ in range(n - 1):
            replicas.append(_with_own_decoder(net))  # weights shared: decoding never writes them
        _REPLICAS.clear()
        _REPLICAS[key] = (net, replicas)
    return _REPLICAS[key][1]
