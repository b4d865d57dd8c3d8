"""Beam search for a batch of windows, one tensor step instead of whisper's Python loops.

Whisper's ``BeamSearchDecoder.update`` walks every window's beams and candidates in Python
(``.item()`` per candidate, a tuple of the whole prefix per candidate): ~2 ms a step for 8
windows x 2 beams on one Zen 4 core, next to a decoding step of ~15 ms. ``BatchBeamDecoder``
does the same selection with tensor ops and touches Python only for the sequences that end.
It keeps whisper's rules exactly (tests/test_beam.py compares the two on random logits):

- each beam proposes its ``beam_size + 1`` most likely next tokens, scored by the beam's summed
  log-probability plus the token's;
- a window's candidates are ranked best first (ties keep their order: beam, then rank); ends
  (end-of-text) met before ``beam_size`` live candidates are kept become finished sequences,
  the first ``beam_size`` others are the new beams;
- candidates from beams with the same prefix (all beams at the first step) count once.

Same choices as whisper's, up to the order of exactly equal scores of different sequences.

Why beam search at all: greedy decoding takes the single most likely token at every step, and
a near-tie early in a window sends the rest of it down another path. Two beams per window
lowered the WER of the batched engine on 27 of 36 files (12 re-synthesised rambles, clean and
with pink or brown noise; mean 8.46 -> 8.01, 16.55 -> 15.06, 13.10 -> 12.08 %; docs/PERFORMANCE.md).
"""

from __future__ import annotations

import functools


@functools.cache
def batch_beam_decoder():
    """The decoder class (made on first use: whisper and torch are imported lazily)."""
    import torch
    import torch.nn.functional as F
    from whisper.decoding import BeamSearchDecoder

    class BatchBeamDecoder(BeamSearchDecoder):
        finished_sequences: list[dict[tuple[int, ...], float]] | None  # per window: finished sequence -> score

        def update(self, tokens, logits, sum_logprobs):
            """One step: ``tokens`` (windows x beams, length), ``logits`` (windows x beams, vocab),
            ``sum_logprobs`` (windows x beams, updated in place). Returns the new tokens and
            whether every window has ``max_candidates`` finished sequences."""
            g = self.beam_size
            n_rows = tokens.shape[0]
            if n_rows % g != 0:
                raise ValueError(f"{tokens.shape}[0] % {g} != 0")
            n_audio = n_rows // g
            if self.finished_sequences is None:  # first update
                self.finished_sequences = [{} for _ in range(n_audio)]

            logprobs = F.log_softmax(logits.float(), dim=-1)
            top_lp, top_tok = logprobs.topk(g + 1, dim=-1)  # (rows, g + 1), best first
            scores = sum_logprobs[:, None] + top_lp
            # beams of a window with equal prefixes propose the same sequences: whisper's dict keeps
            # them once, from the last such beam
            prefixes = tokens.view(n_audio, g, -1)
            same = (prefixes[:, :, None, :] == prefixes[:, None, :, :]).all(-1)  # (windows, g, g)
            dup = torch.triu(same, diagonal=1).any(-1).view(n_rows)
            scores[dup] = float("-inf")

            flat_scores = scores.view(n_audio, g * (g + 1))
            flat_tok = top_tok.view(n_audio, g * (g + 1))
            order = torch.sort(flat_scores, dim=1, descending=True, stable=True).indices
            s_scores = flat_scores.gather(1, order)
            s_tok = flat_tok.gather(1, order)
            live = s_scores > float("-inf")
            ends = (s_tok == self.eot) & live
            rank = torch.cumsum((~ends & live).int(), dim=1)  # live non-end candidates so far, this one included
            kept = ~ends & live & (rank <= g)  # exactly g per window: each beam has >= g non-end candidates
            finished = ends & (rank < g)  # ends ranked before the beams were full

            pos = order[kept].view(n_audio, g)  # flat candidate index, best first
            source = (torch.arange(n_audio, device=tokens.device)[:, None] * g + pos // (g + 1)).view(n_rows)
            new_tok = flat_tok.gather(1, pos).view(n_rows)
            sum_logprobs.copy_(flat_scores.gather(1, pos).view(n_rows))

            if bool(finished.any()):
                for a, p in finished.nonzero().tolist():
                    done = self.finished_sequences[a]
                    if len(done) >= self.max_candidates:
                        continue  # this window's list is full
                    row = a * g + int(order[a, p]) // (g + 1)
                    done[tuple(tokens[row].tolist() + [self.eot])] = float(s_scores[a, p])

            idx = source.tolist()
            tokens = torch.cat([tokens[source], new_tok[:, None]], dim=-1)
            self.inference.rearrange_kv_cache(idx)
            completed = all(len(s) >= self.max_candidates for s in self.finished_sequences)
            return tokens, completed

    return BatchBeamDecoder


@functools.cache
def seeded_greedy_decoder():
    """whisper's ``GreedyDecoder`` drawing its samples (temperature > 0) from a generator of its own.

    whisper samples from torch's global generator: two batches falling back to sampling at once on
    the two worker threads interleaved their draws in an order set by the scheduler, and one clip's
    text changed with the machine's load (c16 of the short-clip set, batched: WER 17.0 % idle, 22.9 %
    beside a test run). Seeded per decode, a window's samples depend on its batch alone.
    """
    import torch
    import torch.nn.functional as F
    from whisper.decoding import GreedyDecoder

    class SeededGreedyDecoder(GreedyDecoder):
        def __init__(self, temperature: float, eot: int, *, seed: int):
            super().__init__(temperature, eot)
            self.generator = torch.Generator().manual_seed(seed)  # CPU: the probabilities are moved here to draw

        def update(self, tokens, logits, sum_logprobs):
            """whisper's step, the sample drawn from ``self.generator``."""
            if self.temperature == 0:
                return super().update(tokens, logits, sum_logprobs)
            probs = torch.softmax(logits.float() / self.temperature, dim=-1)
            next_tokens = torch.multinomial(probs.cpu(), 1, generator=self.generator)[:, 0].to(logits.device)
            logprobs = F.log_softmax(logits.float(), dim=-1)
            current = logprobs[torch.arange(logprobs.shape[0]), next_tokens]
            sum_logprobs += current * (tokens[:, -1] != self.eot)
            next_tokens[tokens[:, -1] == self.eot] = self.eot
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=-1)
            return tokens, bool((tokens[:, -1] == self.eot).all())

    return SeededGreedyDecoder
