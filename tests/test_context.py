"""Prompting each batched window with the words before it (ramble2post.transcribe.context)."""

from __future__ import annotations

import pytest

from ramble2post.transcribe import context
from ramble2post.transcribe.context import PROMPT_MAX_TOKENS, plan_chains, row_prompts

# ---------------------------------------------------------------------------- layout, no model


@pytest.mark.parametrize("n,batch,chains", [(36, 8, 2), (7, 8, 2), (1, 8, 2), (23, 8, 2), (40, 16, 1), (5, 1, 2)])
def test_every_window_once_and_its_predecessor_one_batch_earlier(n, batch, chains):
    plan = plan_chains(n, batch_size=batch, chains=chains)
    seen = [i for chain in plan for b in chain for i in b]
    assert sorted(seen) == list(range(n))  # every window exactly once
    assert all(len(b) <= batch for chain in plan for b in chain)
    for chain in plan:
        where = {i: k for k, b in enumerate(chain) for i in b}
        lo, hi = min(where), max(where)
        assert sorted(where) == list(range(lo, hi + 1))  # a chain is a contiguous part of the recording
        for i, k in where.items():
            if k > 0:
                assert where[i - 1] == k - 1  # decoded in the batch before: its text can be the prompt


def test_chains_are_even_and_do_not_depend_on_workers():
    plan = plan_chains(36, batch_size=8, chains=2)
    assert [sum(map(len, c)) for c in plan] == [18, 18]
    assert [len(b) for b in plan[0]] == [6, 6, 6]  # 3 batches of 6 lanes, not 8 + 8 + 2
    assert plan_chains(0, batch_size=8, chains=2) == []


def test_prompts_are_the_decoded_words_before_each_window_cut_to_one_length():
    history: list[list[int] | None] = [[1, 2, 3, 4, 5], [6, 7, 8, 9], None, [10, 11, 12, 13, 14, 15]]
    rows = row_prompts([1, 2, 3], history, start=0)
    # window 1 follows [1..5]; window 2 follows [1..9]; window 3 follows an undecoded window
    assert rows == [[1, 2, 3, 4, 5][-5:], [5, 6, 7, 8, 9], None]
    assert len({len(r) for r in rows if r}) == 1  # one length: whisper's decoder has no padding mask


def test_prompts_never_reach_before_the_chain_nor_past_whispers_cap():
    history: list[list[int] | None] = [[1] * 10, [2] * 300, [3] * 10]
    assert row_prompts([1], history, start=1) == [None]  # window 0 is another chain's
    (row,) = row_prompts([2], history, start=0)
    assert row is not None and len(row) == PROMPT_MAX_TOKENS and set(row) == {2}


def test_a_short_history_gets_no_prompt_unless_the_user_gave_one():
    history: list[list[int] | None] = [[7, 8], [1, 2, 3, 4, 5, 6]]
    assert row_prompts([1], history, start=0) == [None]  # 2 tokens: too little to condition on
    assert row_prompts([1], history, start=0, base=[99, 98]) == [[99, 98, 7, 8]]
    assert row_prompts([1, 2], history, start=0) == [None, [7, 8, 1, 2, 3, 4, 5, 6]]


# ---------------------------------------------------------------------------- real model (tiny.en)


@pytest.mark.slow
def test_row_prompts_decode_like_whisper_with_each_rows_own_prompt(tiny):
    """Two rows, two different prompts, one batch: each row's tokens equal whisper.decode with its prompt."""
    import torch
    import whisper

    from ramble2post.transcribe import batched

    model, samples = tiny
    net = batched.prepare_model(model, device="cpu", quantize="none")
    tok = whisper.tokenizer.get_tokenizer(False, language="en")
    mel = batched.batch_log_mel(
        [samples[: 20 * 16_000], samples[20 * 16_000 : 45 * 16_000]], n_mels=model.dims.n_mels, device="cpu"
    )
    prompts = [tok.encode(" talking about LoRA and KV caches"), tok.encode(" my blog, YouTube and Twitch streams")]
    k = min(map(len, prompts))
    prompts = [p[-k:] for p in prompts]
    opts = whisper.DecodingOptions(language="en", fp16=False, temperature=0.0, without_timestamps=True)
    with torch.inference_mode():
        features = net.encoder(mel)
        ours = context.decode_rows(net, features, opts, prompts)
        alone = [whisper.decode(net, features[i : i + 1], opts, prompt=prompts[i])[0] for i in range(2)]
        mixed = context.decode_rows(net, features, opts, [prompts[0], None])
        plain = whisper.decode(net, features[1:2], opts)[0]
    for a, b in zip(ours, alone):
        assert a.tokens == b.tokens and a.text == b.text
    assert mixed[0].tokens == alone[0].tokens and mixed[1].tokens == plain.tokens  # None: no prompt at all
