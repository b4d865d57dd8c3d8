"""Jargon heard as ordinary words, read again by the language model (``structure.reread``)."""

from __future__ import annotations

import dataclasses

import pytest

from ramble2post.structure.reread import candidates, heard_reading, reread, sounds_alike, term_readings
from ramble2post.transcribe.glossary import Glossary

GLOSSARY = Glossary.build()


def _terms(text: str) -> set[tuple[str, str]]:
    return {(text[a:b], term) for a, b, term in candidates(text, GLOSSARY)}


def test_terms_are_read_the_ways_people_say_them():
    assert "aitchonehundred" in term_readings("H100")
    assert "beeeffsixteen" in term_readings("BF16")
    assert "gemm" in term_readings("GEMM") and "teeflops" in term_readings("TFLOPS")
    assert "threeohoh" in "".join(term_readings("MI300"))
    assert heard_reading(["T-flop"]) == "teeflop" and heard_reading(["H", "100"]) == "aitchonehundred"


def test_sound_alikes_need_close_codes_and_close_spellings():
    assert sounds_alike("gem", "gemm") and sounds_alike("matching", "batching")
    assert sounds_alike("effdeeeight", "effpeeeight")  # "FD8" for FP8
    assert not sounds_alike("got", "cuda")  # both Metaphone "KT": the letters differ too much
    assert not sounds_alike("fulfill", "prefill")


def test_candidates_are_runs_that_sound_like_a_term_and_are_not_one():
    found = _terms("So the whole thing is one big gem, and FD8 training keeps the k-me cache small.")
    assert {("gem", "GEMM"), ("FD8", "FP8"), ("k-me cache", "KV cache")} <= found
    # heard right, a number, a plural of the term, or the term without its ending: not candidates
    assert not _terms("The KV cache on A100s holds 200 tokens, and the tensor core waits.")
    assert not _terms("The KV cache idea is old.")  # a run holding a term heard right is not one
    assert not _terms("I could have got it to run, the code was good.")


