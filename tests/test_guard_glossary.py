"""Loop / dropped-passage guard and jargon glossary: pure functions, no model."""

from __future__ import annotations

import numpy as np
import pytest

from ramble2post.config import Settings
from ramble2post.errors import InputError
from ramble2post.records import ModelInfo, Segment, Transcript
from ramble2post.transcribe import guard
from ramble2post.transcribe.glossary import Glossary, correct_text, glossary_setting, term_counts, user_terms
from ramble2post.transcribe.stage import TranscribeOptions, apply_glossary, cache_key


def seg(start, end, text):
    return {"start": start, "end": end, "text": text, "avg_logprob": -0.2, "no_speech_prob": 0.01}


# ---------------------------------------------------------------------------- guard


@pytest.mark.parametrize(
    "text,loop",
    [
        ("The KV cache grows with the context, and with the batch.", False),
        ("No, no, no, that is not what I meant.", False),
        ("and the batch size and the batch size and the batch size and the batch size and the batch size", True),
        ("memory bound. Memory bound, memory bound, memory bound.", False),  # said, not a loop
        ("so so so so so so so so", True),
        ("I think that " + "the roofline is the roofline. " * 6, True),
    ],
)
def test_is_loop(text, loop):
    assert guard.is_loop(text) is loop


def test_loop_spread_over_short_segments_is_found():
    segs = [
        seg(0, 4, "We start with the weights."),
        *(seg(4 + i, 5 + i, "You know, you know, you know.") for i in range(4)),
    ]
    flags = guard.find_loops(segs)
    assert [(f.reason, f.segments) for f in flags] == [("repeat", (2, 3, 4))]  # the first one is kept


def test_gaps_are_speech_without_segments():
    regions = [(0.0, 20.0), (25.0, 30.0)]
    segs = [seg(0.0, 8.0, "one"), seg(14.0, 20.0, "two"), seg(25.0, 30.0, "three")]
    gaps = guard.find_gaps(regions, segs)
    assert [(g.start, g.end, g.reason) for g in gaps] == [(8.0, 14.0, "gap")]
    assert guard.find_gaps(regions, segs, min_gap_s=7.0) == []


def test_repair_replaces_loop_and_fills_gap():
    samples = np.zeros(40 * 16000, np.float32)
    segs = [
        seg(0.0, 5.0, "We measured it."),
        seg(5.0, 10.0, "the cache the cache the cache the cache the cache"),
        seg(20.0, 25.0, "Then we stopped."),
    ]
    calls = []

    def decode(clip):
        calls.append(len(clip) / 16000)
        return [seg(1.0, 3.0, "fresh words here")]

    fixed, records = guard.repair(samples=samples, segments=segs, regions=[(0.0, 25.0)], decode=decode)
    reasons = sorted(r["reason"] for r in records)
    assert reasons == ["gap", "loop"] and all(r["applied"] for r in records)
    texts = [s["text"] for s in fixed]
    assert "the cache the cache the cache the cache the cache" not in texts
    assert texts.count("fresh words here") == 2  # the loop's replacement and the gap's text
    assert [s["start"] for s in fixed] == sorted(s["start"] for s in fixed)


def test_repair_keeps_original_when_redecode_loops_too():
    samples = np.zeros(12 * 16000, np.float32)
    segs = [seg(0.0, 10.0, "go " * 12)]
    fixed, records = guard.repair(
        samples=samples, segments=segs, regions=[(0.0, 10.0)], decode=lambda c: [seg(0, 5, "go " * 10)]
    )
    assert fixed == segs and records[0]["applied"] is False


def test_repair_without_flags_does_not_decode():
    segs = [seg(0.0, 5.0, "All good here.")]
    fixed, records = guard.repair(
        samples=np.zeros(5 * 16000, np.float32), segments=segs, regions=[(0.0, 5.0)], decode=lambda c: 1 / 0
    )
    assert fixed == segs and records == []


# ---------------------------------------------------------------------------- glossary


