"""This machine as the stages see it: the cores a process may use and the torch device.

One place for both, so that the transcriber, the LLM, the experiments and the hardware
fingerprint count cores the same way (affinity and cgroup limits included).
"""

from __future__ import annotations

import os

from ramble2post.errors import DependencyError


def usable_cores() -> int:
    """Logical CPUs this process may run on (affinity / cgroup), which can be fewer than the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores available to this process: hyperthreads do not help GEMMs or llama.cpp's layers."""
    import psutil

    return max(1, min(psutil.cpu_count(logical=False) or usable_cores(), usable_cores()))


def resolve_device(device: str | None) -> str:
    """``auto``/None -> "cuda" if torch sees a GPU, else "cpu"; "cuda" without one is an error."""
    import torch

    device = device or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DependencyError(
            "--device cuda was asked for but torch sees no CUDA GPU",
            hint="use --device cpu, or install a CUDA build of torch",
        )
    return device
