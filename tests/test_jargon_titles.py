"""Misheard jargon spelled right from context, and honest titles (issue 24)."""

from __future__ import annotations

import pytest

from ramble2post.structure.jargon import MISHEARD, fix_jargon, misheard_terms
from ramble2post.structure.titles import TITLE_MAX_CHARS, title_problems

ATTENTION = [
    "And generally the way attention works is you have at your current token, some query,",
    "and then you file the keys and mail you file your previous tokens.",
    "The softmax over those scores tells you which tokens matter.",
]
EMAIL = [
    "So every morning I go through my inbox before anything else.",
    "I answer the keys and mail you sent me about the office move.",
    "Then the rest of the email waits until lunch.",
]


def fixed(texts):
    return fix_jargon(texts)[0]


@pytest.mark.parametrize(
    ("context", "heard", "written"),
    [
        (ATTENTION, "keys and mail you", "keys and values"),
        (["We quantize the weights to intate from FB16 and the precision loss is small."], "intate", "int8"),
        (["Going from FP16 to M8 halves the bytes of the weights."], "M8", "int8"),
        (["The weights stay in FB16 while the activations are int8, half the precision."], "FB16", "FP16"),
        (["The kb cash grows with every token you decode, it's all memory."], "kb cash", "KV cache"),
        (
            ["Matching more requests raises throughput because the weights are read once for the whole batch size."],
            "Matching",
            "Batching",
        ),
        (["The colonel launch overhead dominates on the GPU when kernels are tiny."], "colonel", "kernel"),
        (
            ["Continuous marching keeps every slot busy, so throughput goes up for the same requests."],
            "marching",
            "batching",
        ),
        (
            ["With CUDA drafts the CPU launch cost is paid once, then you replay the kernels."],
            "CUDA drafts",
            "CUDA graphs",
        ),
        (["The KV cache is memory that blows with every single token you generate."], "blows", "grows"),
    ],
)
def test_each_mishearing_is_corrected_in_context(context, heard, written):
    text = " ".join(fixed(context))
    assert heard not in text and written in text
    _, fixes = fix_jargon(context)
    assert any(f.heard == heard and f.written == written for f in fixes)  # every change recorded


@pytest.mark.parametrize(
    "sentences",
    [
        EMAIL,  # "mail" in an email ramble stays
        ["Pattern matching on strings is slow in Python, so we precompile the regex."],  # no serving context
        ["The colonel in the story never gets a letter."],  # no GPU context
        ["I put the M8 bolts in the drawer next to the drill."],  # no precision context
        ["The marching band kept the throughput of the parade going for hours of requests."],  # a band marches
        ["The memory use blows up with every token once the cache spills."],  # "blows up": the idiom
    ],
)
def test_a_mishearing_word_is_left_alone_out_of_context(sentences):
    assert fixed(sentences) == sentences


def test_the_known_mishearings_list_catches_titles():
    for title in ("Keys and mail and previous tokens", "FB16 and convert", "Why the kb cash grows", "Intate weights"):
        assert misheard_terms(title), title
    for title in ("Keys and values of previous tokens", "FP16 and int8 weights", "Why the KV cache grows"):
        assert not misheard_terms(title), title
    assert len(MISHEARD) >= 10


TALK = (
    "So batching is about throughput on one machine. We read the weights once for all the requests, "
    "and with a batch size of eight the MLX runtime gets almost eight times the tokens per second."
)


def test_a_title_with_an_invented_frame_is_refused():
    bad = title_problems("The Future of MLX: A Guide to Optimizing Your Machine Learning Pipeline", TALK)
    assert any("frame" in p for p in bad) and any("does not say" in p for p in bad)
    assert title_problems("Batching reads the weights once for all requests", TALK) == []
    assert any("misheard" in p for p in title_problems("Matching and previous tokens", TALK + " matching"))
    assert any("characters" in p for p in title_problems("Batching " * 10, TALK))
    assert TITLE_MAX_CHARS == 70


def test_a_model_title_states_a_confident_point_and_nothing_else_shown():
    """The title heads the post: a model title must be grounded in layer 1, and layer 1 must be
    confident. On the gold set, titles grounded in every shown passage let asides through ("The
    Distinction Between AI Engineers and Database Developers")."""
    from ramble2post.structure.clean import clean_segments
    from ramble2post.structure.select import select_roles
    from ramble2post.structure.stage import _check_title

    point = "So batching is about throughput on one machine, because we read the weights once for all requests."
    aside = "By the way, database developers and AI engineers think about indexes very differently."
    sents = clean_segments(
        [{"id": i, "start": i * 5.0, "end": i * 5.0 + 4, "text": t} for i, t in enumerate([point, aside])]
    )
    sel = select_roles(sents)

    def layers(tier: str) -> dict:
        item = {"speaker_text": sents[0].text, "sources": [0], "sentences": [1], "tier": tier}
        other = {"speaker_text": sents[1].text, "sources": [1], "sentences": [2], "tier": "likely"}
        return {"focus": [item], "reason": [], "example": [other], "analogy": [], "connections": [], "tradeoffs": []}

    talk = " ".join(s.text for s in sents)
    yes = lambda source, claim: 0.99  # noqa: E731  a judge that passes everything: the rules must refuse
    title, _ = _check_title(
        "Batching reads the weights once for all requests", sel=sel, talk=talk, layers=layers("confident"), support=yes
    )
    assert title is not None and title["origin"] == "model"
    guess, block = _check_title(
        "Batching reads the weights once for all requests", sel=sel, talk=talk, layers=layers("likely"), support=yes
    )
    assert guess is None and "guess" in block["details"][0]["reasons"][0]
    aside_title, _ = _check_title(
        "Batching: database developers versus AI engineers", sel=sel, talk=talk, layers=layers("confident"), support=yes
    )
    assert aside_title is None


def test_a_model_title_is_offered_in_the_draft_not_used_as_the_title():
    from test_blog_common import post_json
    from test_render_post import render

    d = post_json("Batching and throughput", unverified=0)
    d["title"]["origin"] = "speaker"
    d["title_suggestion"] = "Batching reads the weights once for all requests"
    r = render(d)
    assert 'title: "Batching and throughput"' in r.markdown or "title: Batching and throughput" in r.markdown
    line = next(ln for ln in r.markdown.splitlines() if "suggested" in ln)
    assert "AI-written" in line and "Batching reads the weights once for all requests" in line
