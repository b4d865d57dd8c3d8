"""The words before each window as its prompt, without giving up batching.

Whisper's own loop decodes one window at a time and prompts each with the text before it;
batching decodes windows side by side, so a window's neighbour is usually in the same batch
and not decoded yet. Here the windows of a recording are dealt out so that it is not:

- a **chain** is a contiguous part of the recording (two on CPU, one per worker; the layout
  depends only on the number of windows, so one or two workers give the same text);
- inside a chain, a **lane** is a contiguous run of windows, and batch ``b`` holds the
  ``b``-th window of every lane. Window ``i``'s predecessor ``i - 1`` is then in batch
  ``b - 1`` of the same lane, already decoded when batch ``b`` is;
- the lanes' first windows (batch 0) have no decoded predecessor when they are decoded, and
  stay unprompted (13-min sample: 12 of 36 windows). ``REDECODE_LANE_STARTS`` decodes them
  again once the chain is done, from their kept encoder output; off by default (its cost below).

Rows of one batch need prompts of one length (whisper's decoder has no padding mask), so
each row keeps the last ``k`` tokens of the text before it, ``k`` the shortest of the batch,
at most whisper's own cap of 223.

Off by default (``BatchedOptions.context``), measured (docs/PERFORMANCE.md, base, int8, 2 cores):
re-decoding every window with its predecessor's text first looked promising on 5 files
(pink 5 dB 23.6 -> 21.9 %, brown 5 dB 10.3 -> 9.1 %); the lanes as shipped, on 32 files (12
re-synthesised rambles clean and + pink 10 dB, 8 + brown 5 dB), changed the mean WER by
+0.22 / +0.07 / -0.28 points, each file moving up or down by about a point: greedy decoding's
near-ties, not a gain. Its cost is small (~5 % on the 13-min sample).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ramble2post.transcribe.beam import batch_beam_decoder
from ramble2post.transcribe.kvcache import static_inference

PROMPT_MAX_TOKENS = 223  # whisper's cap on prompt tokens (n_text_ctx // 2 - 1)
PROMPT_MIN_TOKENS = 4  # tokens; a batch whose shortest history is shorter decodes without prompts
# decode the lanes' first windows again, prompted, once their chain is done. Off: one more decoding
# batch per chain costs 25-45 % more decoding time on CPU (a batch costs about the same whatever its
# rows), which would put the engine above faster-whisper's time; gains within run-to-run swings.
REDECODE_LANE_STARTS = False
CPU_CHAINS = 2  # chains on CPU: one per worker where there are two (see batched.auto_workers)


def plan_chains(n_windows: int, *, batch_size: int, chains: int) -> list[list[list[int]]]:
    """Deal windows ``0 .. n_windows - 1`` into chains of batches, in decoding order.

    n_windows: windows in the recording, in time order.
    batch_size: most windows per batch.
    chains: contiguous parts decoded independently (at most ``n_windows``).
    Returns, per chain, its batches; each batch lists window indices, one per lane, and window
    ``i`` in batch ``b > 0`` always has ``i - 1`` in batch ``b - 1`` of the same chain.
    """
    if n_windows <= 0:
        return []
    chains = max(1, min(chains, n_windows))
    bounds = [round(c * n_windows / chains) for c in range(chains + 1)]
    plan = []
    for lo, hi in zip(bounds, bounds[1:]):
        n = hi - lo
        depth = -(-n // batch_size)  # batches in this chain = windows per lane
        lanes = -(-n // depth)
        plan.append([[lo + m * depth + b for m in range(lanes) if m * depth + b < n] for b in range(depth)])
    return plan


def row_prompts(
    windows: Sequence[int], history: Sequence[Sequence[int] | None], *, start: int = 0, base: Sequence[int] = ()
) -> list[list[int] | None]:
    """Prompts for ``windows``: the last tokens decoded before each, all of one length, or None.

    history: per window of the recording, the tokens it adds to later prompts; None while not
        decoded (or when whisper would reset its prompt there: decoded above temperature 0.5).
    start: the chain's first window; history never reaches before it, so that chains decoded
        at the same time on two workers do not depend on each other's progress.
    base: the user's own prompt tokens, put before the history.
    Each row's history is the run of decoded windows just before it. A row with fewer than
    ``PROMPT_MIN_TOKENS`` gets None (decoded without a prompt); the others keep the last ``k``
    tokens, ``k`` the shortest among them.
    """
    rows: list[list[int] | None] = []
    for i in windows:
        toks: list[int] = []
        j = i - 1
        while j >= start and history[j] is not None and len(toks) < PROMPT_MAX_TOKENS:
            toks = list(history[j] or ()) + toks
            j -= 1
        row = (list(base) + toks)[-PROMPT_MAX_TOKENS:]
        rows.append(row if base or len(toks) >= PROMPT_MIN_TOKENS else None)
    k = min((len(r) for r in rows if r is not None), default=0)
    return [r[-k:] if r is not None else None for r in rows]


def decode_rows(model, features, options, prompts: Sequence[list[int] | None]) -> list[Any]:
    """``whisper.decode`` of a batch, each row with its own prompt (or none), greedy or beam search.

    Rows with a prompt (all of one length) are decoded together, rows without in a second call.
    """
    import dataclasses

    with_prompt = [i for i, p in enumerate(prompts) if p]
    without = [i for i, p in enumerate(prompts) if not p]

    def rows_of(idx: list[int]):  # the batch itself when it is all of it: no copy of its encoder output
        return features if len(idx) == len(prompts) else features[idx]

    out: list[Any] = [None] * len(prompts)
    task = batch_task()
    if without:
        for i, r in zip(without, task(model, options).run(rows_of(without))):
            out[i] = r
    if with_prompt:
        rows = [list(prompts[i] or ()) for i in with_prompt]
        for i, r in zip(
            with_prompt, task(model, dataclasses.replace(options, prompt=rows[0]), rows).run(rows_of(with_prompt))
        ):
            out[i] = r
    return out


@functools.cache
def batch_task():
    """Whisper's ``DecodingTask`` for a batch of windows (made once: whisper is imported lazily).

    Two things whisper's own task does not do for a batch:

    - a prompt per row: whisper repeats one initial sequence ``<|startofprev|> prompt
      <|startoftranscript|> ...`` for every row; positions ``1 .. k`` are overwritten per row
      before the first step (the language is given, so ``_detect_language`` only passes the
      tokens through);
    - beam search over several windows: whisper (20250625) repeats the tokens per beam but
      not the encoder output, which only works for one window. Here the encoder output is
      repeated too, and the fast decoder (``precision.speed_up_decoder``) is told the group
      size, so that it makes each window's cross-attention keys once for all its beams; the
      beams are chosen by ``beam.BatchBeamDecoder`` (whisper's rules, as tensor ops).
    """
    import torch
    from whisper.decoding import DecodingTask

    class BatchTask(DecodingTask):
        def __init__(self, model, options, prompts: list[list[int]] | None = None):
            super().__init__(model, options)
            self._rows = torch.tensor(prompts) if prompts else None
            self.inference = static_inference()(model, len(self.initial_tokens))  # kvcache.py
            if options.beam_size is not None:  # whisper's selection rules, as tensor ops (beam.py)
                self.decoder = batch_beam_decoder()(
                    options.beam_size, self.tokenizer.eot, self.inference, options.patience
                )

        def _get_audio_features(self, mel):
            features = super()._get_audio_features(mel)
            return features.repeat_interleave(self.n_group, dim=0) if self.n_group > 1 else features

        def _detect_language(self, audio_features, tokens):
            if self._rows is not None:
                tokens[:, 1 : 1 + self._rows.shape[1]] = self._rows.to(tokens.device)
            languages, probs = super()._detect_language(audio_features, tokens)
            return languages[: tokens.shape[0]], probs  # one per window, not per beam

        def run(self, mel):
            cross = [b.cross_attn for b in self.model.decoder.blocks if getattr(b, "cross_attn", None)]
            for m in cross:
                m.group = self.n_group
            try:
                return super().run(mel)
            finally:
                for m in cross:
                    m.group = 1

    return BatchTask
