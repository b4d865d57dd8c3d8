"""The default never invents (issue 26): the repeated-phrase detector, the guard's phrase loops, and
``auto``'s choice between the two engines' texts per window (ramble2post/transcribe/select.py)."""

from __future__ import annotations

import dataclasses

import pytest

from ramble2post.transcribe import guard, select
from ramble2post.transcribe.vad import Chunk
from ramble2post.transcribe.wer import invented_repeats, repeated_phrases

LOOP = (
    "So, if you want to get a new one, you can get a new one. And you can get a new one, "
    "you can get a new one, and you can get a new one."
)


def _seg(start: float, end: float, text: str) -> dict:
    return {"start": start, "end": end, "text": text}


# ---------------------------------------------------------------------------- pure


def test_repeated_phrases_counts_four_word_phrases_said_three_times():
    assert repeated_phrases(LOOP) == {"you can get a": 4, "can get a new": 4, "get a new one": 5}
    assert repeated_phrases("the KV cache grows and the KV cache grows") == {}  # twice is speech
    # not consecutive: other words between the sayings
    text = "we read the weights once. Then later we read the weights again, and we read the weights."
    assert repeated_phrases(text) == {"we read the weights": 3}


def test_repeated_phrases_does_not_count_overlapping_sayings():
    assert repeated_phrases("no no no no no no no") == {}  # 7 words: one 4-gram, then overlapping ones
    assert repeated_phrases("no " * 12) == {"no no no no": 3}


def test_invented_repeats_ignores_what_the_reference_repeats_too():
    ref = "Every token reads every weight. Every token reads every weight again. Every token reads every weight."
    assert invented_repeats(reference=ref, hypothesis=ref) == {}
    assert invented_repeats(reference="you can buy a new one", hypothesis=LOOP)["get a new one"] == 5
    more = ref + " Every token reads every weight."
    assert invented_repeats(reference=ref, hypothesis=more) == {
        "every token reads every": 4,
        "token reads every weight": 4,
    }


def test_a_misheard_spelling_of_a_phrase_the_reference_says_is_not_invented():
    """c26 of the short-clip set: "log2 and exp2" said 3 times, heard as "log 2 and ex 2"."""
    ref = "I made them log2 and exp2. Hardware has log2 and exp2. So the primitives are log2 and exp2."
    hyp = "I made them log 2 and ex 2. Hardware has log 2 and ex 2. So the primitives are log 2 and ex 2."
    assert repeated_phrases(hyp) == {"log 2 and ex": 3, "2 and ex 2": 3}
    assert invented_repeats(reference=ref, hypothesis=hyp) == {}
    assert invented_repeats(reference=ref, hypothesis=hyp + " log 2 and ex 2") == {"log 2 and ex": 4, "2 and ex 2": 4}


def test_guard_flags_a_phrase_loop_spread_over_segments():
    segs = [
        _seg(0, 5, "Memory bandwidth decides the decode speed."),
        _seg(5, 9, "So, if you want to get a new one,"),
        _seg(9, 12, "you can get a new one."),
        _seg(12, 15, "And you can get a new one."),
        _seg(15, 20, "The prefill is compute bound."),
    ]
    assert guard.find_loops(segs) == []  # no segment or short run compresses or repeats back to back
    flags = guard.find_phrase_loops(segs)
    assert [(f.start, f.end, f.segments) for f in flags] == [(5.0, 15.0, (1, 2, 3))]


def test_guard_leaves_a_phrase_said_three_times_far_apart():
    segs = [_seg(60.0 * i, 60.0 * i + 5, "we read the weights once more.") for i in range(3)]
    assert guard.find_phrase_loops(segs) == []
    assert guard.find_phrase_loops(segs, span_s=200.0)[0].segments == (0, 1, 2)


def test_guard_leaves_a_phrase_a_speaker_reuses_within_a_minute():
    """The 13-min sample says "you need to be able to" 4 times in 50 s among other words: not a loop (it was
    re-decoded every time and never replaced, a third of the run's time); the same sayings back to back are."""
    said = [
        _seg(0, 12, "It is not enough to see the light at the end of the tunnel, you need to be able to walk it."),
        _seg(12, 25, "So what this means is that you need to be able to give a concrete example of the idea."),
        _seg(25, 38, "When they are learning something live, you need to be able to offer a simple metaphor."),
    ]
    assert guard.find_phrase_loops(said) == []
    dense = [_seg(0, 4, "You need to be able to."), _seg(4, 8, "You need to be able to."), _seg(8, 12, said[0]["text"])]
    dense[1]["text"] += " You need to be able to."
    assert [f.segments for f in guard.find_phrase_loops(dense)] == [(0, 1)]


