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
    right = {"focus": {1, 2}, "reason": {3}, "example": {4}, "analogy": {5}, "connections": {6}, "tradeoffs": {7}}
    shown = {r: set(sel.chosen[r]) for r in ROLES}
    assert shown["focus"] and shown["focus"] <= right["focus"]  # layer 1 is never empty
    assert all(shown[r] <= right[r] for r in ROLES), shown  # precision: nothing under a role it does not serve
    assert shown["example"] and shown["analogy"] and shown["tradeoffs"]  # explicit cues are found
    assert 8 not in {s for ids in sel.chosen.values() for s in ids}  # off-topic sentence left out
    used = [s for r in ROLES for s in sel.chosen[r]]
    assert len(used) == len(set(used))  # one sentence never serves two roles
    assert sel.gaps == tuple(r for r in ROLES if not sel.chosen[r])
    assert sel.phrases and sel.phrases[0].text == "KV cache" and sel.phrases[0].subject


def test_keyphrases_name_what_the_talk_returns_to_in_the_speakers_spelling():
    from ramble2post.structure.keyphrases import keyphrase_title, keyphrases

    talk = [
        "So I want to talk about the KV cache and multi-query attention.",
        "The KV cache holds keys and values for every token.",
        "With multi-query attention all heads share one KV cache.",
        "Multi-query attention makes the KV cache much smaller.",
        "Keys and mail you file your previous tokens.",  # transcription debris: said once, not a topic
    ]
    phrases = keyphrases(talk)
    assert [p.text for p in phrases[:2]] == ["KV cache", "multi-query attention"]
    assert keyphrase_title(phrases) == "KV cache and multi-query attention"
    assert keyphrase_title([]) is None


def test_words_that_carry_no_topic_in_speech_are_never_key_phrases():
    """Seen on a gold ramble: "So anyway, the point ..." made "anyway" a key phrase layer 1 names, and the
    title "GPU and anyway"."""
    from ramble2post.structure.keyphrases import keyphrases

    talk = [
        "So anyway, the GPU is waiting on the data loader.",
        "Anyway, sorry, the GPU sits idle while the CPU decodes images.",
        "Whatever, the data loader needs more workers, anyway.",
        "Sorry, the data loader again.",
    ]
    keys = [p.key for p in keyphrases(talk, top=10)]
    assert "gpu" in keys and not {"anyway", "sorry", "whatever"} & set(keys)


def test_a_comparative_may_start_a_key_phrase_but_never_end_one():
    """The bundled 1-minute sample's title was "Thoughts and better": "better" said three times was a key phrase."""
    from ramble2post.structure.keyphrases import keyphrases

    talk = [
        "I want a better way to share my thoughts, and the best model for it.",
        "Writing my thoughts down makes them better, and the best model helps.",
        "It is better than nothing, and the best model is still a draft.",
    ]
    keys = [p.key for p in keyphrases(talk, top=10)]
    assert "thought" in " ".join(keys) and "best model" in keys
    assert not [k for k in keys if k.split()[-1] in {"better", "best", "worse", "worst"}]


def test_a_title_of_key_phrases_never_says_a_word_twice():
    """Seen at stop 39: "Compile and torch.compile" (an unseen ramble) and "Mixture of experts and experts model"
    (a gold ramble): the second phrase repeats a word of the first behind a dot or a plural."""
    from ramble2post.structure.keyphrases import Keyphrase, keyphrase_title

    def kp(text: str, key: str) -> Keyphrase:
        return Keyphrase(text=text, key=key, sentences=3, score=1.0)

    assert keyphrase_title([kp("compile", "compile"), kp("torch.compile", "torch.compile"), kp("shape", "shape")]) == (
        "Compile and shape"
    )
    moe = [kp("Mixture of experts", "mixture of expert"), kp("experts model", "expert model"), kp("router", "router")]
    assert keyphrase_title(moe) == "Mixture of experts and router"
    assert keyphrase_title([kp("KV cache", "kv cach"), kp("paged attention", "paged attention")]) == (
        "KV cache and paged attention"
    )


def test_a_phrase_whisper_heard_two_ways_counts_once():
    from ramble2post.structure.keyphrases import keyphrases

    talk = [
        "So prefix caching is the whole trick.",
        "Prefix catching means the system prompt is computed once.",
        "With prefix catching the time to first token drops.",
        "Anyway the hit rate is what you watch.",
    ]
    top = keyphrases(talk)[0]
    assert top.text == "Prefix catching" and top.sentences == 3  # the spelling heard most, all three uses


def test_a_talk_organised_as_an_enumeration_is_about_the_thing_enumerated():
    from ramble2post.structure.keyphrases import enumerated, keyphrase_title, keyphrases

    talk = [
        "I think there are three different stages to how I debug a slow kernel.",
        "The first stage is just looking at the timeline in the profiler.",
        "The second stage is counting bytes against the memory bandwidth.",
        "Then the third stage is reading the assembly, which nobody likes.",
        "Nsight Compute shows it, and Nsight Compute is free.",  # rarer words, said less
    ]
    top = keyphrases(talk)[0]
    assert top.text == "three different stages" and top.subject
    assert keyphrase_title(keyphrases(talk)).startswith("Three different stages")
    # two ordinals, or parts never counted, are not the talk's structure
    assert enumerated(talk[:3]) is None
    assert enumerated(talk[1:4]) is None


def test_a_model_title_may_spell_right_what_whisper_misheard():
    from ramble2post.structure.keyphrases import keyphrases, names_phrase

    talk = [
        "So prefix catching is the whole trick.",
        "Prefix catching means the system prompt is computed once.",
        "With prefix catching the time to first token drops.",
    ]
    phrases = keyphrases(talk)[:1]
    assert not names_phrase("Why prefix caching pays", phrases)
    assert names_phrase("Why prefix caching pays", phrases, misheard=True)
    assert not names_phrase("Why prompt caching pays", phrases, misheard=True)  # two words off is another phrase
    assert not names_phrase("Why batching pays", phrases, misheard=True)
