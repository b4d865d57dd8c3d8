"""The guard's checks on a re-decoded text: foreign scripts, speaking rate, a repetition both decodings heard."""

from __future__ import annotations

import numpy as np
import pytest

from ramble2post.transcribe import guard, select


def seg(start, end, text):
    return {"start": start, "end": end, "text": text, "avg_logprob": -0.2, "no_speech_prob": 0.01}


GARBLED = "leaning into like saying I'm giving up ول Districts에요 The Musik Very Little Harm"  # c16, batched


@pytest.mark.parametrize(
    "text,runs",
    [
        (GARBLED, ["ول", "에요"]),
        ("A step takes 12 μs, about π times the copy.", []),  # one letter of a script is a symbol
        ("The KV cache, the roofline and the int8 GEMM.", []),
        ("Das Modell läuft auf der GPU, ça va.", []),  # Latin letters with accents are Latin
    ],
)
def test_foreign_runs_in_an_english_recording(text, runs):
    assert guard.foreign_runs(text, guard.expected_scripts(["plain English words"])) == runs


def test_a_recordings_own_scripts_are_not_foreign():
    texts = ["これは日本語のテキストです。", "KV キャッシュはメモリを使います。"]
    expected = guard.expected_scripts(texts)
    assert {"CJK", "LATIN"} <= expected
    assert all(guard.foreign_runs(t, expected) == [] for t in texts)
    # a script with a sliver of the recording's letters is not its own
    assert "ARABIC" not in guard.expected_scripts(["a long English sentence about caches " * 20 + "ول"])


def test_a_foreign_script_segment_is_decoded_again_and_replaced():
    samples = np.zeros(30 * 16000, np.float32)
    segs = [seg(0.0, 8.0, "We start with the weights."), seg(8.0, 20.0, GARBLED), seg(20.0, 28.0, "Then the cache.")]
    clean = "leaning into saying I'm giving up, there's very little harm in it"
    fixed, records = guard.repair(samples=samples, segments=segs, regions=[], decode=lambda c: [seg(1.0, 13.0, clean)])
    assert [(r["reason"], r["applied"]) for r in records] == [("script", True)]
    assert [s["text"] for s in fixed] == ["We start with the weights.", clean, "Then the cache."]


def test_a_redecode_in_a_foreign_script_is_refused():
    samples = np.zeros(30 * 16000, np.float32)
    segs = [seg(0.0, 8.0, "We start with the weights."), seg(8.0, 20.0, GARBLED)]
    fixed, records = guard.repair(
        samples=samples, segments=segs, regions=[], decode=lambda c: [seg(1.0, 13.0, GARBLED)]
    )
    assert fixed == segs and records[0]["applied"] is False


def test_a_redecode_faster_than_anyone_speaks_is_refused():
    """c16: a 0.9-s echo ("How's this done?") re-decoded as whisper's best-known invention; kept as it was."""
    samples = np.zeros(40 * 16000, np.float32)
    segs = [seg(30.0, 34.98, "How's this done going?"), seg(34.98, 35.87, "How's this done?")]
    invented = "Thanks for watching, have a good day, and see you next time!"
    fixed, records = guard.repair(
        samples=samples, segments=segs, regions=[], decode=lambda c: [seg(1.0, 1.9, invented)]
    )
    assert [(r["reason"], r["applied"]) for r in records] == [("repeat", False)]
    assert fixed == segs
    assert not guard.too_fast("How's Jython?", 34.98, 35.87)  # what was said there fits
    assert guard.too_fast(invented, 34.98, 35.87)


def test_a_repetition_both_decodings_heard_does_not_block_the_words_the_first_one_dropped():
    """c16: the speaker's "No" x8; the batched window stopped after it, its re-decode has it and the rest."""
    old = "And you're gonna have three tiny boxes, red, green, blue, no, no, no, no, no, no, no, no"
    new = old + ". That was my look. You know, a lot of people like leaning into saying I'm giving up."
    assert guard.is_loop(old) and guard.is_loop(new)
    assert not guard.loops_beyond(new, old)
    assert guard.loops_beyond(new.replace("no, no,", "no, no, no, no,"), old)  # repeated more than before
    assert guard.loops_beyond(old, old)  # nothing brought back: no reason to swap one loop for another
    samples = np.zeros(40 * 16000, np.float32)
    segs = [seg(0.0, 10.0, "We start with the weights."), seg(10.0, 38.0, old)]
    fixed, records = guard.repair(samples=samples, segments=segs, regions=[], decode=lambda c: [seg(1.0, 28.0, new)])
    assert [(r["reason"], r["applied"]) for r in records] == [("loop", True)]
    assert fixed[-1]["text"] == new


def test_the_engine_text_with_a_foreign_script_loses_the_window():
    clean = "leaning into like saying I'm giving up, there's very little harm"
    assert select.disqualified(GARBLED, clean) and not select.disqualified(clean, GARBLED)