def test_repair_of_a_phrase_loop_is_kept_only_when_the_phrase_goes():
    import numpy as np

    segs = [_seg(0, 4, "Let me explain."), _seg(4, 8, LOOP), _seg(8, 12, "Decode is memory bound.")]
    samples = np.zeros(16_000 * 12, np.float32)
    spoken = "If you want a new one, buy one."
    fixed, records = guard.repair(
        samples=samples, segments=segs, regions=[], decode=lambda clip: [_seg(0.5, 6.0, spoken)]
    )
    assert [r["reason"] for r in records] == ["phrase"]  # no segment loops back to back: a phrase loop
    assert records[0]["applied"] and LOOP not in " ".join(s["text"] for s in fixed)
    # decoded again, the audio says the same: it was spoken, keep it
    again = [_seg(0, 4, "Let me explain."), _seg(4, 8, LOOP)]
    kept, records = guard.repair(
        samples=samples[: 16_000 * 8], segments=again, regions=[], decode=lambda clip: [_seg(0.5, 4.5, LOOP)]
    )
    assert kept == again and not any(r["applied"] for r in records)


SPOKEN = [
    _seg(0, 4, "Decode is memory bound."),
    _seg(4, 7, "Every token reads every weight."),
    _seg(7, 10, "Every token reads every weight again."),
    _seg(10, 14, "Every token reads every weight again and again."),
]


def test_a_phrase_both_engines_heard_in_one_window_is_not_a_phrase_loop():
    """Issue 26: a repetition both engines decoded independently was said; only one engine's is a loop."""
    batched = [_seg(0, 7, "Decode is memory bound. Every token reads every weight."), _seg(7, 14, SPOKEN[2]["text"])]
    batched[1]["text"] += " " + SPOKEN[3]["text"]
    chunks = [Chunk(0.0, 14.0)]
    heard = select.heard_by_both(SPOKEN, batched, chunks)
    assert heard == {"every token reads every", "token reads every weight"}
    assert [f.segments for f in guard.find_phrase_loops(SPOKEN)] == [(1, 2, 3)]
    assert guard.find_phrase_loops(SPOKEN, spoken=heard) == []
    # the batched engine heard it twice: the sequential third saying is its own, still a phrase loop
    twice = [_seg(0, 7, "Decode is memory bound. Every token reads every weight."), _seg(7, 14, "Again and again.")]
    assert select.heard_by_both(SPOKEN, twice, chunks) == frozenset()
    # said in different windows: no agreement about one window
    apart = [Chunk(0.0, 7.0), Chunk(7.0, 14.0)]
    assert select.heard_by_both(SPOKEN, SPOKEN, apart) == frozenset()
    # the loop of the issue, heard by one engine only, is still flagged
    loop = [_seg(0, 4, "Let me explain."), _seg(4, 8, LOOP)]
    assert (
        select.heard_by_both(loop, [_seg(0, 8, "Let me explain. You can buy a new one.")], [Chunk(0.0, 8.0)]) == set()
    )


def test_repair_keeps_a_spoken_phrase_whatever_decoding_it_again_gives():
    """Decoded again on its own, the spoken repetition came back empty (whisper's no-speech rule) and the
    guard dropped it; marked spoken, it is not flagged at all."""
    import numpy as np

    samples = np.zeros(16_000 * 14, np.float32)
    dropped, records = guard.repair(samples=samples, segments=SPOKEN, regions=[], decode=lambda clip: [])
    assert [(r["reason"], r["applied"]) for r in records] == [("phrase", True)] and dropped == SPOKEN[:1]
    spoken = {"every token reads every", "token reads every weight"}
    kept, records = guard.repair(samples=samples, segments=SPOKEN, regions=[], decode=lambda clip: [], spoken=spoken)
    assert kept == SPOKEN and records == []


