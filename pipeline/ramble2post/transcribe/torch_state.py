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
    (The batched engine's fallback, whose batches run on several worker threads, does not draw from it:
    each decode samples from a generator of its own, ``beam.seeded_greedy_decoder``.)
    """
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def one_malloc_arena() -> None:
    """Have glibc serve every thread from one heap (``M_ARENA_MAX`` = 1); call before threads start.

    The batched engine's two decoding threads each got an arena of their own, where freed activations
    stayed scattered: with ``release_free_memory`` after each step, peak RSS was 2.05 GB on the 13-min
    sample and 2.56 GB on the same audio five times over; with one arena, 2.00 and 2.38 GB, at the same
    speed (the threads spend their time in torch kernels, not in malloc). A no-op where malloc is not
    glibc's, and when the user set ``MALLOC_ARENA_MAX`` themselves.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass  # not glibc


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``); a no-op elsewhere.

    Each batch allocates and frees a few hundred MB of activations in blocks that glibc, with its
    growing mmap threshold, serves from the heap; freed, they stay in the process, scattered, and the
    peak RSS grew with the recording: 2.5 GB for the 13-min sample, 3.1 GB for the same audio five times
    over (issue 26). Trimmed after each batch, the free pages go back.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return  # not glibc (macOS, musl): nothing to trim, or its own allocator returns memory
    trim(0)
