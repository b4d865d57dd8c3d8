"""Which instruction path a matmul ran on, and what a device's published peak is.

On a CPU, PyTorch hands fp32 products to oneMKL and bf16/fp16/int8 ones to oneDNN;
both print a line per call when their verbose mode is on. The line names the kernel
(``brg_matmul:avx10_1_512_amx``: AMX tiles; ``avx10_1_512``: AVX-512 vector units) and
the header names the instruction set. The lines go to the C stdout, so they are caught
on file descriptor 1, for one untimed call.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator

import torch

# dense (no sparsity) peak TFLOP/s (TOP/s for int8) from NVIDIA's datasheets
PUBLISHED_PEAKS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0, "fp8": 1513.0, "int8": 1513.0},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9, "int8": 1978.9},
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9, "int8": 1978.9},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0, "fp8": 242.5, "int8": 242.5},
}

DTYPE_NOTES = {
    "tf32": "tf32: a tensor-core format of NVIDIA GPUs; a CPU runs fp32 as fp32, so there is no tf32 column here.",
    "fp8": "fp8: no fp8 matrix instructions on this CPU and no CPU fp8 matmul in PyTorch; "
    "it runs on a GPU of compute capability 8.9 or newer.",
}

_FLAGS = ("amx_bf16", "amx_int8", "amx_fp16", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "avx512f")


def cpu_flags() -> list[str]:
    """The matrix and vector extensions this CPU reports (Linux /proc/cpuinfo), in a fixed order."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return []
    return [f for f in _FLAGS if f in flags]


def published_peak(device_name: str) -> tuple[str, dict[str, float]] | None:
    """(model, peak TFLOP/s per dtype) for a GPU named like ``NVIDIA H100 80GB HBM3``, else None."""
    for model in sorted(PUBLISHED_PEAKS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if all(part in device_name for part in model.split()):
            return model, PUBLISHED_PEAKS[model]
    return None


@contextlib.contextmanager
def _c_stdout() -> Iterator[list[str]]:
    """Collect what C libraries write to file descriptor 1 inside the block (lines)."""
    import sys

    lines: list[str] = []
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            yield lines
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def kernel_path(call: Callable[[], object], dtype: str, device: str) -> str:
    """Name the kernel that ``call`` (one untimed run) dispatches to."""
    if device == "cuda":
        call()
        if dtype == "fp32":
            return "cuBLAS fp32, CUDA cores"
        return f"cuBLAS {dtype}, tensor cores"
    try:
        with _c_stdout() as lines:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                    call()
    except (RuntimeError, OSError):
        call()
        return "PyTorch CPU kernel (not reported)"
    return describe_path(lines)


_MKL_ISA: list[str] = []  # oneMKL prints its instruction-set header once per process: remember it


def describe_path(lines: list[str]) -> str:
    """Short kernel name from oneDNN / oneMKL verbose lines."""
    for line in lines:
        if line.startswith("MKL_VERBOSE oneMKL") and not _MKL_ISA:
            _MKL_ISA.append("AVX-512" if "AVX-512" in line else "AVX2" if "AVX2" in line else "vector units")
    for line in lines:
        if line.startswith("onednn_verbose") and ",exec,cpu," in line:
            fields = line.split(",")
            prim, impl = fields[5], fields[6]
            name = impl or prim
            tail = ", AMX tiles" if "amx" in name else (", AVX-512" if "512" in name else "")
            if name == "gemm_api" and "src_s8" in line:
                tail = ", int8 in, int32 out"
            return f"oneDNN {name}{tail}"
    for line in lines:
        m = re.match(r"MKL_VERBOSE\s+([A-Z0-9_]+)\(", line)
        if m:
            return f"oneMKL {m.group(1)}, {_MKL_ISA[0] if _MKL_ISA else 'vector units'}"
    return "PyTorch CPU kernel (no oneDNN/oneMKL call)"
