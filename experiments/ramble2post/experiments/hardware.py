"""Hardware fingerprint: what machine a number was measured on.

Every result carries :func:`fingerprint` (CPU model, cores, RAM, GPUs, driver
and CUDA, torch and llama.cpp versions, OS, Python) and a short
:func:`machine_label` such as ``cpu-amd-epyc-2c`` or ``nvidia-h100-80gb-hbm3``,
which reruns use as the column name for that machine.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

from ramble2post.machine import usable_cores

_NVIDIA_SMI_TIMEOUT_S = 10  # s; a hung driver must not hang the experiment


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line.strip()]
    return {"driver": rows[0][2] if rows and len(rows[0]) > 2 else None, "smi_rows": rows}


def _gpus() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    gpus: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    try:
        import torch

        extra["cuda_runtime"] = torch.version.cuda
        extra["hip_runtime"] = getattr(torch.version, "hip", None)
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                gpus.append(
                    {
                        "index": i,
                        "name": p.name,
                        "memory_bytes": int(p.total_memory),
                        "compute_capability": f"{p.major}.{p.minor}",
                        "multiprocessors": int(p.multi_processor_count),
                    }
                )
    except Exception:  # noqa: BLE001 - a broken CUDA install must not stop a CPU run
        pass
    smi = _nvidia_smi()
    extra["driver"] = smi.get("driver")
    if not gpus and smi.get("smi_rows"):  # torch without CUDA on a GPU machine
        for i, row in enumerate(smi["smi_rows"]):
            mem = int(float(row[1])) * 2**20 if len(row) > 1 and row[1].replace(".", "").isdigit() else None
            gpus.append(
                {"index": i, "name": row[0], "memory_bytes": mem, "compute_capability": None, "multiprocessors": None}
            )
    return gpus, extra


@functools.lru_cache(maxsize=1)
def _fingerprint_cached() -> tuple[tuple[str, Any], ...]:
    try:
        import psutil

        ram = int(psutil.virtual_memory().total)
        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is a dependency
        ram, physical = None, None
    gpus, extra = _gpus()
    try:
        import torch

        torch_version = torch.__version__
        torch_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_version, torch_threads = None, None
    fp = {
        "cpu_model": _cpu_model(),
        "cpu_arch": platform.machine(),
        "cpu_cores_physical": physical,
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_usable": usable_cores(),
        "ram_bytes": ram,
        "gpus": gpus,
        "gpu_driver": extra.get("driver"),
        "cuda_runtime": extra.get("cuda_runtime"),
        "hip_runtime": extra.get("hip_runtime"),
        "torch": torch_version,
        "torch_threads": torch_threads,
        "llama_cpp_python": _version("llama_cpp_python") or _version("llama-cpp-python"),
        "whisper": _version("openai-whisper"),
        "numpy": _version("numpy"),
        "os": f"{platform.system()} {platform.release()}",
        "os_pretty": _os_pretty(),
        "python": platform.python_version(),
    }
    return tuple(fp.items())


def _os_pretty() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def fingerprint() -> dict[str, Any]:
    """The hardware and software this process runs on (computed once per process)."""
    return dict(_fingerprint_cached())


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|\b(cpu|processor|with radeon graphics)\b|@.*$", "", text, flags=re.I)
    text = re.sub(r"\b\d+-core\b", "", text, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_label(fp: dict[str, Any] | None = None, *, device: str = "cpu") -> str:
    """Short stable name for the machine: ``cpu-<model>-<N>c`` or the GPU's name.

    The same machine gives the same label on every run, so reruns can add one
    column per machine and a dated run per rerun on the same machine.
    """
    fp = fp or fingerprint()
    if device == "cuda" and fp.get("gpus"):
        g = fp["gpus"][0]
        n = len(fp["gpus"])
        return _slug(g["name"]) + (f"-x{n}" if n > 1 else "")
    cores = fp.get("cpu_cores_usable") or fp.get("cpu_cores_logical") or 0
    return f"cpu-{_slug(str(fp.get('cpu_model', 'unknown')))}-{cores}c"


def describe(fp: dict[str, Any] | None = None) -> str:
    """One human line: 'AMD EPYC, 2 cores, 23 GiB RAM, no GPU, torch 2.13.0+cpu'."""
    fp = fp or fingerprint()
    ram = f"{fp['ram_bytes'] / 2**30:.0f} GiB RAM" if fp.get("ram_bytes") else "RAM unknown"
    if fp.get("gpus"):
        g = fp["gpus"][0]
        mem = f" {g['memory_bytes'] / 2**30:.0f} GiB" if g.get("memory_bytes") else ""
        gpu = f"{g['name']}{mem}" + (f", CUDA {fp['cuda_runtime']}" if fp.get("cuda_runtime") else "")
        if fp.get("gpu_driver"):
            gpu += f", driver {fp['gpu_driver']}"
    else:
        gpu = "no GPU"
    cores = fp.get("cpu_cores_usable") or fp.get("cpu_cores_logical")
    return f"{fp.get('cpu_model')}, {cores} cores, {ram}, {gpu}, torch {fp.get('torch')}"
