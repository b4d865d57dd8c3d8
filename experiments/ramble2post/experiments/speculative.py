"""Speculative decoding through llama-cpp-python, without paying for every prompt token's logits.

Used by the ``speculative-decoding`` experiment (the structure stage decodes plainly: prompt
lookup there was measured slower on CPU and removed, docs/EXPERIMENTS.md).

llama-cpp-python verifies drafted tokens in ``Llama.generate``: after each
``eval`` it samples every position of the batch and rejects drafts from the
first mismatch on (greedy sampling therefore yields the same tokens as plain
decoding, as long as the logits do not change with the batch shape). Giving a
``Llama`` a ``draft_model`` also switches on ``logits_all``: the logits of
*every* prompt token are computed and copied into a numpy array, which for a
long transcript costs more than speculation saves. :class:`SpeculativeLlama`
asks llama.cpp for all logits only in short verification batches (the sampled
token plus its drafts) and for the last one in long prefill batches.

Drafters (``LlamaDraftModel``):

* ``LlamaPromptLookupDecoding`` (llama-cpp-python): the longest recent n-gram
  that occurred earlier in the context proposes the tokens that followed it.
  Free to compute; pays when the output copies the input (a rewrite).
* :class:`SmallModelDraft`: a second GGUF with the same tokenizer greedily
  drafts k tokens, keeping its own KV cache across calls.

:class:`CountingDraft` wraps any drafter and records each proposal, so
acceptance can be computed afterwards from the tokens actually generated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:  # llama-cpp-python is a runtime dependency; keep the import lazy-failing for type checkers
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaDraftModel, LlamaPromptLookupDecoding
except ImportError:  # pragma: no cover - the structure stage reports DependencyError itself
    Llama = object  # type: ignore[assignment,misc]
    LlamaDraftModel = object  # type: ignore[assignment,misc]
    LlamaPromptLookupDecoding = None  # type: ignore[assignment,misc]

LOOKUP_NGRAM = 2  # longest n-gram looked up in the context (tokens)
LOOKUP_DRAFT = 10  # tokens proposed per lookup hit
VERIFY_MAX = 64  # eval batches up to this many tokens get logits for every position


class SpeculativeLlama(Llama):
    """A ``Llama`` whose ``eval`` computes all logits only for short (verification) batches.

    Construct it with ``draft_model=``; ``logits_all`` stays off, so the prompt's
    prefill costs what it costs without speculation.
    """

    def __init__(self, *args: Any, draft_model: Any = None, **kwargs: Any):
        kwargs["logits_all"] = False
        super().__init__(*args, draft_model=draft_model, **kwargs)
        self._logits_all = False  # Llama.__init__ forces it on when a draft model is given

    def eval(self, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens``; every position gets logits when the call is short enough to be a verification."""
        all_logits = self.draft_model is not None and len(tokens) <= VERIFY_MAX
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        for i in range(0, len(tokens), self.n_batch):
            batch = tokens[i : min(len(tokens), i + self.n_batch)]
            n_past = self.n_tokens
            self._batch.set_batch(batch=batch, n_past=n_past, logits_all=all_logits)
            self._ctx.decode(self._batch)
            self.input_ids[n_past : n_past + len(batch)] = batch
            self.n_tokens += len(batch)
            self._requires_eval = False


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One call of a drafter: where in the sequence its tokens would go, and the tokens."""

    position: int  # index in the full token sequence of the first drafted token
    tokens: tuple[int, ...]


class CountingDraft(LlamaDraftModel):
    """Wraps a drafter; ``proposals`` lists what it proposed, for acceptance statistics."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.proposals: list[Proposal] = []

    def reset(self) -> None:
        self.proposals = []

    def __call__(self, input_ids: np.ndarray, /, **kwargs: Any) -> np.ndarray:
        out = np.asarray(self.inner(input_ids, **kwargs), dtype=np.intc)
        self.proposals.append(Proposal(position=int(input_ids.shape[0]), tokens=tuple(int(t) for t in out)))
        return out


class SmallModelDraft(LlamaDraftModel):
    """A second model with the same tokenizer drafts ``k`` greedy tokens per call.

    Its KV cache follows the target's sequence: each call keeps the longest common
    prefix and evaluates only the new tokens.
    """

    def __init__(self, path: Path, *, k: int = 4, n_ctx: int = 2048, n_threads: int = 1):
        self.k = k
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_batch=512, verbose=False, seed=0)
        self.n_vocab = self.llm.n_vocab()
        self.eos = self.llm.token_eos()

    def close(self) -> None:
        self.llm.close()

    def _last_argmax(self) -> int:
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())

    def __call__(self, input_ids: np.ndarray, /, **kwargs: Any) -> np.ndarray:
        ids = [int(t) for t in input_ids]
        have = self.llm.input_ids[: self.llm.n_tokens].tolist()
        keep = 0
        for a, b in zip(have, ids):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(ids) - 1)  # re-evaluate at least one token to get fresh logits
        self.llm.n_tokens = keep
        if self.llm.n_tokens + len(ids) - keep + self.k >= self.llm.n_ctx():
            return np.array([], dtype=np.intc)
        self.llm.eval(ids[keep:])
        out: list[int] = []
        for _ in range(self.k):
            tok = self._last_argmax()
            out.append(tok)
            if tok == self.eos or len(out) == self.k:
                break
            self.llm.eval([tok])
        return np.array(out, dtype=np.intc)


def prompt_lookup(*, ngram: int = LOOKUP_NGRAM, draft: int = LOOKUP_DRAFT) -> Any:
    """llama-cpp-python's prompt-lookup (n-gram) drafter."""
    if LlamaPromptLookupDecoding is None:  # pragma: no cover
        raise ImportError("llama-cpp-python is not installed")
    return LlamaPromptLookupDecoding(max_ngram_size=ngram, num_pred_tokens=draft)


@dataclasses.dataclass(frozen=True)
class Acceptance:
    """How the drafts fared against the tokens actually generated."""

    steps: int  # verification steps (one target eval each, one drafter call each)
    drafted: int  # tokens proposed in total
    accepted: int  # proposed tokens that matched the generated ones

    @property
    def rate(self) -> float:
        """Accepted / drafted (0..1); NaN when nothing was drafted."""
        return self.accepted / self.drafted if self.drafted else float("nan")

    @property
    def accepted_per_step(self) -> float:
        return self.accepted / self.steps if self.steps else 0.0


def acceptance(proposals: Sequence[Proposal], sequence: Sequence[int]) -> Acceptance:
    """Count accepted draft tokens: the leading tokens of each proposal that equal the final sequence.

    sequence: prompt + generated tokens (positions in proposals are indices into it).
    Drafts past the end of the generated tokens (the run stopped at max_tokens) are not counted.
    """
    steps = drafted = accepted = 0
    end = len(sequence)
    for p in proposals:
        if p.position >= end:
            continue
        steps += 1
        room = end - p.position
        toks = p.tokens[:room]
        drafted += len(toks)
        for i, t in enumerate(toks):
            if sequence[p.position + i] != t:
                break
            accepted += 1
    return Acceptance(steps=steps, drafted=drafted, accepted=accepted)
