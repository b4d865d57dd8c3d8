"""Layer 1 from the model's reading of the point (``structure.point``, issue 23).

Real speakers rarely announce the point; the role model's likeliest point sentence is then often an
aside that names the topic. The default model states the point in one sentence (never shown), and
layer 1 starts at the role model's candidate closest to that reading.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_blog_common import make_transcript

from ramble2post.records import Segment
from ramble2post.structure.point import (
    SYSTEM,
    candidates,
    closest_start,
    point_statement,
    split_prompt,
    thin,
    worth_reading,
)
from ramble2post.structure.prompts import load_prompts

TALK = [
    "Okay so this is about the padding thing from last week, the dashboard number.",  # 0: an aside naming the topic
    "We had a run that said forty two thousand tokens a second and everybody was happy.",
    "If you've got one seven thousand token sample in a batch of sixteen and the rest are short, you pay for sixteen long rows.",
    "The GPU doesn't know it's padding, the matmuls still run over every one of those positions.",
    "So honestly, a tokens per second number means nothing until you count only the non-pad tokens.",  # 4: the point
    "Anyway, my coffee went cold while I was counting, so that's the padding story for today.",  # 5: an aside
]


def test_thin_keeps_a_short_talk_and_spreads_a_long_one():
    short = ["one two three"] * 10
    assert thin(short, max_words=100) == short
    long = [f"sentence {k} has five words" for k in range(100)]  # 500 words
    kept = thin(long, max_words=100)
    assert sum(len(t.split()) for t in kept) <= 100
    assert kept[0] == long[0] and kept[-1] in long[80:]  # spread over the whole talk, not its start
    assert worth_reading(long) and not worth_reading(long * 4)  # 2,000 words: a long talk is not read


def test_the_prompt_puts_the_talk_in_the_prefix_and_asks_last():
    prompt = load_prompts(names=["structure_point"])["structure_point"]
    prefix, question = split_prompt(prompt, "The talk {with braces} here.")
    assert "The talk {with braces} here." in prefix and "<talk>" in prefix
    assert "main point" in question and "<talk>" not in question


@dataclasses.dataclass
class _Answer:
    text: str


class _Reader:
    """A fake model: answers with a fixed reading and records the system prompt it was asked under."""

    def __init__(self, text: str):
        self.text, self._system, self.seen = text, "the stage's own system prompt", []

    def set_system(self, system: str) -> None:
        self._system = system

    def ask(self, *, prefix: str, question: str, max_tokens: int) -> _Answer:
        self.seen.append((self._system, prefix, question, max_tokens))
        return _Answer(self.text)


def test_the_reading_is_asked_under_its_own_system_prompt_and_restores_the_stage_s():
    model = _Reader("  Padding makes tokens per second\n meaningless.  ")
    prompt = load_prompts(names=["structure_point"])["structure_point"]
    assert point_statement(model, texts=TALK, prompt=prompt) == "Padding makes tokens per second meaningless."
    ((system, prefix, _question, _max),) = model.seen
    assert system == SYSTEM and TALK[4] in prefix
    assert model._system == "the stage's own system prompt"
    assert point_statement(_Reader(" \n"), texts=TALK, prompt=prompt) is None


def test_layer_1_starts_at_the_candidate_closest_to_the_reading_not_at_the_likeliest_aside():
    probs = [0.9, 0.2, 0.3, 0.3, 0.4, 0.8]  # the role model prefers the asides
    usable = [True] * len(TALK)
    assert {seed for seed, _ in candidates(texts=TALK, probs=probs, usable=usable, also=0)} == set(range(len(TALK)))
    reading = "A tokens-per-second figure is meaningless unless padding tokens are left out of the count."
    assert closest_start(reading, texts=TALK, probs=probs, usable=usable, fallback=0) == 4
    reading = "The speaker's coffee went cold while counting padding."
    assert closest_start(reading, texts=TALK, probs=probs, usable=usable, fallback=0) == 5
    usable[4] = False  # a sentence that may not be shown is never layer 1
    reading = "A tokens-per-second figure is meaningless unless padding tokens are left out of the count."
    assert closest_start(reading, texts=TALK, probs=probs, usable=usable, fallback=0) != 4


def test_a_stated_point_the_role_model_ranks_last_can_still_be_layer_1():
    """An unseen tiling ramble (stop 32): its point ("the thing you actually care about is reuse") had no cue, the
    role model ranked it below six asides and mechanics, and the reading could only choose among those six."""
    talk = [
        "Okay so every CUDA tutorial has this one kernel and people just copy it.",
        "An H100 has about a petaflop of math and three and a half terabytes a second of memory.",
        "The naive kernel does two flops for every two numbers it loads.",
        "A block of threads owns a 128 by 128 tile of the output.",
        "It loops over K in slabs of 32 and loads each piece once.",
        "Make the tile huge and only one block fits per SM.",
        "Flash attention is the same reasoning applied to attention.",
        "Every number you pull from global memory, you want to reuse as many times as possible in shared memory.",
    ]
    probs = [0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.05]  # the point last
    usable = [True] * len(talk)
    reading = "Tiling keeps data in shared memory so each number loaded from global memory is reused many times."
    assert closest_start(reading, texts=talk, probs=probs, usable=usable, fallback=0) == 7


@pytest.mark.slow
def test_the_default_model_reads_an_unannounced_point_and_layer_1_starts_there():
    from ramble2post.config import DEFAULT_LLM
    from ramble2post.structure.stage import structure_transcript

    segs = tuple(Segment(id=i, start=6.0 * i, end=6.0 * i + 5.5, text=t) for i, t in enumerate(TALK))
    transcript = dataclasses.replace(make_transcript(), segments=segs, text=" ".join(TALK), duration=36.0)
    post = structure_transcript(transcript=transcript, llm=DEFAULT_LLM, use_cache=False, llm_budget_s=120)
    log = post.to_dict()["selection"]["tiers"]
    assert log["point_reading"] and "padding" in log["point_reading"].lower(), log["point_reading"]
    layer1 = " ".join(it.text for it in post.layers.focus)
    assert "means nothing until you count only the non-pad tokens" in layer1, (layer1, log["point_reading"])
    assert "coffee" not in layer1


def test_a_candidate_whose_passage_holds_a_fragment_is_not_layer_1():
    """Layer 1 is a complete statement: a point sentence that grows over a fragment ("Max padding.")
    gives way to a whole one."""
    talk = [*TALK[:5], "Max padding.", *TALK[5:]]
    probs = [0.9, 0.2, 0.3, 0.3, 0.4, 0.4, 0.8]  # the fragment is as likely as the point: it joins its span
    usable = [True] * len(talk)
    found = dict(candidates(texts=talk, probs=probs, usable=usable, also=0))
    assert 4 not in found and all(5 not in sentences for sentences in found.values())
    reading = "A tokens-per-second figure is meaningless unless padding tokens are left out of the count."
    assert closest_start(reading, texts=talk, probs=probs, usable=usable, fallback=0) != 4