class FakeScorer:
    """Log-probabilities from a table: the text's score is the sum of its words' scores (unknown words 0)."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.calls = 0

    def text_logprob(self, *, prefix: str, text: str) -> float:
        self.calls += 1
        return sum(self.scores.get(w.strip(".,"), 0.0) for w in text.split())


def test_a_term_replaces_the_heard_words_only_when_the_text_is_clearly_likelier():
    texts = ["We fused the epilogue.", "So the whole thing is one big gem.", "She found a hidden gem."]
    scorer = FakeScorer({"GEMM": 9.0})  # +9 nats wherever it is written
    out, fixes, log = reread(texts, scorer=scorer, ids=[10, 11, 12], margin=6.0)
    assert out[1] == "So the whole thing is one big GEMM." and out[2] == "She found a hidden GEMM."
    assert [(f.sentence, f.heard, f.written) for f in fixes] == [(11, "gem", "GEMM"), (12, "gem", "GEMM")]
    assert log["checked"] == 2 and out[0] == texts[0]
    out, fixes, _ = reread(texts, scorer=FakeScorer({"GEMM": 5.0}), margin=6.0)
    assert out == texts and not fixes  # +5 nats is not enough: Whisper's ear chose "gem"


def test_no_time_left_means_nothing_checked_and_nothing_changed():
    texts = ["So the whole thing is one big gem."]
    out, fixes, log = reread(texts, scorer=FakeScorer({"GEMM": 9.0}), budget_s=-1.0)
    assert out == texts and not fixes and log["skipped"] == 1 and log["checked"] == 0


def test_a_model_that_cannot_score_text_rereads_nothing():
    from ramble2post.structure.clean import Sentence
    from ramble2post.structure.reread import reread_sentences

    sents = [Sentence(id=0, text="One big gem.", segments=(0,), start=0.0, end=1.0)]
    out, fixes, log = reread_sentences(sents, model=object(), say=lambda m: None, glossary=GLOSSARY)
    assert out == sents and not fixes and log["checked"] == 0
    out, fixes, log = reread_sentences(sents, model=FakeScorer({"GEMM": 9.0}), say=lambda m: None, glossary=None)
    assert out == sents and not fixes  # use_glossary = false: Whisper's spelling stays
    said: list[str] = []
    out, fixes, _ = reread_sentences(sents, model=FakeScorer({"GEMM": 9.0}), say=said.append, glossary=GLOSSARY)
    assert out == [dataclasses.replace(sents[0], text="One big GEMM.")] and len(fixes) == 1 and said


def test_the_user_s_glossary_terms_are_re_read_too(tmp_path, monkeypatch):
    from ramble2post.structure.reread import user_glossary

    monkeypatch.setenv("RAMBLE2POST_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text('glossary = ["Groq"]\n', encoding="utf-8")
    texts = ["We served it on grok last week."]
    out, fixes, _ = reread(texts, scorer=FakeScorer({"Groq": 9.0}), glossary=user_glossary(), margin=6.0)
    assert out == ["We served it on Groq last week."], out
    (tmp_path / "config.toml").write_text("use_glossary = false\n", encoding="utf-8")
    assert user_glossary() is None


@pytest.mark.slow
def test_the_default_model_writes_the_term_where_the_talk_means_it_and_leaves_a_gem_a_gem():
    from ramble2post.config import DEFAULT_LLM
    from ramble2post.structure.models import load_llm

    model = load_llm(DEFAULT_LLM)
    texts = [
        "Okay, so, today I want to talk about FD8 training, which I finally got working on an H100 last week.",
        "She found a hidden gem of a paper about attention last week.",
        "I could just run it on the GPU tonight and see what the profiler says.",
    ]
    out, fixes, log = reread(texts, scorer=model, budget_s=60.0)
    assert "FP8 training" in out[0], log
    assert out[1:] == texts[1:], log
    assert [(f.heard, f.written) for f in fixes] == [("FD8", "FP8")]
    gains = {c["heard"]: c["nats"] for c in log["checks"]}
    assert gains["gem"] < 0  # the model reads "a hidden GEMM of a paper" as far less likely


def _draft_lines(post: dict) -> list[str]:
    from test_render_post import render

    return render(post).markdown.splitlines()


def test_a_term_written_from_context_is_shown_beside_what_was_heard_in_the_draft():
    from test_blog_common import post_json

    d = post_json(unverified=0)
    d["layers"]["reason"][0]["sentences"] = [2]
    d["jargon"] = [{"sentence": 2, "heard": "FD8", "written": "FP8"}]
    lines = _draft_lines(d)
    line = next(ln for ln in lines if "Decoding is memory bound" in ln)
    assert "heard “FD8”, written FP8 from context" in line
    other = next(ln for ln in lines if "costs the same with one passenger" in ln)
    assert "heard" not in other  # only the item whose sentence was re-read carries the note
    # a gap's closest passage, quoted in its author note, carries it too
    d["layers"]["analogy"] = []
    d["gaps"] = ["analogy"]
    d["hints"] = {"analogy": {"text": "FP8 is like a bus.", "sources": [2], "sentences": [3], "q": 0.2}}
    d["jargon"].append({"sentence": 3, "heard": "FD8", "written": "FP8"})
    line = next(ln for ln in _draft_lines(d) if "FP8 is like a bus." in ln)
    assert "heard “FD8”, written FP8 from context" in line


def test_a_sentence_the_model_cannot_score_is_left_as_heard():
    from ramble2post.errors import LLMOutputError

    class Refuses:
        def text_logprob(self, *, prefix: str, text: str) -> float:
            raise LLMOutputError("too long for one batch")

    texts = ["So the whole thing is one big gem."]
    out, fixes, log = reread(texts, scorer=Refuses())
    assert out == texts and not fixes and log["skipped"] == 1
