"""Deterministic transcript cleaning: fillers, restarts, stutters, run-ons, segment map."""

from __future__ import annotations

from ramble2post.structure.clean import MAX_WORDS, clean_segments, clean_text
from ramble2post.structure.select import MAX_WORDS as SELECTABLE_WORDS


def seg(i, text, start=None):
    start = float(i * 10) if start is None else start
    return {"id": i, "start": start, "end": start + 10.0, "text": text}


def test_restart_is_collapsed():
    out = clean_text("Alright, so I’m gonna try. Alright, so I’m gonna try to go through this process again.")
    assert out == "Alright, so I’m gonna try to go through this process again."


def test_fillers_and_stutter_removed():
    out = clean_text("Even in the world of, like, prototyping, um, in hardcore coding. There, there is some use of AI.")
    assert out == "Even in the world of prototyping in hardcore coding. There is some use of AI."


def test_you_know_removed_only_when_set_off():
    assert clean_text("And, you know, probably work on it.") == "And probably work on it."
    assert clean_text("Do you know what a GPU is?") == "Do you know what a GPU is?"


def test_fillers_after_a_conjunction_or_a_broken_word_and_as_a_tag():
    # real podcast sentences (tests/data/structure_gold): the filler sits after "which", "and", "to--"
    assert clean_text("It worked, which you know, made me look smart.") == "It worked, which made me look smart."
    assert clean_text("And you know, what's coming out is text.") == "And what's coming out is text."
    assert clean_text("You have to-- you know, it's von Neumann.") == "You have to-- it's von Neumann."
    assert clean_text("This is real science, you know? Yes.") == "This is real science. Yes."
    assert clean_text("Like this, I mean, it's already aged.") == "Like this it's already aged."


def test_you_know_and_i_mean_kept_as_words():
    for text in (
        "So you know when to stop.",
        "Put it in the words that you know.",
        "I mean it.",
        "You know where it is.",
    ):
        assert clean_text(text) == text


def test_restart_openers_removed_but_emphasis_kept():
    assert clean_text("So, so the short version is this.") == "So the short version is this."
    assert clean_text("And, and probably I need more.") == "And probably I need more."
    assert clean_text("It is so, so much faster.") == "It is so, so much faster."


def test_like_and_kind_of_kept_when_meaningful():
    text = "The mind is kind of like this compression system. I like GPUs. There needs to be some kind of hybrid."
    assert clean_text(text) == text


def test_hedge_kind_of_removed():
    assert (
        clean_text("It's kind of weird because it kind of dilutes the idea.")
        == "It's weird because it dilutes the idea."
    )


def test_emphasis_repeat_kept():
    assert clean_text("It fills up very, very quickly.") == "It fills up very, very quickly."


def test_sentences_keep_segment_ids_and_times():
    sents = clean_segments([seg(0, "Um, the KV cache is a"), seg(1, "container. It fills"), seg(2, "up fast.")])
    assert [s.text for s in sents] == ["The KV cache is a container.", "It fills up fast."]
    assert sents[0].segments == (0, 1) and sents[1].segments == (1, 2)
    assert (sents[0].start, sents[0].end) == (0.0, 20.0)
    assert (sents[1].start, sents[1].end) == (10.0, 30.0)
    assert [s.id for s in sents] == [1, 2]


def test_run_on_is_split_at_a_conjunction():
    long = (
        "I think the best approach is to bring the complex idea into simple terms for everyone listening, "
        "and then I would walk through one concrete example that shows the idea from start to end in detail, "
        "so that the audience can react to it in a simple way without any jargon at all today"
    )
    sents = clean_segments([seg(0, long)])
    assert len(sents) >= 2
    assert all(len(s.text.split()) <= MAX_WORDS for s in sents)
    assert sents[1].text[0].isupper() and sents[0].text.endswith(".")


def test_a_talk_written_without_stops_is_split_where_a_segment_opens_with_a_capital():
    """Whisper sometimes writes a whole talk without a full stop but keeps its capitals (a structure holdout
    transcript: 797 words in 4 "sentences", so nothing was short enough to select). A segment that opens with a
    capitalised word starts a sentence; one that opens lower case, or with an acronym, continues one."""
    segs = [
        seg(
            0,
            "The one thing I want you to walk away with is that the compiler speeds things up by fusing a bunch of small",
        ),
        seg(1, "operations into one kernel so your data makes fewer trips to memory"),
        seg(2, "FP16 halves the bytes again and the kernel reads every input exactly once"),
        seg(3, "So what actually happens when you wrap a model is graph capture of every tensor operation you run"),
        seg(4, "There's a piece that watches your Python code run and records the operations into a graph for later"),
    ]
    sents = clean_segments(segs)
    texts = [s.text for s in sents]
    assert len(texts) == 3 and all(len(t.split()) <= SELECTABLE_WORDS for t in texts), texts  # was one of 82 words
    assert texts[1].startswith("So what actually happens") and texts[2].startswith("There's a piece"), texts
    assert not any(t.startswith(("Operations", "FP16")) for t in texts), texts  # continuations stay joined
    assert sents[0].text.endswith(".") and 0 in sents[0].segments and 1 in sents[0].segments


def test_empty_and_dash_segments():
    assert clean_segments([seg(0, " - "), seg(1, "")]) == []


def test_like_before_a_number_and_kinda():
    assert (
        clean_text("There's like three layers. It's like a notebook.") == "There's three layers. It's like a notebook."
    )
    assert clean_text("I just kinda give the framework.") == "I just give the framework."
