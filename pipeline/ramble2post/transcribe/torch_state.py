"""Process-wide settings the engines need, set for a block and put back after it.

torch's intra-op thread count and whisper's ``MultiHeadAttention.use_sdpa`` (a class attribute:
it switches every whisper model in the process) are global; the engine sets them only inside
``with`` blocks, so that a caller finds them as it left them once ``transcribe_batched`` returns.

torch's random generator is global too, and whisper's temperature fallback samples from it: a
decode that falls back to sampling gave a different text depending on what had drawn from the
generator before it in the process (loading a model draws from it to initialise its layers), so
every decode that may sample runs under ``seeded_sampling``: its own fixed seed, the caller's
generator state put back after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# OpenMP threads that spin while waiting collapse when the cores are shared (measured on the
# 2-core box with other jobs running: tiny.en decoder 27.5 s with 2 spinning threads, 4.6 s
# with 2 passive ones, 5.3 s with 1 thread). libgomp reads the variable once, when torch is
# first imported, so only an entry point (the CLI, a script) can set it, before that import.
OMP_WAIT_POLICY = "PASSIVE"
# Seed of every decode that may sample (whisper's temperature fallback; the guard's re-decodes): a
# transcript is a function of the audio and the options, not of what ran before it in the process.
SAMPLING_SEED = 0


def prefer_passive_omp_wait() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; call before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block and restored after it.

    n: threads; None or 0 = leave the count as it is.
    """
    import torch

    if not n:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def whisper_sdpa(enabled: bool) -> Iterator[None]:
    """whisper's attention through torch's ``scaled_dot_product_attention`` (or not) inside the block.

    enabled: the value of ``MultiHeadAttention.use_sdpa`` for the block; the previous one is put back.
    """
    from whisper.model import MultiHeadAttention

    previous = MultiHeadAttention.use_sdpa
    MultiHeadAttention.use_sdpa = enabled
    try:
        yield
    finally:
        MultiHeadAttention.use_sdpa = previous


@contextlib.contextmanager
def seeded_sampling(seed: int = SAMPLING_SEED) -> Iterator[None]:
    """torch's generators seeded with ``seed`` inside the block; their previous states are put back after it.

    Whisper's fallback samples from the global generator: seeded here, a decode gives the same text
    whether a model was loaded (or anything else drew random numbers) before it in the process or not.
    Batched decodes on several worker threads share the one generator: their draws are ordered only
    when at most one worker samples at a time.
    """
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
