"""Role selection without an LLM: cue phrases + MiniLM embeddings."""

from __future__ import annotations

import pytest

from ramble2post.structure.clean import clean_segments
from ramble2post.structure.select import ROLES, cue_scores, select_roles


def test_cue_scores():
    assert cue_scores("So, for example, if I were to explain KV cache")["example"] == 1.0
    assert cue_scores("It's kind of like having multiple memory hooks")["analogy"] == 1.0
    assert cue_scores("The reason being is that it is hard")["reason"] == 1.0
    assert cue_scores("It needs to be about trade-offs")["tradeoffs"] == 1.0
    assert "analogy" not in cue_scores("I like GPUs a lot")


@pytest.mark.slow
def test_embeddings_paraphrase_closer_than_unrelated():
    from ramble2post.structure.embed import embed

    e = embed(
        [
            "The KV cache fills up quickly during inference.",
            "During inference the key-value cache grows fast.",
            "My cat likes to sleep in the sun.",
        ]
    )
    assert float(e[0] @ e[1]) > 0.5 > float(e[0] @ e[2]) + 0.3
    assert abs(float(e[0].norm()) - 1.0) < 1e-4


TALK = [
    "What I wanted to talk about today is the idea of the KV cache in inference.",
    "The main idea is that the KV cache is memory that grows with every token you generate.",
    "The reason it exists is because recomputing attention for old tokens would be far too slow.",
    "For example, if you chat with a model for an hour, the cache keeps every token of that chat.",
    "It's kind of like a notebook where you write down everything so you never have to re-read the book.",
    "This connects to paged attention, which relates to how operating systems manage memory.",
    "There is a trade-off, depending on your priorities: a bigger cache costs memory but saves compute.",
    "Anyway the weather was nice yesterday and I had coffee with a friend.",
]


@pytest.mark.slow
def test_select_roles_on_a_small_talk():
    segs = [{"id": i, "start": i * 5.0, "end": i * 5.0 + 5, "text": t} for i, t in enumerate(TALK)]
    sents = clean_segments(segs)
    sel = select_roles(sents)
    first = {r: sel.chosen[r][0] for r in ROLES if r != "focus"}
    assert first == {"reason": 3, "example": 4, "analogy": 5, "connections": 6, "tradeoffs": 7}
    assert set(sel.chosen["focus"]) & {1, 2}
    assert 8 not in {s for ids in sel.chosen.values() for s in ids}  # off-topic sentence left out
    used = [s for r in ROLES for s in sel.chosen[r]]
    assert len(used) == len(set(used))  # one sentence never serves two roles
