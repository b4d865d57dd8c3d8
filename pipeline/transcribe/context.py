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

from collections.abc import Sequence
from typing import Any

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
    """``whisper.decode`` of a batch, each row with its own prompt (or none).

    Rows with a prompt (all of one length) are decoded together, rows without in a second call.
    """
    import dataclasses

    import whisper

    with_prompt = [i for i, p in enumerate(prompts) if p]
    without = [i for i, p in enumerate(prompts) if not p]

    def rows_of(idx: list[int]):  # the batch itself when it is all of it: no copy of its encoder output
        return features if len(idx) == len(prompts) else features[idx]

    out: list[Any] = [None] * len(prompts)
    if without:
        for i, r in zip(without, whisper.decode(model, rows_of(without), options)):
            out[i] = r
    if with_prompt:
        rows = [list(prompts[i] or ()) for i in with_prompt]
        task = _row_prompt_task()(model, dataclasses.replace(options, prompt=rows[0]), rows)
        for i, r in zip(with_prompt, task.run(rows_of(with_prompt))):
            out[i] = r
    return out


def _row_prompt_task():
    import torch
    from whisper.decoding import DecodingTask

    class RowPromptTask(DecodingTask):
        """Whisper's decoding task with a prompt per row: whisper repeats one initial sequence
        for every row, ``<|startofprev|> prompt <|startoftranscript|> ...``; the prompt positions
        ``1 .. k`` are overwritten per row before the first step (the language is given, so
        ``_detect_language`` only passes the tokens through)."""

        def __init__(self, model, options, prompts: list[list[int]]):
            super().__init__(model, options)
            self._rows = torch.tensor(prompts)

        def _detect_language(self, audio_features, tokens):
            tokens[:, 1 : 1 + self._rows.shape[1]] = self._rows.to(tokens.device)
            return super()._detect_language(audio_features, tokens)

    return RowPromptTask
