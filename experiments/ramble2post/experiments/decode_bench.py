"""Batched decoding on the models of this machine, for the batching and KV-cache experiments.

* :class:`LlamaBatchDecoder` drives a GGUF model through llama.cpp's low-level
  batch API: B sequences share one context (``n_seq_max=B``, unified KV cache)
  and one ``llama_decode`` call generates one token for every sequence.
* :class:`WhisperDecoderBench` runs the Whisper text decoder with its KV cache
  (``model.install_kv_cache_hooks()``) on B copies of one encoded audio window.

Both time only the decode call of each step (greedy argmax sampling and batch
filling happen outside the timer) and report the median step time.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ramble2post.errors import DependencyError, ExperimentError
from ramble2post.experiments.roofline import median, now
from ramble2post.machine import usable_cores

PROMPT = "The history of computing is"  # prefilled into every sequence before timing
UNTIMED_STEPS = 2  # first decode steps of a run left out of the median (allocations, caches)
F16_BYTES = 2  # llama.cpp's default K/V cache type is f16
WHISPER_SOT = "<|startoftranscript|>"


def timing_plan(device: str = "cpu") -> tuple[int, str, str]:
    """(threads, clock, why) for a run on this machine.

    Normally all usable cores and the wall clock. When the machine is already
    busy (1-minute load average >= usable cores), threads that spin-wait at each
    layer's barrier stall whenever another program holds a core, and wall-clock
    time mostly measures the other programs: then one thread, timed by this
    process's CPU time.
    """
    cores = usable_cores()
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = 0.0
    if device == "cuda":
        return cores, "wall", f"wall clock with torch.cuda.synchronize(); {cores} CPU threads for llama.cpp"
    if load1 >= cores:
        return (
            1,
            "cpu",
            (
                f"1 thread timed by process CPU time: load average {load1:.1f} >= {cores} usable "
                "cores (the machine is shared; wall-clock would measure the other programs)"
            ),
        )
    return cores, "wall", f"{cores} threads (all usable cores), wall clock; load average {load1:.1f}"


# ------------------------------------------------------------------ llama.cpp

_LOG_LINES: list[str] = []


def _log_to_list(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:  # pragma: no cover - C callback
    _LOG_LINES.append(text.decode("utf-8", "replace") if text else "")


_LOG_CB: Any = None  # the ctypes callback object must outlive every call from C


@contextlib.contextmanager
def captured_llama_log() -> Iterator[list[str]]:
    """Collect llama.cpp's log text (KV buffer sizes) instead of printing it; restores the default logger."""
    global _LOG_CB
    import llama_cpp
    import llama_cpp._logger as default_logger

    if _LOG_CB is None:
        _LOG_CB = llama_cpp.llama_log_callback(_log_to_list)
    start = len(_LOG_LINES)
    llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
    lines: list[str] = []
    try:
        yield lines
    finally:
        llama_cpp.llama_log_set(default_logger.llama_log_callback, ctypes.c_void_p(0))
        lines.extend(_LOG_LINES[start:])
        del _LOG_LINES[start:]


def kv_size_from_log(text: str) -> tuple[int, int] | None:
    """(KV bytes, cells) from llama.cpp's ``llama_kv_cache: size = X MiB (N cells, ...)`` line."""
    m = re.search(r"llama_kv_cache:\s*size\s*=\s*([\d.]+)\s*MiB\s*\(\s*(\d+)\s*cells", text)
    if not m:
        return None
    return int(round(float(m.group(1)) * 2**20)), int(m.group(2))


@dataclasses.dataclass(frozen=True)
class GgufShape:
    """What decides a GGUF model's KV-cache size."""

    n_layer: int
    n_head: int
    n_head_kv: int
    n_embd: int
    head_dim: int
    n_vocab: int
    n_ctx_train: int
    weight_bytes: int  # llama_model_size: all tensor bytes (read once per decode step)
    n_params: int


def _meta(model, key: str) -> str | None:
    import llama_cpp

    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, ctypes.sizeof(buf))
    return buf.value.decode() if n >= 0 else None