@pytest.mark.parametrize(("scores", "chosen"), [((-40.0, -39.97), "sequential"), ((-40.0, -39.9), "batched")])
def test_near_equal_scores_are_a_tie_that_keeps_the_sequential_text(monkeypatch, scores, chosen):
    """Leads within select.TIE_NATS are a tie (the sums' last bits change with the thread count): sequential.
    Here the two texts score alike after the engines' texts so far and apart with no previous text."""
    import numpy as np

    def fake(*a, prompts, **k):
        return [list(scores)] + [[-40.0, -40.0] for _ in prompts[1:]]

    monkeypatch.setattr(select, "text_logprobs_after", fake)
    sequential, batched = [_seg(0, 5, "The KV cache grows.")], [_seg(0, 5, "The cave cache grows.")]
    out, choices = select.pick(
        model=None,  # type: ignore[arg-type]
        samples=np.zeros(16_000 * 5, np.float32),
        chunks=[Chunk(0.0, 5.0)],
        sequential=sequential,
        batched=batched,
        language="en",
    )
    assert [c.chosen for c in choices] == [chosen]
    assert ("KV" in out[0]["text"]) is (chosen == "sequential")


def test_seeded_sampling_draws_the_same_whatever_was_drawn_before_and_restores_the_callers_state():
    import torch

    from ramble2post.transcribe.torch_state import seeded_sampling

    with seeded_sampling():
        a = torch.rand(4)
    torch.rand(7)
    state = torch.random.get_rng_state()
    with seeded_sampling():
        b = torch.rand(4)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_assign_puts_each_segment_in_the_window_of_its_midpoint_or_the_nearest():
    chunks = [Chunk(0.0, 30.0), Chunk(32.0, 60.0)]
    segs = [_seg(0, 10, "a"), _seg(28, 33, "b"), _seg(30.5, 31.0, "c"), _seg(31.5, 31.9, "d"), _seg(70, 75, "e")]
    assert select.assign(segs, chunks) == [[0, 1, 2], [3, 4]]


def test_the_sequential_words_are_cut_where_the_batched_windows_end():
    """Aligned word streams: an inserted stretch stays with the window it was said in, a substituted one
    is cut at the same share of it, and nothing is lost or doubled."""
    words = "a b c X Y d e f g".split()
    assert select.cut_like(words, [["a", "b", "c"], ["d", "e"], ["f", "g", "h"]]) == [
        ["a", "b", "c", "X", "Y"],
        ["d", "e"],
        ["f", "g"],
    ]
    pieces = select.cut_like("a b c d e f g".split(), [["a", "b", "q", "r"], ["s", "t", "f"], ["g"]])
    assert pieces == [["a", "b", "c", "d"], ["e", "f"], ["g"]]
    assert select.cut_like(["Hello,", "World."], [["hello"], [], ["world"]]) == [["Hello,"], [], ["World."]]


def test_a_looping_text_is_disqualified_against_one_that_does_not_loop():
    clean = "If you want a new one, you can buy one at the store."
    assert select.disqualified(LOOP, clean)
    assert not select.disqualified(clean, LOOP)
    assert not select.disqualified(LOOP, LOOP)  # both say it: the scores decide


# ---------------------------------------------------------------------------- real model and audio


@pytest.fixture(scope="module")
def sample_run():
    """The 1-min sample decoded by the batched engine (base, CPU), and the loaded model."""
    from ramble2post.transcribe.audio import load_audio
    from ramble2post.transcribe.batched import transcribe_batched
    from ramble2post.transcribe.models import load_whisper_model
    from tests.conftest import SAMPLE_1MIN

    samples = load_audio(SAMPLE_1MIN).samples
    model, _ = load_whisper_model(name_or_path="base", device="cpu")
    run = transcribe_batched(model=model, samples=samples, device="cpu", language="en")
    return model, samples, run


