"""The honesty rule: numbers, units, names and overlap; repair, replace, flag."""

from __future__ import annotations

from ramble2post.structure.verify import lexical_overlap, numbers, problems, proper_nouns, repair, units, verify_items

SRC = "So, for example, if I were to explain KV cache, it's a container that fills up very quickly in HBM."


def test_numbers_words_and_digits():
    assert numbers("a hundred dollars and 1,000 cycles, 3.5x faster") == {100.0, 1000.0, 3.5}
    assert numbers("the MI300 and H100") == {300.0, 100.0}


def test_units_and_names():
    assert units("it used 40 GB and 10 ms") == {"gb", "ms"}
    assert "nvidia" in proper_nouns("The cache on Nvidia chips fills up.")
    assert "hbm" in proper_nouns("it lives in HBM")


def test_faithful_rewrite_passes():
    assert problems("The KV cache is a container that fills up quickly in HBM.", SRC) == []


def test_invented_number_unit_and_name_fail():
    why = problems("The KV cache fills 80 GB of HBM on an H100 from Nvidia quickly.", SRC)
    text = " ".join(why)
    assert "numbers not in sources" in text and "80" in text
    assert "units not in sources: gb" in text
    assert "nvidia" in text


def test_low_overlap_fails():
    assert lexical_overlap("Bananas are yellow fruit loved by monkeys.", SRC) < 0.6
    assert any("lexical overlap" in p for p in problems("Bananas are yellow fruit loved by monkeys.", SRC))


def test_repair_drops_only_the_bad_sentence():
    fixed = repair("The KV cache is a container that fills up quickly. It holds 80 GB on Nvidia GPUs.", SRC)
    assert fixed == "The KV cache is a container that fills up quickly."
    assert repair("Totally unrelated words here about bananas.", SRC) is None


def _items():
    return [
        {"text": "The KV cache is a container that fills up quickly.", "origin": "model", "sources": [3]},
        {"text": "KV cache uses 96 GB.", "origin": "model", "sources": [3]},
        {"text": SRC, "origin": "speaker", "sources": [3]},
        {"text": SRC, "origin": "speaker", "sources": [99]},
    ]


def test_verify_items_counts_and_fallback():
    items = _items()
    block = verify_items(
        items, segment_ids={1, 2, 3}, speaker_text=lambda it: SRC, label="example", support=lambda src, claim: 0.9
    )
    assert (block["items"], block["passed"], block["replaced"], block["flagged"]) == (4, 2, 1, 1)
    assert items[0]["origin"] == "model" and items[0]["verified"]
    assert items[1]["origin"] == "speaker" and items[1]["text"] == SRC and "failed" in items[1]["note"]
    assert items[3]["verified"] is False and "99" in items[3]["note"]
    assert [d["item"] for d in block["details"]] == ["example[1]", "example[3]"]


def test_cosine_gate_used_when_given():
    why = problems("The KV cache is a container that fills up quickly.", SRC, cosine=lambda a, b: 0.1)
    assert why and "cosine" in why[0]


def test_invented_second_sentence_is_cut_and_copy_credited_to_speaker():
    items = [
        {"text": SRC + " The key lies in exploring synergies across many teams.", "origin": "model", "sources": [3]},
        {
            "text": "if I were to explain KV cache, it's a container that fills up very quickly",
            "origin": "model",
            "sources": [3],
        },
    ]
    block = verify_items(items, segment_ids={3}, speaker_text=lambda it: SRC)
    assert block["repaired"] == 1 and block["passed"] == 1
    assert items[0]["text"] == SRC and items[0]["origin"] == "speaker"
    assert items[1]["origin"] == "speaker" and "kept the speaker's words" in items[1]["note"]


def test_repeats_and_fragments():
    rep = "The KV cache is a container that fills up quickly. The KV cache is a container that fills quickly."
    assert "repeats itself" in problems(rep, SRC)
    assert repair(rep, SRC) == "The KV cache is a container that fills up quickly."
    items = [{"text": "explain KV cache", "origin": "model", "sources": [3]}]
    block = verify_items(items, segment_ids={3}, speaker_text=lambda it: SRC)
    assert block["replaced"] == 1 and items[0]["text"] == SRC and items[0]["origin"] == "speaker"


def test_a_copy_is_shown_in_the_speakers_spelling():
    lower = SRC[0].lower() + SRC[1:].replace(",", "")  # the model dropped the capital and the commas
    span = "if I were to explain KV cache, it's a container that fills up very quickly"
    items = [{"text": lower, "origin": "model", "sources": [3]}, {"text": span, "origin": "model", "sources": [3]}]
    verify_items(items, segment_ids={3}, speaker_text=lambda it: SRC)
    assert items[0]["text"] == SRC and items[0]["origin"] == "speaker"  # the whole sentence: exactly as said
    assert items[1]["text"] == "I" + span[1:] and items[1]["origin"] == "speaker"  # a span: capitalised


def test_a_failing_rewrite_is_not_kept_in_part():
    """Model text that survives cutting a failing rewrite is dropped for the speaker's words: the output
    it came from already drifted (observed: "the light at the end of the tunnel" became "The mind is like
    a light at the end of the tunnel." plus an invented sentence; the first passed on its own)."""
    src = "There's kind of like the light at the end of the tunnel."
    items = [
        {
            "text": "The mind is like a light at the end of the tunnel. This analogy helps you understand trade-offs.",
            "origin": "model",
            "sources": [3],
        }
    ]
    assert not problems("The mind is like a light at the end of the tunnel.", src)  # the part passes alone
    block = verify_items(items, segment_ids={3}, speaker_text=lambda it: src)
    assert block["replaced"] == 1 and block["repaired"] == 0
    assert items[0]["text"] == src and items[0]["origin"] == "speaker" and "failed" in items[0]["note"]


def test_a_rewrite_the_rules_pass_needs_the_model_judge_too():
    """Issue 24: every model sentence shown passed both checks; without a judge, or below its bar,
    the speaker's words stand (and nothing of the rewrite is kept)."""
    from ramble2post.structure.support import SUPPORT_MIN

    rewrite = "The KV cache is a container that fills up quickly."
    asked: list[tuple[str, str]] = []

    def judge(p: float | None):
        def check(src: str, claim: str) -> float | None:
            asked.append((src, claim))
            return p

        return check

    for support, shown in [
        (judge(SUPPORT_MIN + 0.1), "model"),
        (judge(SUPPORT_MIN - 0.1), "speaker"),
        (judge(None), "speaker"),
        (None, "speaker"),
    ]:
        items = [{"text": rewrite, "origin": "model", "sources": [3]}]
        block = verify_items(items, segment_ids={3}, speaker_text=lambda it: SRC, support=support)
        assert items[0]["origin"] == shown, (support, items[0])
        if shown == "speaker":
            assert items[0]["text"] == SRC and block["replaced"] == 1
            assert "judge" in " ".join(block["details"][0]["reasons"])
    assert asked[0] == (SRC, rewrite)
    # a rewrite the rules already refuse is not put to the judge
    asked.clear()
    verify_items(
        [{"text": "KV cache uses 96 GB.", "origin": "model", "sources": [3]}],
        segment_ids={3},
        speaker_text=lambda it: SRC,
        support=judge(0.99),
    )
    assert asked == []
