"""This machine as the stages see it: the cores a process may use and the torch device.

One place for both, so that the transcriber, the LLM, the experiments and the hardware
fingerprint count cores the same way (affinity and cgroup limits included).
"""

from __future__ import annotations

import os
import time

from ramble2post.errors import DependencyError

BUSY_SAMPLE_S = 0.25  # s of the machine's CPU time sampled when a stage picks its thread count


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


def busy_cores(*, sample_s: float = BUSY_SAMPLE_S) -> float:
    """Cores other processes keep busy now [cores]: the machine's CPU time over ``sample_s`` seconds,
    less this process's own.

    Not the load average: that counts this process too, and for a minute after the transcription
    stage kept both cores of a 2-core machine busy it reads ~2 on an otherwise idle machine (the
    structure model then ran on one thread). The load average stands in where CPU times cannot be
    read.
    """
    import psutil

    def used(t: object) -> float:  # busy seconds of all CPUs; guest time is already inside user time
        fields = t._asdict()  # type: ignore[attr-defined]
        return sum(fields.values()) - sum(fields.get(k, 0.0) for k in ("idle", "iowait", "guest", "guest_nice"))

    try:
        me = psutil.Process()
        t0, all0, own0 = time.monotonic(), used(psutil.cpu_times()), sum(me.cpu_times()[:2])
        time.sleep(sample_s)
        dt, all1, own1 = time.monotonic() - t0, used(psutil.cpu_times()), sum(me.cpu_times()[:2])
    except (psutil.Error, OSError, AttributeError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
    return max(0.0, ((all1 - all0) - (own1 - own0)) / max(dt, 1e-3))


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
