"""Verification rules that catch what word overlap lets through, each on a real failing example.

The first four examples are model output that reached drafts before these rules (issue 11);
each rule is shown to reject its example and to let a faithful rewrite of the same source pass.
"""

from __future__ import annotations

import pytest

from ramble2post.structure.faithful import debris, flips, invented_clauses, merged_sources
from ramble2post.structure.verify import lexical_overlap, problems, verify_items

FAITHFUL = [  # (rewrite, source): a strong model's paraphrase of rambling speech must pass
    (
        "The KV cache grows with every token you generate.",
        "So the KV cache, it basically grows with every single token that you generate, right?",
    ),
    (
        "Batching reads the weights once for the whole batch.",
        "With batching you read the weights once, and the whole batch uses them.",
    ),
    ("Quantization does not change the accuracy much.", "Quantization doesn't really change the accuracy much."),
]


@pytest.mark.parametrize(
    "text, source",
    [
        (
            "{ { 'I'm not sure it can do int8, but FP16 and FP32 is the same.",
            "I'm not sure it can do int8, but FP16 and FP32 is the same.",
        ),
        (
            "{ { 'text' }} I think all of int8 can be represented in FP16.",
            "I think all of int8 can be represented in FP16, so that's fine.",
        ),
        ('"text": The KV cache grows.', "The KV cache grows."),
        ("Analogy: the KV cache is a notebook.", "It's kind of like a notebook, the KV cache."),
        ("Rewrite the speaker's words: the cache grows.", "The cache grows."),
        ("The Main Idea: The Roof Line is the Limit", "The main idea is simple, the roofline is the limit."),
    ],
)
def test_template_and_markup_debris_is_rejected(text, source):
    assert debris(text, source)
    assert problems(text, source)


def test_debris_the_speaker_said_is_not_debris():
    assert not debris("I wrote a blog post about it.", "So I wrote a blog post about it last week.")


def test_comparison_flipped_to_its_opposite_is_rejected():
    source = "And if you RL your smaller model, it learns the task faster, right?"
    why = problems("If you RL your bigger model, it learns the task faster.", source)
    assert any("opposite word: 'bigger'" in w for w in why)
    assert not problems("If you RL your smaller model, it learns the task faster.", source)


@pytest.mark.parametrize(
    "text, source, expected",
    [
        ("Quantization changes the accuracy a lot.", "Quantization does not change the accuracy a lot.", "dropped"),
        ("Batching does not help decode.", "Batching helps decode a lot.", "added"),
    ],
)
def test_negation_added_or_dropped_is_rejected(text, source, expected):
    assert any(w.startswith(f"negation {expected}") for w in flips(text, source))


def test_a_negation_on_the_same_word_is_caught_even_when_both_sides_say_not_somewhere():
    source = "Now, the part people don't believe at first is that this is lossless, at least for greedy decoding."
    why = flips("What surprises people is that it isn't lossless, even with greedy decoding.", source)
    assert any("negation added: 'lossless'" in w for w in why)


@pytest.mark.parametrize(
    "text, source",
    [  # the negation moved into another word: faithful paraphrases of rambling speech
        ("Also, weight-only int8 speeds up decode but does little for prefill.",
         "The other thing is, weight only int8 helps decode but it doesn't really help prefill."),
        ("Packets already travel at 70% of the speed of light, so making them 10x faster is impossible.",
         "We send packets at 70% of the speed of light, so we can't get them 10x faster."),
        ("Decoding is limited by memory bandwidth rather than compute.",
         "So decode is memory bandwidth bound, not compute bound."),
    ],
)  # fmt: skip
def test_a_negation_said_another_way_is_not_a_flip(text, source):
    assert not [w for w in flips(text, source) if w.startswith("negation")]


def test_a_rate_or_count_of_something_else_is_rejected():
    from ramble2post.structure.faithful import changed_quantities

    source = (
        "And then I sent it sixty four requests at once and the total went up to around two thousand tokens per second."
    )
    assert changed_quantities("The same card reached two thousand requests per second.", source)
    assert not changed_quantities("The same card reached about two thousand tokens per second in total.", source)
    source = "Per channel scales add a few extra kilobytes per layer but keep the error low."
    assert changed_quantities("Per channel scales cost a few extra megabytes per layer.", source)
    assert changed_quantities("It needs sixty four gigabytes.", "It needs sixty four requests.")


def test_changed_fact_and_invented_trade_off_are_rejected():
    source = "So basically you do two flops for every weight you read in FP16."
    text = "You do 2 flops for every byte in FP16, which is a trade-off of performance and memory bandwidth."
    why = problems(text, source)
    assert why and any("byte" in w for w in why)
    # the invented clause alone, after a faithful one, is caught by the clause rule
    tacked = "You do two flops for every weight you read, which trades performance against memory bandwidth."
    assert invented_clauses(tacked, source, lexical_overlap)
    assert problems(tacked, source)


def test_a_sentence_ending_in_a_colon_is_not_a_label():
    source = "That's 4 new tokens out of one big-model pass instead of 1, which is, you know, the whole point."
    assert not debris("That is the whole point: one big-model pass yields 4 new tokens rather than 1.", source)
    assert debris("Key point: one big-model pass yields 4 new tokens.", source)


def test_two_names_trading_places_are_rejected():
    source = "At batch size one the GPU eats the work faster than the CPU can hand it over."
    assert flips("At batch size one the CPU hands over work faster than the GPU can eat it.", source)
    assert not flips("At batch size one the GPU eats the work faster than the CPU hands it over.", source)


def test_denying_what_the_source_never_mentions_is_rejected():
    from ramble2post.structure.faithful import denied_novelties

    source = "If you store the weights in int8, you move half the bytes, and decode gets close to twice as fast."
    text = "Storing the weights in int8 halves the bytes moved, so decode runs nearly twice as fast with no loss in quality."
    assert denied_novelties(text, source, lambda w: lexical_overlap(w, source) == 1.0)
    assert problems(text, source)
    assert not denied_novelties(
        "No weights are stored twice.", "The weights are stored once.", lambda w: w == "weights"
    )


def test_merging_two_unrelated_sources_is_rejected():
    source = "The KV cache grows with every token. My cat sleeps in the sun."
    assert merged_sources("The KV cache sleeps in the sun with every token.", source, lexical_overlap)
    assert not merged_sources("The KV cache grows with every token.", source, lexical_overlap)


@pytest.mark.parametrize("text, source", FAITHFUL)
def test_faithful_paraphrases_still_pass(text, source):
    assert problems(text, source) == []


def test_a_rejected_rewrite_is_replaced_by_the_speakers_words():
    source = "And if you RL your smaller model, it learns the task faster, right?"
    item = {"text": "If you RL your bigger model, it learns faster.", "origin": "model", "sources": [0]}
    counts = verify_items([item], segment_ids={0}, speaker_text=lambda it: source)
    assert counts["replaced"] == 1
    assert item["text"] == source and item["origin"] == "speaker"
