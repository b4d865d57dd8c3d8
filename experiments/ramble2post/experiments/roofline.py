"""Roofline measurements: how fast this machine moves bytes and does FLOPs.

Pure measurement helpers for the batching experiments (gpt-fast style):

* timing code is kept apart from the math (:func:`time_call` only times,
  :func:`matmul_point` only counts bytes and FLOPs);
* on a GPU, ``torch.cuda.synchronize()`` runs before every timer read;
* warm-up calls are never timed; the median of the timed repetitions is reported;
* seeds are fixed, so every run multiplies the same numbers.

Decoding one token is a matrix-vector product per layer: every weight is read
once for 2 FLOPs per weight, so the device waits on memory. Stacking B
sequences turns it into a matrix-matrix product that reads the weights once
for 2·B FLOPs per weight: extra sequences are nearly free until the arithmetic
intensity (FLOP/byte) passes the machine's ridge point, peak FLOP/s / peak B/s.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

import torch

SEED = 0  # torch.manual_seed for every benchmark tensor
COPY_BYTES = 256 * 2**20  # bytes per buffer in the copy benchmark (far larger than any CPU cache)
COPY_BYTES_QUICK = 128 * 2**20  # bytes, --quick
WARMUP = 2  # untimed calls before timing
REPS = 7  # timed calls; the median is reported
STREAM_BYTES_MIN = 64 * 2**20  # bytes: stack a layer's weights at least this deep so they stream from DRAM
PEAK_FLOPS_N = 1024  # square matmul size (elements) used to measure peak FLOP/s
GB = 1e9  # bytes per GB (decimal, as bandwidth is quoted)
GFLOP = 1e9  # FLOP per GFLOP


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


CLOCKS: dict[str, Callable[[], float]] = {
    "wall": time.perf_counter,  # s, wall clock: what a user waits
    "cpu": time.process_time,  # s, CPU time of this process: what one thread costs when others share the cores
}
_clock_name = "wall"


def set_clock(name: str) -> str:
    """Choose the clock every timer here reads ("wall" or "cpu"); returns the previous one."""
    global _clock_name
    if name not in CLOCKS:
        raise ValueError(f"unknown clock {name!r}; use one of {', '.join(CLOCKS)}")
    old, _clock_name = _clock_name, name
    return old


def now() -> float:
    """Read the chosen clock (s)."""
    return CLOCKS[_clock_name]()


def time_call(fn: Callable[[], object], *, device: str = "cpu", warmup: int = WARMUP, reps: int = REPS) -> list[float]:
    """Seconds per call of ``fn`` for each timed repetition (warm-up calls excluded)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(reps):
        _sync(device)
        t0 = now()
        fn()
        _sync(device)
        out.append(now() - t0)
    return out


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (robust against a noisy, shared machine)."""
    return float(statistics.median(values))


# ------------------------------------------------------------------- pure math


def arithmetic_intensity(*, flops: float, bytes_moved: float) -> float:
    """FLOP per byte moved to or from memory."""
    if bytes_moved <= 0:
        raise ValueError("bytes_moved must be positive")
    return flops / bytes_moved


def matmul_flops(*, batch: int, n: int, k: int) -> int:
    """FLOPs of ``[batch, k] @ [k, n]``: one multiply and one add per weight per row."""
    return 2 * batch * n * k


def matmul_bytes(*, batch: int, n: int, k: int, bytes_per_element: int) -> int:
    """Bytes a ``[batch, k] @ [k, n]`` product must move at least: weights + inputs + outputs."""
    return bytes_per_element * (n * k + batch * k + batch * n)


def mbu(*, bytes_per_step: float, seconds_per_step: float, peak_bytes_per_s: float) -> float:
    """Model-bandwidth utilisation in [0, ~1]: achieved bytes/s over the measured peak bytes/s."""
    if seconds_per_step <= 0 or peak_bytes_per_s <= 0:
        raise ValueError("time and peak bandwidth must be positive")
    return bytes_per_step / seconds_per_step / peak_bytes_per_s


def ridge_intensity(*, peak_flops_per_s: float, peak_bytes_per_s: float) -> float:
    """FLOP/byte where the roofline bends: below it memory bound, above it compute bound."""
    return peak_flops_per_s / peak_bytes_per_s


def compute_bound_batch(*, ridge_flop_per_byte: float, bytes_per_weight: float) -> float:
    """Batch size whose weight-dominated matmul reaches the ridge: 2·B FLOPs per weight / bytes per weight."""
    return ridge_flop_per_byte * bytes_per_weight / 2.0


# ----------------------------------------------------------------- benchmarks


@dataclasses.dataclass(frozen=True)
class Bandwidth:
    """Memory bandwidth measured on this machine (bytes/s)."""

    copy_bytes_per_s: float  # dst.copy_(src): (read + write) bytes / s
    read_bytes_per_s: float  # src.sum(): read bytes / s
    buffer_bytes: int

    @property
    def peak_bytes_per_s(self) -> float:
        """The higher of the two: decoding mostly reads, so a read-only stream counts too."""
        return max(self.copy_bytes_per_s, self.read_bytes_per_s)


def measure_bandwidth(*, device: str = "cpu", nbytes: int = COPY_BYTES, reps: int = REPS) -> Bandwidth:
    """Copy and read bandwidth of large fp32 buffers (median of ``reps``)."""
    torch.manual_seed(SEED)
    n = nbytes // 4
    src = torch.rand(n, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    t_copy = median(time_call(lambda: dst.copy_(src), device=device, reps=reps))  # noqa: F821 - freed below
    t_read = median(time_call(lambda: src.sum(), device=device, reps=reps))  # noqa: F821
    del src, dst
    return Bandwidth(copy_bytes_per_s=2 * n * 4 / t_copy, read_bytes_per_s=n * 4 / t_read, buffer_bytes=n * 4)


def measure_peak_flops(
    *, device: str = "cpu", n: int = PEAK_FLOPS_N, dtype: torch.dtype = torch.float32, reps: int = 5
) -> float:
    """FLOP/s of a large square matmul (the compute roof)."""
    torch.manual_seed(SEED)
    a = torch.rand(n, n, device=device, dtype=dtype)
    b = torch.rand(n, n, device=device, dtype=dtype)
    t = median(time_call(lambda: a @ b, device=device, reps=reps))
    return matmul_flops(batch=n, n=n, k=n) / t


@dataclasses.dataclass(frozen=True)
class MatmulPoint:
    """One batch size of one layer shape: ``[batch, k] @ [k, n]`` repeated over ``layers`` weight copies."""

    label: str
    batch: int
    n: int
    k: int
    layers: int
    seconds: float  # s per pass over all ``layers`` weights (median)
    bytes_moved: int
    flops: int

    @property
    def bytes_per_s(self) -> float:
        return self.bytes_moved / self.seconds

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.seconds

    @property
    def intensity(self) -> float:
        return arithmetic_intensity(flops=self.flops, bytes_moved=self.bytes_moved)


def matmul_sweep(
    *,
    label: str,
    n: int,
    k: int,
    batches: Sequence[int],
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    reps: int = REPS,
    min_stream_bytes: int = STREAM_BYTES_MIN,
) -> list[MatmulPoint]:
    """Time ``x @ W`` for each batch size at one layer shape.

    The weight is stacked ``layers`` deep (enough copies to exceed ``min_stream_bytes``)
    and the product runs over every copy in turn, so, like a real decode step, the
    weights come from main memory rather than a cache that one small matrix would fit in.
    """
    torch.manual_seed(SEED)
    esize = torch.tensor([], dtype=dtype).element_size()
    layers = max(1, -(-min_stream_bytes // (n * k * esize)))
    weights = [torch.randn(k, n, device=device, dtype=dtype) for _ in range(layers)]
    points = []
    for b in batches:
        x = torch.randn(b, k, device=device, dtype=dtype)
        out = torch.empty(b, n, device=device, dtype=dtype)

        def step(x: torch.Tensor = x, out: torch.Tensor = out) -> None:
            for w in weights:
                torch.matmul(x, w, out=out)

        t = median(time_call(step, device=device, reps=reps))
        points.append(
            MatmulPoint(
                label=label,
                batch=b,
                n=n,
                k=k,
                layers=layers,
                seconds=t,
                bytes_moved=layers * matmul_bytes(batch=b, n=n, k=k, bytes_per_element=esize),
                flops=layers * matmul_flops(batch=b, n=n, k=k),
            )
        )
    return points


def measured_knee(points: Sequence[MatmulPoint], *, slowdown: float = 2.0) -> int | None:
    """Smallest batch whose pass takes ``slowdown``× the batch-1 time: extra rows stop being free."""
    base = next((p.seconds for p in points if p.batch == 1), None)
    if base is None:
        return None
    for p in sorted(points, key=lambda p: p.batch):
        if p.seconds >= slowdown * base:
            return p.batch
    return None
