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
        def logits(self, tokens, audio_features):
            if not self.kv_cache:
                self._install()
            if tokens.shape[-1] > self.initial_token_length:
                tokens = tokens[:, -1:]  # after the first pass only the newest token is fed
            return self.model.decoder(tokens, audio_features, kv_cache=self.kv_cache)

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
