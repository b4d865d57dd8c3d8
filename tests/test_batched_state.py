"""The batched engine leaves process-wide state as it found it (ramble2post.transcribe.torch_state)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ramble2post.transcribe import batched
from ramble2post.transcribe.audio import SAMPLE_RATE
from ramble2post.transcribe.torch_state import torch_threads, whisper_sdpa


def _state() -> tuple[int, bool, str | None]:
    import torch
    from whisper.model import MultiHeadAttention

    return torch.get_num_threads(), MultiHeadAttention.use_sdpa, os.environ.get("OMP_WAIT_POLICY")


def test_context_managers_restore_threads_and_sdpa_even_on_error():
    import torch
    from whisper.model import MultiHeadAttention

    before = _state()
    with torch_threads(before[0] + 1), whisper_sdpa(not before[1]):
        assert torch.get_num_threads() == before[0] + 1
        assert MultiHeadAttention.use_sdpa is (not before[1])
    assert _state() == before
    with pytest.raises(RuntimeError), torch_threads(before[0] + 2), whisper_sdpa(not before[1]):
        raise RuntimeError("boom")
    assert _state() == before
    with torch_threads(None):  # None: the count is left alone
        assert torch.get_num_threads() == before[0]


def test_importing_the_engine_sets_no_environment():
    code = (
        "import os; os.environ.pop('OMP_WAIT_POLICY', None); "
        "import ramble2post.transcribe.stage, ramble2post.transcribe.batched; "
        "print(os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "None"


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_transcribe_batched_leaves_process_state_as_it_found_it(tiny, workers):
    import torch

    model, samples = tiny
    clip = samples[: 40 * SAMPLE_RATE]  # two windows: two batches of one, so two workers both run
    previous = torch.get_num_threads()
    torch.set_num_threads(3)  # neither the engine's encoder count (physical cores) nor its decoder's (1)
    try:
        before = _state()
        r = batched.transcribe_batched(
            model=model,
            samples=clip,
            device="cpu",
            language="en",
            options=batched.BatchedOptions(batch_size=1, workers=workers, sdpa=not before[1]),
        )
        assert _state() == before
    finally:
        torch.set_num_threads(previous)
    assert isinstance(r, batched.BatchedResult) and len(r.chunks) == 2
    assert r.segment_times is batched.SegmentTimes.SPREAD and r.segment_times == "spread over each window"
    assert r.segments and all(isinstance(s, batched.BatchedSegment) for s in r.segments)
