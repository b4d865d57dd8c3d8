"""Detection: spoken phrasings (incl. transcription slips) find quantization-loss; other talk finds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_blog_common import transcript_of

from ramble2post.experiments.detect import detect_experiments, num, segments_from_text
from ramble2post.records import Transcript

REPO = Path(__file__).resolve().parent.parent
SAMPLE_1MIN_TXT = REPO / "samples" / "explain-format-ramble-1min.txt"
RAMBLE_13MIN_TXT = REPO.parent / "shared" / "audio" / "explain-format-ramble.txt"


def _names(text: str) -> set[str]:
    return {d.experiment for d in detect_experiments(transcript=text)}


QUANT_PHRASES = [
    "So the question is how much worse is int8 compared to the full model.",
    "If you go int four you save a lot of memory.",
    "Four bit weights are everywhere now.",
    "We run the 4-bit version on the laptop.",
    "You can quantize the weights and it mostly still works.",
    "The quantized model was a bit dumber, honestly.",
    "How much worse is in eight, really?",  # 'int8' heard as 'in eight'
    "Then we tried int 8 on the same prompts.",  # 'int8' heard as 'int 8'
    "Eight bit is basically free these days.",
    "People ship GPTQ and AWQ checkpoints for that.",
    "I looked at the GPT-Q numbers.",
    "Going from FP16 to in four is where the quality drops.",  # fp16 + slip + quality
    "Like the Q4_K_M files in llama.cpp.",
    "Quantisation is the British spelling.",
    "What does FP8 do to the outputs?",
    "At three bits per weight it falls apart.",
    "So we drop to bf16 and then lower the precision even more.",
]


@pytest.mark.parametrize("phrase", QUANT_PHRASES)
def test_quantization_phrasings_are_detected(phrase):
    assert "quantization-loss" in _names(phrase), phrase


NEGATIVE_PHRASES = [
    "I will see you in four weeks and in eight days after that.",
    "Sixty four bit operating systems are the norm.",
    "The quality of the talk was a little bit worse than I hoped.",
    "We need more precision in how we explain things.",
    "There are three layers and two solutions, maybe four.",
    "It takes a bit of time, bit by bit.",
    "A hundred dollars of credit to run the MI300.",
]


@pytest.mark.parametrize("phrase", NEGATIVE_PHRASES)
def test_unrelated_speech_detects_no_quantization(phrase):
    assert "quantization-loss" not in _names(phrase), phrase


def test_fp16_alone_is_not_enough():
    # one weak hit (fp16 in a GPU-spec sentence) must not trigger an experiment
    assert "quantization-loss" not in _names("The H100 does about a petaflop of FP16.")


def test_no_detection_in_the_one_minute_sample():
    assert detect_experiments(transcript=SAMPLE_1MIN_TXT.read_text(encoding="utf-8")) == []


@pytest.mark.skipif(not RAMBLE_13MIN_TXT.exists(), reason="shared/ ramble text not present")
def test_no_quantization_in_the_13_minute_ramble():
    # it talks about the MI300, HBM and the KV cache, but never about quantization
    assert "quantization-loss" not in _names(RAMBLE_13MIN_TXT.read_text(encoding="utf-8"))


def _transcript(texts: list[str]) -> Transcript:
    return transcript_of(texts, seconds=10.0)


def test_evidence_carries_segment_ids_quotes_and_times():
    t = _transcript(
        [
            "Okay so let me start.",
            "I keep wondering how much we lose if we quantize the weights.",
            "Like, is Int8 fine?",
            "Anyway, lunch.",
        ]
    )
    (det,) = [d for d in detect_experiments(transcript=t) if d.experiment == "quantization-loss"]
    quotes = {(e.segment_id, e.quote) for e in det.evidence}
    assert (1, "quantize") in quotes and (2, "Int8") in quotes
    ev = next(e for e in det.evidence if e.quote == "Int8")
    assert (ev.start, ev.end) == (20.0, 29.5)
    assert det.score >= 1.0
    assert json.loads(json.dumps(det.to_dict()))["experiment"] == "quantization-loss"


def test_context_words_count_only_next_to_a_real_hit():
    # "in eight" (weak, 0.5) + "worse" + "quality" (context) reaches 1.0 ...
    assert "quantization-loss" in _names("The quality gets worse in eight, I think.")
    # ... but context words alone never do
    assert "quantization-loss" not in _names("The quality got worse and worse, accuracy too, with precision.")


def test_hits_far_apart_do_not_add_up():
    far = ["we go in four"] + ["filler sentence here."] * 6 + ["then in eight"]
    t = _transcript(far)
    assert "quantization-loss" not in {d.experiment for d in detect_experiments(transcript=t)}


def test_num_accepts_digits_and_words():
    import re

    rx = re.compile(rf"^{num(4, 16)}$", re.I)
    assert all(rx.match(s) for s in ("4", "four", "16", "Sixteen"))
    assert not rx.match("five")


def test_segments_from_text_splits_sentences():
    segs = segments_from_text("One two. Three four five! Six?")
    assert [s.text for s in segs] == ["One two.", "Three four five!", "Six?"]
    assert segs[1].start == segs[0].end


def test_cli_detect_json_and_text(tmp_path):
    from ramble2post.cli.main import cli

    p = tmp_path / "t.json"
    p.write_text(json.dumps(_transcript(["How much worse is int4 than int8?"]).to_dict()), encoding="utf-8")
    r = CliRunner().invoke(cli, ["experiments", "detect", str(p), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data[0]["experiment"] == "quantization-loss"
    assert {e["quote"] for e in data[0]["evidence"]} >= {"int4", "int8"}
    r = CliRunner().invoke(cli, ["experiments", "detect", str(SAMPLE_1MIN_TXT)])
    assert r.exit_code == 0 and "No experiments" in r.output


def test_cli_detect_rejects_a_non_transcript(tmp_path):
    from ramble2post.cli.main import cli

    p = tmp_path / "bad.json"
    p.write_text('{"hello": 1}', encoding="utf-8")
    r = CliRunner().invoke(cli, ["experiments", "detect", str(p)])
    assert r.exit_code == 2
    assert "not a transcript" in r.output and "Traceback" not in r.output


# a continuous-batching ramble of stop 32 (Whisper's words): its prefill complaint, with "a 4000 token prompt",
# is close in meaning to speculative decoding, which then ran for 146 s and got a verdict on a sentence about latency
BATCHING_TALK = (
    "So continuous batching is the thing everybody turns on first for serving. "
    "Static batching waits for the whole batch, continuous batching swaps a finished sequence out every step. "
    "Okay so where was I. "
    "Your time between tokens gets spiked, if someone drops a 4000 token prompt and every model else's next token is "
    "late, you can see it in the P9.9. "
    "And the schedule is just way more complicated. "
    "You're tracking memory per sequence, deciding who to admit, sometimes having to preempt, somebody, because "
    "you're out of cash, and you're way too optimistic."
)


def test_a_number_claim_does_not_lower_the_semantic_bar_once_the_rules_found_the_ramble_s_subject():
    found = {d.experiment for d in detect_experiments(transcript=segments_from_text(BATCHING_TALK))}
    assert "batching-speedup" in found  # the rules see the subject
    assert "speculative-decoding" not in found  # the numbers are about it, not about another experiment