@pytest.mark.parametrize(
    "text,want",
    [
        ("the kv cash is int 8", "the KV cache is int8"),
        ("Laura adapters, all reduce.", "LoRA adapters, all-reduce."),
        ("llama cpp on an MI 300 and tiny grad", "llama.cpp on an MI300 and tinygrad"),
        ("torch dot compile, pre-fill, roof line", "torch.compile, prefill, roofline"),
        ("Roofline first, then batching.", "Roofline first, then batching."),  # sentence capital kept
        ("It fits in 8 gigabytes.", "It fits in 8 gigabytes."),  # "in 8" is not int8
        ("the kv. Cache", "the kv. Cache"),  # never across a full stop
        # the article and a number are a quantity, not the A100 (seen: "nvidia-smi says a hundred percent"
        # written "A100% utilization"); the GPU said with its capital still is one
        ("it says a 100% utilization", "it says a 100% utilization"),
        ("it was a 100 times faster", "it was a 100 times faster"),
        ("A 100 tokens a second.", "A 100 tokens a second."),
        ("we ran it on an A 100 GPU, 80 gigs", "we ran it on an A100 GPU, 80 gigs"),
        ("The A 100 has 40 GB.", "The A100 has 40 GB."),
    ],
)
def test_correct_text(text, want):
    assert correct_text(text, Glossary.build())[0] == want


@pytest.mark.parametrize(
    "text,want",
    [
        # rule 3: a term said in three words, one heard as a word that sounds like it
        ("that line was Torch, not compile. So", "that line was torch.compile. So"),
        ("I built llama, not cpp from source", "I built llama.cpp from source"),
        ("pip install MLX, LM, then run it", "pip install MLX-LM, then run it"),  # a pause heard as a comma
        # and what it must leave alone
        ("MLX, LM Studio and Ollama", "MLX, LM Studio and Ollama"),  # two tools, not MLX-LM
        ("the CPU cache is cold", "the CPU cache is cold"),  # an acronym Whisper chose to write
        ("they all produce the same output", "they all produce the same output"),  # only a function word heard
        ("we will reduce it", "we will reduce it"),
        ("torch, not numpy", "torch, not numpy"),  # the odd word must sound like the missing one
        ("Torch. Not compile", "Torch. Not compile"),  # never across a full stop
    ],
)
def test_sound_alike_rule(text, want):
    assert correct_text(text, Glossary.build())[0] == want


def test_sound_alike_rule_can_be_turned_off():
    text = "wrap it in torch, not compile"
    assert correct_text(text, Glossary.build(sounds_alike=False))[0] == text
    fixed, done = correct_text(text, Glossary.build())
    assert fixed == "wrap it in torch.compile" and done == [("torch, not compile", "torch.compile")]


def test_user_glossary_from_config_adds_terms():
    g = Glossary.build(terms=user_terms({"Groq": ["grok"], "Cerebras": "sarah bras"}))
    assert correct_text("grok and sarah bras", g)[0] == "Groq and Cerebras"
    assert user_terms(["Groq"]) == {"Groq": ()}
    assert glossary_setting(Settings(use_glossary=False)) is None
    assert glossary_setting(Settings(glossary=["Groq"])) == (("Groq", ()),)
    with pytest.raises(InputError):
        glossary_setting(Settings(glossary=3))


def test_jargon_prompt_lists_the_terms_once_and_the_users_too():
    from ramble2post.transcribe.glossary import BUILTIN_TERMS, PROMPT_SKIP, jargon_prompt, prompt_setting

    prompt = jargon_prompt()
    assert prompt.startswith("A talk about GPUs") and prompt.endswith(" and quantization.")
    assert all(t in prompt for t in BUILTIN_TERMS if t not in PROMPT_SKIP)
    assert "KV caches" not in prompt  # one spelling per term
    assert prompt_setting(Settings(jargon_prompt=False)) is None
    mine = prompt_setting(Settings(jargon_prompt=True, glossary={"Groq": ["grok"]}))
    assert mine is not None and mine.endswith(" and Groq.") and mine.count("KV cache") == 1
    assert jargon_prompt(["Groq"], builtin=False) == "A talk about GPUs and LLM inference: Groq."


def test_term_counts_whole_words():
    counts = term_counts("The KV cache, kv caches and int8. int80", ["KV cache", "int8"])
    assert counts == {"KV cache": 1, "int8": 1}


def _transcript(texts):
    info = ModelInfo(name="base", source="path", path="x", sha256="0" * 64)
    segs = tuple(Segment(id=i, start=2.0 * i, end=2.0 * i + 2, text=t) for i, t in enumerate(texts))
    return Transcript("a.wav", "", 4.0, "en", " ".join(texts), segs, info, "cpu", {}, {})


