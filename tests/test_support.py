"""The model as a faithfulness judge (structure.support): the question asked, and a real model's answers."""

from __future__ import annotations

import pytest

from ramble2post.structure.support import OPTIONS, PREFIX, question_for, support_probability


class FakeJudge:
    def __init__(self, p_yes: float) -> None:
        self.p_yes = p_yes
        self.asked: list[tuple[str, str, list[str]]] = []

    def choice_probabilities(self, *, prefix, question, options):
        self.asked.append((prefix, question, list(options)))
        return [self.p_yes, 1.0 - self.p_yes]


def test_one_question_per_pair_with_the_document_and_the_claim():
    judge = FakeJudge(0.8)
    assert support_probability(judge, source=" I got forty tokens a second. ", claim="About forty tokens/s.") == 0.8
    [(prefix, question, options)] = judge.asked
    assert prefix == PREFIX and options == list(OPTIONS) == ["Yes", "No"]
    assert question == question_for(source="I got forty tokens a second.", claim="About forty tokens/s.")
    assert question.startswith("Document: I got forty tokens a second.\nClaim: About forty tokens/s.")


SOURCE = (
    "I spun up a model out of the box, no serving framework, just a plain generate loop, "
    "and it gave me, um, something like forty tokens per second."
)


@pytest.mark.slow
def test_the_default_model_trusts_a_faithful_rewrite_more_than_a_changed_number():
    from ramble2post.structure.models import load_llm

    model = load_llm("qwen2.5-coder-1.5b")
    faithful = support_probability(
        model,
        source=SOURCE,
        claim="In a plain generate loop with no serving framework I got about forty tokens per second.",
    )
    changed = support_probability(
        model,
        source=SOURCE,
        claim="In a plain generate loop with no serving framework I got about four hundred tokens per second.",
    )
    negated = support_probability(
        model, source=SOURCE, claim="The model needed a serving framework to reach forty tokens per second."
    )
    assert faithful > changed and faithful > negated, (faithful, changed, negated)


# unfaithful rewrites from tests/data/paraphrase/heldout.jsonl that every rule lets through (the
# meaning is flipped with other words); Qwen2.5-Coder-1.5B gave them P(yes) ~0.15 here, far below the bar
RULES_PASS_JUDGE_REFUSES = [
    (
        "The cache only hits if the prefix matches exactly, token for token, starting from the very first token.",
        "The cache hits even if the prefix doesn't match exactly token for token from the very first token.",
    ),
    (
        "If a new call shows up with a different shape, the guard fails and it compiles again.",
        "A call with a different shape passes the guard, so it does not compile again.",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("source,rewrite", RULES_PASS_JUDGE_REFUSES)
def test_the_judge_refuses_a_real_unfaithful_rewrite_the_rules_pass(source, rewrite):
    """Issue 24: the second check, on the stage's own path (verify_items with the default model)."""
    from ramble2post.structure.models import load_llm
    from ramble2post.structure.support import support_check
    from ramble2post.structure.verify import embedding_cosine, problems, verify_items

    cosine = embedding_cosine()
    assert problems(rewrite, source, cosine=cosine) == []  # the rules alone would show it
    items = [{"text": rewrite, "origin": "model", "sources": [1]}]
    block = verify_items(
        items,
        segment_ids={1},
        speaker_text=lambda it: source,
        cosine=cosine,
        support=support_check(load_llm("qwen2.5-coder-1.5b")),
    )
    assert items[0]["origin"] == "speaker" and items[0]["text"] == source, items[0]
    assert block["replaced"] == 1 and "model judge" in " ".join(block["details"][0]["reasons"])
