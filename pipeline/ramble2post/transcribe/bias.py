"""Contextual biasing: the decoder leans toward the glossary's terms while it decodes (shallow fusion).

Whisper's initial prompt lists the terms once, before the window; a mishearing that sounds like a word
("gem" for GEMM, "tensor clone" for tensor cores) still wins when the acoustics favour it. Here every
decoding step adds ``bonus`` nats to the logit of each token that **starts** a term (its first token
after a space) or **continues** one the row has begun (the row's last k tokens are the term's first k),
so a term competes with its sound-alike on the evidence plus a fixed prior. Only a term token the bonus
can bring level with the step's best token gets it: everywhere else the step is left exactly as it was
(a bonus on every term's first token at every step moved probability away from what was said and flipped
unrelated near-ties). The decoder renormalises as usual: the bonus moves probability toward the terms'
tokens, it does not force them (2 nats is a factor of 7.4 on the odds).

This is the prefix-tree biasing of contextual ASR (e.g. Le et al. 2021, "Contextualized streaming
end-to-end speech recognition with trie-based deep biasing and shallow fusion") in its simplest form,
without the failure penalty of an abandoned prefix: the terms' first tokens are mostly whole words
(" GE" + "MM", " tensor" + " cores"), so a started prefix costs little when the next token leaves it.

It applies to the first, deterministic decode (temperature 0) of every window inside ``biasing(...)``:
both engines and the guard's re-decodes (whisper's ``DecodingTask`` gets the filter; ``install`` swaps in
a subclass once, before the batched task is made). A window whose biased text fails whisper's thresholds
is decoded again at a temperature without it: with the bias in the fallback too, one short clip kept a
collapsed text ("2. Cure 4.") for 30 s of speech. Off by default (``config.TERM_BIAS_DEFAULT``): measured
in docs/PERFORMANCE.md, "Terms favoured while decoding".
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

_MAX_TERM_TOKENS = 8  # a term of more tokens is not biased (none of the built-in terms has more than 5)
FAVOUR_STARTS = True  # also favour a term's first token (else only a term the decoder has begun)

_lock = threading.Lock()
_active: tuple[tuple[str, ...], float] | None = None  # (terms, bonus) of the running decodes: one per process


@contextlib.contextmanager
def biasing(terms: Sequence[str], bonus: float) -> Iterator[None]:
    """Decodes inside lean ``bonus`` nats toward each of ``terms`` (see the module's docstring).

    terms: the spellings to favour ("GEMM", "tensor cores"); empty or ``bonus`` <= 0: nothing changes.
    The setting is process-wide (the batched engine decodes in worker threads), restored on exit.
    """
    global _active
    if bonus <= 0 or not terms:
        yield
        return
    install()
    with _lock:
        before, _active = _active, (tuple(terms), float(bonus))
    try:
        yield
    finally:
        with _lock:
            _active = before


def glossary_terms(user: Sequence[tuple[str, Sequence[str]]] | None) -> tuple[str, ...]:
    """The terms to lean toward: the built-in glossary's and the user's (``TranscribeOptions.glossary``)."""
    from ramble2post.transcribe.glossary import BUILTIN_TERMS

    return tuple(dict.fromkeys((*BUILTIN_TERMS, *(term for term, _ in user or ()))))


def install() -> None:
    """Give whisper's ``DecodingTask`` the biasing filter (once; a no-op outside ``biasing``)."""
    import whisper.decoding as wd

    with _lock:
        if getattr(wd.DecodingTask, "_term_bias", False):
            return
        base = wd.DecodingTask

        class DecodingTask(base):  # type: ignore[misc,valid-type]
            _term_bias = True

            def __init__(self, model: Any, options: Any):
                super().__init__(model, options)
                active = _active
                # the first, deterministic decode only: a window whose biased text fails whisper's thresholds
                # is decoded again at a temperature without the lean (once it lost a passage for good: c07)
                if active is not None and not options.temperature:
                    nexts = term_prefixes(self.tokenizer, active[0])
                    self.logit_filters.append(term_bias_filter()(self.sample_begin, nexts, active[1]))

        DecodingTask.__qualname__ = base.__qualname__
        DecodingTask.__module__ = base.__module__
        wd.DecodingTask = DecodingTask


def term_prefixes(tokenizer: Any, terms: Sequence[str]) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Prefix -> the tokens that start (prefix ``()``) or continue a term, from each term said after a space.
    A term whose first token is a lone letter (" G" of GEMM, " H" of H100) is favoured only once started."""
    key = (tokenizer.encoding.name, tuple(terms), FAVOUR_STARTS)
    if key not in _made:
        _made[key] = _prefixes(tokenizer, key[1])
    return _made[key]


_made: dict[tuple[str, tuple[str, ...], bool], dict[tuple[int, ...], tuple[int, ...]]] = {}


def _prefixes(tokenizer: Any, terms: tuple[str, ...]) -> dict[tuple[int, ...], tuple[int, ...]]:
    nexts: dict[tuple[int, ...], set[int]] = {}
    for term in terms:
        ids = tokenizer.encode(" " + term.strip())
        if not ids or len(ids) > _MAX_TERM_TOKENS:
            continue
        for k in range(len(ids)):
            if k == 0 and (not FAVOUR_STARTS or len(tokenizer.decode(ids[:1]).strip()) < 2):
                continue  # " M", " H", " G": a lone letter as a start turned "them" into "M" (continued, it is)
            nexts.setdefault(tuple(ids[:k]), set()).add(ids[k])
    return {k: tuple(sorted(v)) for k, v in nexts.items()}


def bias_rows(
    tails: Sequence[Sequence[int]], nexts: dict[tuple[int, ...], tuple[int, ...]]
) -> list[tuple[int, tuple[int, ...]]]:
    """(row, tokens to favour) per row of ``tails`` (each row's decoded tokens so far): the terms' first
    tokens, and the next token of every term whose first k tokens end the row."""
    longest = max((len(k) for k in nexts), default=0)
    out: list[tuple[int, tuple[int, ...]]] = []
    for r, tail in enumerate(tails):
        favoured: set[int] = set(nexts.get((), ()))
        for k in range(1, min(longest, len(tail)) + 1):
            favoured.update(nexts.get(tuple(tail[-k:]), ()))
        out.append((r, tuple(sorted(favoured))))
    return out


@functools.cache
def term_bias_filter() -> Any:
    """whisper ``LogitFilter`` adding the bonus (class made on first use: whisper is imported lazily)."""
    from whisper.decoding import LogitFilter

    class TermBias(LogitFilter):
        def __init__(self, sample_begin: int, nexts: dict[tuple[int, ...], tuple[int, ...]], bonus: float):
            self.sample_begin, self.nexts, self.bonus = sample_begin, nexts, bonus
            self.longest = max((len(k) for k in nexts), default=0)

        def apply(self, logits: Any, tokens: Any) -> None:
            import torch

            tails = tokens[:, max(self.sample_begin, tokens.shape[1] - self.longest) :].tolist()
            rows: list[int] = []
            cols: list[int] = []
            for r, favoured in bias_rows(tails, self.nexts):
                rows += [r] * len(favoured)
                cols += favoured
            if not rows:
                return
            idx = (torch.tensor(rows, device=logits.device), torch.tensor(cols, device=logits.device))
            # only a term token the bonus can bring level with the row's best: elsewhere the row is untouched
            top = logits.max(dim=-1).values
            near = logits[idx] >= top[idx[0]] - self.bonus
            if near.any():
                idx = (idx[0][near], idx[1][near])
                logits.index_put_(
                    idx, torch.tensor(self.bonus, dtype=logits.dtype, device=logits.device), accumulate=True
                )

    return TermBias