@pytest.mark.parametrize(
    "text,want",
    [
        # rule 4: one letter heard as another whose spoken name rhymes with it (seen on the jargon sets)
        ("each group gets its own fd16 scale", "each group gets its own FP16 scale"),
        ("FB8 weights and FD8 activations", "FP8 weights and FP8 activations"),
        ("keys in VF16 and values", "keys in BF16 and values"),
        ("the V200 is faster", "the B200 is faster"),
        # rule 5: a count written against the term
        ("BF16 on 1H100 and", "BF16 on 1 H100 and"),
        ("we had 8H100s and 2FP32 copies", "we had 8 H100s and 2 FP32 copies"),
        # and what they leave alone
        ("the CPU, the GPU, a TPU and VQA", "the CPU, the GPU, a TPU and VQA"),  # other acronyms
        ("patching the model", "patching the model"),  # a plain word is never a term's rhyme
        ("a P100, a V100, a B100 and a T4", "a P100, a V100, a B100 and a T4"),  # other GPUs
        ("with TQA there", "with TQA there"),  # a capitalised word without a digit, GQA never heard right
        ("it took 70B and 16GB", "it took 70B and 16GB"),
        ("eight MI300s and two mi300s", "eight MI300s and two mi300s"),  # a plural, not MI300X
    ],
)
def test_rhyming_letters_and_glued_counts(text, want):
    assert correct_text(text, Glossary.build())[0] == want


def test_a_capitalised_rhyme_needs_the_term_heard_right_in_the_same_transcript():
    t = apply_glossary(_transcript(["But with TQA there it fits.", "GQA shares the keys."]), ())
    assert t.text == "But with GQA there it fits. GQA shares the keys."
    assert [(c.original, c.corrected) for c in t.corrections] == [("TQA", "GQA")]
    alone = apply_glossary(_transcript(["But with TQA there it fits.", "MQA shares the keys."]), ())
    assert alone.text == "But with TQA there it fits. MQA shares the keys."


def test_corrections_are_recorded_in_the_transcript_json():
    t = apply_glossary(_transcript(["We use the kv cash.", "Then int 8."]), ())
    assert t.text == "We use the KV cache. Then int8."
    assert [(c.original, c.corrected, c.start) for c in t.corrections] == [
        ("kv cash", "KV cache", 0.0),
        ("int 8", "int8", 2.0),
    ]
    again = Transcript.from_dict(t.to_dict())
    assert again.corrections == t.corrections
    assert apply_glossary(_transcript(["kv cash"]), None).text == "kv cash"


def test_glossary_is_not_part_of_the_cache_key():
    a = cache_key(
        audio_sha256="a", model_sha256="m", options=TranscribeOptions(glossary=None), device="cpu", decoder="d"
    )
    b = cache_key(
        audio_sha256="a", model_sha256="m", options=TranscribeOptions(glossary=(("X", ()),)), device="cpu", decoder="d"
    )
    assert a == b


# ---------------------------------------------------------------------------- VAD choice


def _bursts(noise_amp: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 10) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * ((t % 2) < 1.2)).astype(np.float32)  # 1.2-s "words", 0.8-s pauses
    return (x + noise_amp * rng.standard_normal(len(x))).astype(np.float32)


def test_auto_vad_asks_silero_only_on_noisy_audio(monkeypatch):
    from ramble2post.transcribe import vad

    asked = []
    monkeypatch.setattr(vad, "silero_regions", lambda **kw: asked.append(1) or [(0.0, 10.0)])
    monkeypatch.setattr(vad, "silero_available", lambda: True)
    clean = vad.detect_speech(samples=_bursts(0.0), engine="auto")
    assert not asked and len(clean) == 5  # energy VAD: the five bursts
    assert vad.level_spread_db(_bursts(0.1)) < vad.NOISY_SPREAD_DB < vad.level_spread_db(_bursts(0.0))
    assert vad.detect_speech(samples=_bursts(0.1), engine="auto") == [(0.0, 10.0)] and asked
    monkeypatch.setattr(vad, "silero_available", lambda: False)
    assert vad.detect_speech(samples=_bursts(0.1), engine="auto") != [(0.0, 10.0)]  # falls back to energy


