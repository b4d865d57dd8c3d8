"""wer.invented_repeats: the short-clip benchmark's check that an output repeats no phrase the speaker did not."""

from __future__ import annotations

import json
from pathlib import Path

from ramble2post.transcribe.wer import invented_repeats, repeated_phrases

LOOP = "So, if you want to get a new one, you can get a new one. And you can get a new one, you can get a new one."


def test_a_loop_is_an_invented_repeat_and_a_spoken_refrain_is_not():
    assert invented_repeats(reference="you can get a new one, if you want to.", hypothesis=LOOP)
    refrain = "memory bound memory bound memory bound memory bound"
    assert repeated_phrases(refrain, min_words=2, min_count=3)
    spoken = "decode is memory bound, so batch. prefill is compute bound, so decode is memory bound. yes, decode is memory bound."
    assert not invented_repeats(reference=spoken, hypothesis=spoken)


def test_a_misheard_spelling_of_a_spoken_phrase_counts_as_said():
    said = "we use log2 and exp2 here, log2 and exp2 again, and log2 and exp2 once more"
    heard = "we use log 2 and ex 2 here, log 2 and ex 2 again, and log 2 and ex 2 once more"
    assert not invented_repeats(reference=said, hypothesis=heard)


def test_the_same_mishearing_of_a_repeated_phrase_counts_as_said_but_a_loop_over_other_words_does_not():
    said = (
        "we started at a hundred and fifty thousand tokens. then a hundred and fifty thousand again, "
        "and once more a hundred and fifty thousand before we stopped."
    )
    heard = (
        "we started at at 100 and 50,000 tokens. then at 100 and 50,000 again, "
        "and once more at 100 and 50,000 before we stopped."
    )
    assert not invented_repeats(reference=said, hypothesis=heard)
    # the same phrase written over three different things the speaker said is invented
    other = "we started at one token. then two tokens again, and once more three tokens before we stopped."
    assert invented_repeats(reference=other, hypothesis=heard)


def test_the_short_clip_set_is_labelled_text():
    clips = json.loads((Path(__file__).parent / "data" / "short_clips" / "clips.json").read_text())
    clips = clips["clips"] if isinstance(clips, dict) else clips
    assert len(clips) >= 20 and all(c["reference"].strip() for c in clips)
    assert len({c["voice"] for c in clips}) >= 5  # not only espeak-ng's default voice
