"""A self-attention KV cache written in place, for the batched engine's decoding loop.

Whisper's cache hook appends each step's keys and values with ``torch.cat``, which copies the
whole cache at every step (12 tensors of rows x tokens x 512 floats for base), and beam search
then copies it all again to reorder the beams (``kv_cache[module][source_indices]``). Here each
self-attention key/value projection writes into a buffer with room to spare (doubled when full,
so the copies add up to about one cache), the attention reads a view of its filled part, and
reordering beams copies only the rows whose source changed. Same values as whisper's cache:
the tokens are identical (tests/test_beam.py, greedy and beam search).
"""

from __future__ import annotations

import functools
from typing import Any

MIN_CAPACITY = 64  # tokens held by a fresh buffer


@functools.cache
def static_inference():
    """The ``PyTorchInference`` subclass (made on first use: whisper is imported lazily)."""
    import torch
    from whisper.decoding import PyTorchInference
    from whisper.model import MultiHeadAttention

    class StaticKVInference(PyTorchInference):
        group = 1  # rows per window (the beam width), set for a decode by decoding.BatchTask

        def logits(self, tokens, audio_features):
            if not self.kv_cache:
                self._install()
                if self.group > 1:
                    return self._first_pass_shared(tokens, audio_features)
            if tokens.shape[-1] > self.initial_token_length:
                tokens = tokens[:, -1:]  # after the first pass only the newest token is fed
            return self.model.decoder(tokens, audio_features, kv_cache=self.kv_cache)

        def _first_pass_shared(self, tokens, audio_features):
            """The first pass (start tokens and prompt, ~146 tokens with the jargon prompt) once per window.

            A window's beams start from the same tokens and the same audio, so their first pass is the
            same computation ``group`` times over; it runs once on one row per window, and the
            self-attention caches and logits are copied to the other beams (2 beams: the first pass's
            cost halves, ~1.5 s of an 8-min clip's 17 s of decoding with the prompt).
            """
            g = self.group
            one = tokens[::g]
            # only the fast CPU decoder keeps cross-attention keys per window (whisper's keeps them per row)
            fast = hasattr(self.model.decoder, "logits_from")  # precision.speed_up_decoder
            cross = [b.cross_attn for b in self.model.decoder.blocks if getattr(b, "cross_attn", None)]
            if not fast or not torch.equal(one.repeat_interleave(g, dim=0), tokens):
                return self.model.decoder(tokens, audio_features, kv_cache=self.kv_cache)
            for m in cross:
                m.group = 1  # audio_features[::g] holds each window once
            try:
                logits = self.model.decoder(one, audio_features[::g], kv_cache=self.kv_cache)
            finally:
                for m in cross:
                    m.group = g
            for module in self.kv_modules:
                n = self._lengths[module]
                buf = self._buffers[module] = self._buffers[module].repeat_interleave(g, dim=0)
                self.kv_cache[module] = buf[:, :n]
            return logits.repeat_interleave(g, dim=0)

        def _install(self) -> None:
            cache: dict[Any, Any] = {}
            buffers: dict[Any, Any] = {}
            lengths: dict[Any, int] = {}
            own = set(self.kv_modules)  # self-attention key/value projections

            def save(module, _, output):
                if module not in own:  # cross-attention: made once from the audio, kept as is
                    cache[module] = output
                    return output
                n = lengths.get(module, 0)
                buf = buffers.get(module)
                if buf is None or n + output.shape[1] > buf.shape[1]:
                    grown = output.new_empty(
                        output.shape[0], max(MIN_CAPACITY, 2 * (n + output.shape[1])), output.shape[2]
                    )
                    if buf is not None:
                        grown[:, :n] = buf[:, :n]
                    buf = buffers[module] = grown
                buf[:, n : n + output.shape[1]] = output
                lengths[module] = n = n + output.shape[1]
                cache[module] = buf[:, :n]
                return cache[module]

            def hook(layer) -> None:
                if isinstance(layer, MultiHeadAttention):
                    self.hooks.append(layer.key.register_forward_hook(save))
                    self.hooks.append(layer.value.register_forward_hook(save))

            self.model.decoder.apply(hook)
            self.kv_cache, self._buffers, self._lengths = cache, buffers, lengths

        def keep(self, rows, windows) -> None:
            """Drop the rows of windows whose beam search is over: ``rows`` (tensor) and ``windows`` (list)
            are the indices kept, in order. Self-attention caches are indexed by row, the fast
            cross-attention's keys and values (keys ``(module, "heads")``) by window."""
            n_rows = self._buffers[self.kv_modules[0]].shape[0]
            for module in self.kv_modules:
                n = self._lengths[module]
                buf = self._buffers[module] = self._buffers[module][rows]
                self.kv_cache[module] = buf[:, :n]  # same key: the dict keeps its order (layer 0 first)
            for key in [k for k in self.kv_cache if isinstance(k, tuple)]:
                kv = self.kv_cache[key]  # per window; per row when the beams were not grouped (group 1)
                self.kv_cache[key] = kv[rows] if kv.shape[0] == n_rows and len(rows) != len(windows) else kv[windows]

        def rearrange_kv_cache(self, source_indices):
            src = torch.as_tensor(source_indices)
            moved = (src != torch.arange(len(source_indices))).nonzero().squeeze(1)
            if moved.numel() == 0:
                return
            for module in self.kv_modules:
                n = self._lengths[module]
                buf = self._buffers[module]
                buf[moved, :n] = buf[src[moved], :n]  # the right side is gathered (copied) first

        def cleanup_caching(self):
            super().cleanup_caching()
            self._buffers, self._lengths = {}, {}

    return StaticKVInference