def test_thin_window_is_flagged_when_its_words_per_second_fall_far_below_the_others():
    windows = [{"start": 30.0 * k, "end": 30.0 * k + 28.0} for k in range(4)]
    said = "word " * 70  # 2.5 words per second of speech
    segs = [seg(30.0 * k, 30.0 * k + 28.0, said) for k in range(4)]
    assert guard.find_thin(windows, segs) == []
    segs[2] = seg(60.0, 88.0, "word " * 20)  # a window that lost most of its text
    assert [(f.reason, f.start, f.segments) for f in guard.find_thin(windows, segs)] == [("thin", 60.0, (2,))]
    # packed windows: the rate is per second of speech in the parts, not of the whole span
    packed = (
        [{"start": 0.0, "end": 59.0, "parts": [(0.0, 8.0), (49.0, 59.0)]}]
        + windows[2:]
        + [windows[0] | {"start": 120.0, "end": 148.0}]
    )
    full = [seg(0.0, 59.0, "word " * 45)] + [seg(30.0 * k, 30.0 * k + 28.0, said) for k in (2, 3, 4)]
    assert guard.find_thin(packed, full) == []  # 45 words in 18 s of speech: 2.5 words/s
    assert guard.find_thin(windows[:2], segs[:2]) == []  # too few windows to know the speaker's rate


def test_repair_of_a_thin_window_needs_more_words():
    samples = np.zeros(16000 * 120, np.float32)
    windows = [{"start": 30.0 * k, "end": 30.0 * k + 28.0} for k in range(4)]
    rng = np.random.default_rng(1)
    said = [" ".join("".join(rng.choice(list("abcdefghij"), 5)) for _ in range(70)) for _ in range(4)]  # 70 words
    segs = [seg(30.0 * k, 30.0 * k + 28.0, said[k]) for k in range(4)]
    segs[1] = seg(30.0, 58.0, "only a few words were kept here")
    fewer, _ = guard.repair(
        samples=samples, segments=segs, regions=[], decode=lambda clip: [seg(0.0, 5.0, "even fewer")], windows=windows
    )
    assert fewer == segs
    more = [seg(1.0, 27.0, "the whole passage was said here, " + said[1])]
    fixed, records = guard.repair(samples=samples, segments=segs, regions=[], decode=lambda c: more, windows=windows)
    assert records[0]["reason"] == "thin" and records[0]["applied"]
    assert "whole passage" in fixed[1]["text"] and len(fixed) == 4


def test_short_phrases_said_again_are_speech_and_a_stuttering_redecode_is_refused():
    segs = [seg(0, 4, "The cache costs 24 kilobytes per token."), seg(4, 5, "Per token.")]
    assert guard.find_loops(segs) == []  # a two-word echo is speech (it was flagged before)
    segs = [seg(0, 4, "Every token reads every weight."), seg(4, 8, "Every token reads every weight.")]
    stutter = [seg(0.0, 2.0, "The token. The token."), seg(2.0, 3.0, "So single request with")]
    fixed, records = guard.repair(
        samples=np.zeros(16000 * 10, np.float32), segments=segs, regions=[], decode=lambda clip: stutter
    )
    assert fixed == segs and records[0]["reason"] == "repeat" and not records[0]["applied"]


@pytest.mark.parametrize("name", ["jargon_holdout", "jargon_holdout2", "jargon_holdout3"])
def test_the_jargon_holdout_is_labelled_text_with_many_terms(name):
    """tests/data/jargon_holdout*: the sets jargon recall is reported on (docs/PERFORMANCE.md); the second,
    new rambles none of whose transcripts were read before the term bias was measured on it."""
    import json
    from pathlib import Path

    from ramble2post.transcribe.glossary import BUILTIN_TERMS

    root = Path(__file__).parent / "data" / name
    folders = sorted(p for p in root.iterdir() if (p / "reference.txt").exists())
    assert len(folders) >= 8
    seen: set[str] = set()
    for folder in folders:
        recipe = json.loads((folder / "labels.json").read_text(encoding="utf-8"))["audio"]
        assert "espeak" in recipe["tool"] and recipe["voice"] and 100 <= recipe["speed_wpm"] <= 250
        counts = term_counts((folder / "reference.txt").read_text(encoding="utf-8"), list(BUILTIN_TERMS))
        assert sum(counts.values()) >= 8, folder.name
        seen |= {t for t, n in counts.items() if n}
    assert len(seen) >= 25
