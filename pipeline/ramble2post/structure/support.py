"""A model as a faithfulness judge: is a rewrite (or a title) supported by the speaker's words?

The field's offline substitute for an NLI model (MiniCheck-style): the model reads
``Document: <the speaker's sentences>`` and ``Claim: <the rewrite>`` and is asked whether
every part of the claim is supported; the probability of "Yes" against "No" is read from the
logits of the first answer token (``LlamaCppLLM.choice_probabilities``), nothing sampled. It is
a score to calibrate, not a decision: ``scripts/bench_support.py`` measures it on the labelled
paraphrase pairs, alone and behind the rules (``structure.verify``), as a front of thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

PREFIX = (
    "You check a short claim against a document: the words a speaker said. A claim is supported only "
    "when the document says all of it: the same numbers, units and names, the same negations and "
    "comparisons, nothing added. Answer with one word: Yes or No."
)
OPTIONS = ("Yes", "No")
# P("Yes") a model sentence needs, behind the rules: the point chosen on pairs.jsonl by
# scripts/bench_support.py (rules + P >= 0.494: the most faithful accepted with >= 95 % of the
# unfaithful rejected); on the held-out pairs it errs toward rejecting (docs/STRUCTURE_QUALITY.md)
SUPPORT_MIN = 0.5

# (source, claim) -> P(supported), or None when no model can judge (then the claim is not shown)
SupportCheck = Callable[[str, str], "float | None"]


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


def support_check(model: Any) -> SupportCheck:
    """A ``SupportCheck`` backed by ``model``: None for every claim when it cannot give answer
    probabilities (a served model without log-probabilities, a fake); a failed question is None too."""
    from ramble2post.errors import LLMOutputError
    from ramble2post.structure.judge import can_judge

    def check(source: str, claim: str) -> float | None:
        if model is None or not can_judge(model):
            return None
        try:
            return support_probability(model, source=source, claim=claim)
        except LLMOutputError:
            return None

    return check


def support_verdict(check: SupportCheck | None, *, source: str, claim: str) -> tuple[float | None, list[str]]:
    """P(supported) (None: no judge) and why the model judge does not let ``claim`` stand (empty: it does)."""
    p = check(source, claim) if check is not None else None
    if p is None:
        return None, ["no model judge could check it (the second check every model sentence needs)"]
    if p < SUPPORT_MIN:
        return p, [f"the model judge finds it unsupported by the speaker's words (P(yes) {p:.2f} < {SUPPORT_MIN})"]
    return p, []


def support_problems(check: SupportCheck | None, *, source: str, claim: str) -> list[str]:
    """Why the model judge does not let ``claim`` stand (empty: it does)."""
    return support_verdict(check, source=source, claim=claim)[1]