@pytest.mark.slow
@pytest.mark.parametrize("invented", [LOOP, "And then we all went to the beach and bought a red car for the dog."])
def test_a_hallucinated_passage_is_replaced_by_the_other_engines_text(sample_run, invented):
    """One window of the 'sequential' text carries an invented passage (a loop, or a fluent sentence
    nobody said); ``select.pick`` must take the other engine's text there and keep the rest."""
    from ramble2post.transcribe.wer import word_error_rate
    from tests.conftest import SAMPLE_1MIN_TXT

    model, samples, run = sample_run
    batched = [dataclasses.asdict(s) for s in run.segments]
    per_window = select.assign(batched, run.chunks)
    target = next(w for w, idx in enumerate(per_window) if len(idx) >= 3)  # inserted inside the window
    i = per_window[target][1]
    sequential = [dict(s) for s in batched]
    sequential[i] = {**sequential[i], "text": sequential[i]["text"] + " " + invented}
    chosen, choices = select.pick(
        model=model, samples=samples, chunks=run.chunks, sequential=sequential, batched=batched, language="en"
    )
    assert choices[target].chosen == "batched", choices[target]
    assert all(c.chosen == "same" for w, c in enumerate(choices) if w != target)
    text = " ".join(s["text"] for s in chosen)
    assert "new one" not in text and "beach" not in text
    ref = SAMPLE_1MIN_TXT.read_text()
    assert word_error_rate(reference=ref, hypothesis=text) == word_error_rate(
        reference=ref, hypothesis=" ".join(s["text"] for s in batched)
    )


@pytest.mark.slow
def test_the_spoken_text_wins_the_score_against_a_dropped_sentence(sample_run):
    """The other failure: a window whose text lost a sentence scores lower than the full one."""
    model, samples, run = sample_run
    batched = [dataclasses.asdict(s) for s in run.segments]
    per_window = select.assign(batched, run.chunks)
    w = next(w for w, idx in enumerate(per_window) if len(idx) >= 3)
    full = " ".join(batched[i]["text"] for i in per_window[w])
    short = " ".join(batched[i]["text"] for i in per_window[w] if i != per_window[w][1])
    from ramble2post.transcribe.batched import window_audio

    s_full, s_short = select.text_logprobs(model, window_audio(samples, run.chunks[w]), [full, short], language="en")
    assert s_full > s_short


@pytest.mark.parametrize(
    ("sums", "chosen"),
    [
        ([(-40.0, -30.0), (-40.0, -45.0), (-40.0, -39.0)], "batched"),  # leads +10, -5, +1: batched
        ([(-40.0, -36.0), (-40.0, -45.0), (-40.0, -39.0)], "sequential"),  # +4, -5, +1: sequential
        ([(-40.0, -39.97), (-40.0, -40.0), (-40.0, -39.99)], "sequential"),  # within TIE_NATS together: a tie
    ],
)
def test_each_previous_text_counts_and_their_leads_are_added(monkeypatch, sums, chosen):
    """No previous text favours the beam-searched batched text, the sequential text so far favours the
    sequential one: a window is scored after none, the sequential and the batched text so far
    (select.CONTEXTS), and the batched text's leads are added. The second window is scored after each
    engine's first text."""
    import numpy as np

    seen: list[list[str]] = []

    def fake(model, audio, texts, *, language, prompts):
        seen.append(list(prompts))
        return [list(x) for x in sums]

    monkeypatch.setattr(select, "text_logprobs_after", fake)
    sequential = [_seg(0, 5, "The KV cache grows."), _seg(6, 10, "Every token adds a row.")]
    batched = [_seg(0, 5, "The cave cache grows."), _seg(6, 10, "Every token adds a rope.")]
    out, choices = select.pick(
        model=None,  # type: ignore[arg-type]
        samples=np.zeros(16_000 * 10, np.float32),
        chunks=[Chunk(0.0, 5.0), Chunk(6.0, 10.0)],
        sequential=sequential,
        batched=batched,
        language="en",
    )
    assert [c.chosen for c in choices] == [chosen, chosen]
    assert seen[0] == ["", "", ""] and seen[1] == ["", "The KV cache grows.", "The cave cache grows."]
    assert len(choices[0].scores) == len(select.CONTEXTS)


def test_a_looping_window_scored_after_a_long_previous_text_fits_the_decoder(tiny):
    """A 30 s window that loops has ~440 tokens of text; with 223 tokens of previous text on top it ran past
    Whisper's 448-token context and the whole command died ("size of tensor a (450) must match ... 448", an
    unseen ramble at stop 31). The previous text now gets what the text leaves."""
    model, samples = tiny
    loop = " ".join(["the weights get squished down to int8 and the activations stay in bf16"] * 40)
    previous = " ".join(["so the next thing I tried was a different quantization scheme"] * 30)
    [[long_score, short_score]] = select.text_logprobs_after(
        model, samples[: 30 * 16000], [loop, "the weights get squished"], language="en", prompts=[previous]
    )
    assert long_score < short_score < 0  # scored, both finite, and the loop far less likely
