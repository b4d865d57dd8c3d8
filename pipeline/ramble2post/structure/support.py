"""A model as a faithfulness judge: is a rewrite (or a title) supported by the speaker's words?

The field's offline substitute for an NLI model (MiniCheck-style): the model reads
``Document: <the speaker's sentences>`` and ``Claim: <the rewrite>`` and is asked whether
every part of the claim is supported; the probability of "Yes" against "No" is read from the
logits of the first answer token (``LlamaCppLLM.choice_probabilities``), nothing sampled. It is
a score to calibrate, not a decision: ``scripts/bench_support.py`` measures it on the labelled
paraphrase pairs, alone and behind the rules (``structure.verify``), as a front of thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

PREFIX = (
    "You check a short claim against a document: the words a speaker said. A claim is supported only "
    "when the document says all of it: the same numbers, units and names, the same negations and "
    "comparisons, nothing added. Answer with one word: Yes or No."
)
OPTIONS = ("Yes", "No")


class Judge(Protocol):
    def choice_probabilities(self, *, prefix: str, question: str, options: Sequence[str]) -> list[float]: ...


def question_for(*, source: str, claim: str) -> str:
    """The one question asked per (document, claim) pair."""
    return f"Document: {source.strip()}\nClaim: {claim.strip()}\nIs the claim supported by the document?"


def support_probability(model: Judge, *, source: str, claim: str) -> float:
    """P("Yes") over {"Yes", "No"} for ``claim`` given ``source`` (the shared prefix stays cached)."""
    p_yes, _p_no = model.choice_probabilities(
        prefix=PREFIX, question=question_for(source=source, claim=claim), options=list(OPTIONS)
    )
    return p_yes