class LlamaBatchDecoder:
    """A GGUF model loaded once; :meth:`run` decodes B sequences per ``llama_decode`` call."""

    def __init__(self, *, path: Path, threads: int, n_gpu_layers: int = 0):
        try:
            import llama_cpp
        except ImportError as e:
            raise DependencyError(f"llama-cpp-python is not installed: {e}", hint="pip install llama-cpp-python") from e
        self._ll = llama_cpp
        self.threads = threads
        self.gpu_offload = bool(n_gpu_layers) and bool(llama_cpp.llama_supports_gpu_offload())
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        with captured_llama_log():
            self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise ExperimentError(f"llama.cpp cannot load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        n_head = llama_cpp.llama_model_n_head(self.model)
        n_embd = llama_cpp.llama_model_n_embd(self.model)
        arch = _meta(self.model, "general.architecture") or ""
        key_len = _meta(self.model, f"{arch}.attention.key_length")
        self.shape = GgufShape(
            n_layer=llama_cpp.llama_model_n_layer(self.model),
            n_head=n_head,
            n_head_kv=llama_cpp.llama_model_n_head_kv(self.model),
            n_embd=n_embd,
            head_dim=int(key_len) if key_len else n_embd // n_head,
            n_vocab=llama_cpp.llama_vocab_n_tokens(self.vocab),
            n_ctx_train=llama_cpp.llama_model_n_ctx_train(self.model),
            weight_bytes=int(llama_cpp.llama_model_size(self.model)),
            n_params=int(llama_cpp.llama_model_n_params(self.model)),
        )
        raw = PROMPT.encode()
        buf = (llama_cpp.llama_token * 64)()
        n = llama_cpp.llama_tokenize(self.vocab, raw, len(raw), buf, 64, True, False)
        if n <= 0:
            raise ExperimentError("llama.cpp could not tokenize the prompt")
        self.prompt = list(buf[:n])

    def close(self) -> None:
        if getattr(self, "model", None):
            self._ll.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> LlamaBatchDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def kv_bytes_per_token(self, *, bytes_per_element: int = F16_BYTES) -> int:
        """K and V for every layer: 2 · n_layer · n_head_kv · head_dim · bytes (one sequence, one token)."""
        s = self.shape
        return 2 * s.n_layer * s.n_head_kv * s.head_dim * bytes_per_element

    @contextlib.contextmanager
    def context(self, *, n_seq: int, n_ctx: int) -> Iterator[tuple[Any, str]]:
        """A llama context holding ``n_seq`` sequences in a unified KV cache of ``n_ctx`` cells; yields (ctx, log)."""
        ll = self._ll
        cp = ll.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = cp.n_ubatch = max(n_seq * len(self.prompt), 32)
        cp.n_seq_max = n_seq
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.kv_unified = True
        cp.no_perf = True
        with captured_llama_log() as log:
            ctx = ll.llama_init_from_model(self.model, cp)
        if not ctx:
            raise ExperimentError(
                f"llama.cpp could not create a context for {n_seq} sequences x {n_ctx} cells",
                hint="lower the batch sizes or the context length",
            )
        try:
            yield ctx, "".join(log)
        finally:
            with captured_llama_log():
                ll.llama_free(ctx)

    def run(self, ctx, *, batch: int, steps: int) -> dict[str, Any]:
        """Prefill the prompt into ``batch`` sequences, then decode ``steps`` tokens for each, timed per step."""
        ll = self._ll
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        nt = len(self.prompt)
        lb = ll.llama_batch_init(max(batch * nt, batch), 0, 1)
        try:
            lb.n_tokens = batch * nt
            i = 0
            for s in range(batch):
                for pos, tok in enumerate(self.prompt):
                    lb.token[i], lb.pos[i], lb.n_seq_id[i] = tok, pos, 1
                    lb.seq_id[i][0] = s
                    lb.logits[i] = pos == nt - 1
                    i += 1
            self._decode(ctx, lb)
            nxt = [self._argmax(ctx, s * nt + nt - 1) for s in range(batch)]
            times = []
            for step in range(steps):
                lb.n_tokens = batch
                for s in range(batch):
                    lb.token[s], lb.pos[s], lb.n_seq_id[s] = nxt[s], nt + step, 1
                    lb.seq_id[s][0] = s
                    lb.logits[s] = True
                t0 = now()
                self._decode(ctx, lb)
                times.append(now() - t0)
                nxt = [self._argmax(ctx, s) for s in range(batch)]
        finally:
            ll.llama_batch_free(lb)
        return {
            "step_s": median(times[UNTIMED_STEPS:] or times),
            "context_tokens": nt + steps,  # per sequence at the end of the run
            "state_bytes": self.state_bytes(ctx),
        }

    def state_bytes(self, ctx) -> int:
        """``llama_state_get_size``: bytes of the context's state (its used KV cells, plus small headers)."""
        with captured_llama_log():
            return int(self._ll.llama_state_get_size(ctx))

    def _decode(self, ctx, lb) -> None:
        rc = self._ll.llama_decode(ctx, lb)
        if rc != 0:
            raise ExperimentError(
                f"llama_decode failed with code {rc}", hint="the KV cache is full: lower batch sizes or steps"
            )

    def _argmax(self, ctx, i: int) -> int:
        ptr = self._ll.llama_get_logits_ith(ctx, i)
        return int(np.ctypeslib.as_array(ptr, shape=(self.shape.n_vocab,)).argmax())


# -------------------------------------------------------------------- Whisper


def tensor_bytes(tensors) -> int:
    """Sum of ``numel · element_size`` over tensors."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


class WhisperDecoderBench:
    """The Whisper text decoder stepping B sequences at once with its KV cache."""

    def __init__(self, *, model, audio=None, device: str = "cpu"):
        import torch

        self.model = model
        self.device = device
        dims = model.dims
        with torch.inference_mode():
            if audio is None:
                mel = torch.zeros(1, dims.n_mels, 3000, device=device)
            else:
                import whisper

                mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), n_mels=dims.n_mels).to(device)[None]
            self.features = model.encoder(mel.to(next(model.parameters()).dtype))
        import whisper.tokenizer as wt

        tok = wt.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages, language="en", task="transcribe"
        )
        self.sot = list(tok.sot_sequence_including_notimestamps)
        self.dtype_bytes = next(model.parameters()).element_size()

    def weight_bytes_per_step(self) -> int:
        """Decoder parameters read per step (all but the positional table, of which one row is read)."""
        dec = self.model.decoder
        return tensor_bytes(p for n, p in dec.named_parameters() if n != "positional_embedding")

    def kv_bytes_per_token(self) -> int:
        """Self-attention K and V for one sequence and one token: 2 · n_layer · d_model · bytes."""
        d = self.model.dims
        return 2 * d.n_text_layer * d.n_text_state * self.dtype_bytes

    def cross_kv_bytes(self) -> int:
        """Cross-attention K and V for one sequence (the encoded 30 s window, fixed length)."""
        d = self.model.dims
        return 2 * d.n_text_layer * d.n_audio_ctx * d.n_text_state * self.dtype_bytes

    def run(self, *, batch: int, steps: int) -> dict[str, Any]:
        """Decode ``steps`` greedy tokens for ``batch`` sequences; median step time and the cache's bytes."""
        import torch

        cache, hooks = self.model.install_kv_cache_hooks()
        dec = self.model.decoder
        try:
            xa = self.features.expand(batch, -1, -1).contiguous()
            toks = torch.tensor([self.sot] * batch, device=self.device)
            times = []
            with torch.inference_mode():
                logits = dec(toks, xa, kv_cache=cache)
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                for _ in range(steps):
                    if self.device == "cuda":
                        torch.cuda.synchronize()
                    t0 = now()
                    logits = dec(nxt, xa, kv_cache=cache)
                    if self.device == "cuda":
                        torch.cuda.synchronize()
                    times.append(now() - t0)
                    nxt = logits[:, -1].argmax(-1, keepdim=True)
            self_kv = tensor_bytes(v for m, v in cache.items() if _is_self_attn(dec, m))
            cross_kv = tensor_bytes(v for m, v in cache.items() if not _is_self_attn(dec, m))
        finally:
            for h in hooks:
                h.remove()
            cache.clear()
        return {
            "step_s": median(times[UNTIMED_STEPS:] or times),
            "context_tokens": len(self.sot) + steps,
            "self_kv_bytes": self_kv,
            "cross_kv_bytes": cross_kv,
        }


def _is_self_attn(decoder, module) -> bool:
    return any(module is b.attn.key or module is b.attn.value for b in decoder.blocks)
