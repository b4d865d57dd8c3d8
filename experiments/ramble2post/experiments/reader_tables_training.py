"""Reader tables for ``low-precision-matmul`` and ``lora-finetune`` (see ``reader_tables``)."""

from __future__ import annotations

from typing import Any

from ramble2post.experiments.base import ReaderTable, Result, default_reader_table

MIB = 2**20  # bytes


def _rows(result: Result) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, r)) for r in result.rows]


def lowprec_reader_table(result: Result) -> ReaderTable:
    """One row per dtype: best matrix-matrix TFLOP/s and speed-up, matrix-vector GB/s and speed-up,
    the kernel that ran; a dtype this machine cannot run says so in its row."""
    s = result.summary
    try:
        dtypes = list(result.params["dtypes"])
        rows: list[tuple] = []
        for d in dtypes:
            if not s.get(f"{d}_available"):
                rows.append((d, None, None, None, None, "not available on this machine"))
                continue
            rows.append(
                (
                    d,
                    s.get(f"{d}_mm_best_tflops"),
                    s.get(f"{d}_mm_speedup"),
                    s.get(f"{d}_mv_GBps"),
                    s.get(f"{d}_mv_speedup"),
                    s.get(f"{d}_mm_path"),
                )
            )
        for d in ("tf32", "fp8"):
            if d not in dtypes and result.device == "cpu":
                rows.append((d, None, None, None, None, "not on this machine (a GPU tensor-core format)"))
    except (KeyError, TypeError, ValueError):
        return default_reader_table(result)
    return ReaderTable(
        columns=(
            "dtype",
            "matrix-matrix, best [TFLOP/s]",
            "matrix-matrix speed-up [x fp32]",
            "matrix-vector [GB/s]",
            "matrix-vector speed-up [x fp32]",
            "kernel (matrix-matrix)",
        ),
        rows=tuple(rows[: ReaderTable.MAX_ROWS]),
        finding=result.reading,
    )


def lora_reader_table(result: Result) -> ReaderTable:
    """One row per method: trainable parameters, memory by kind, step time and the loss reached."""
    try:
        rows = []
        for r in _rows(result):
            rows.append(
                (
                    r["method"],
                    r["trainable_params"],
                    round(r["grad_bytes"] / MIB + r["optimizer_bytes"] / MIB, 2),
                    round(r["weight_bytes"] / MIB + r["activation_bytes"] / MIB, 1),
                    round(r["total_bytes"] / MIB, 1),
                    r["step_s"],
                    r["final_loss"],
                )
            )
    except (KeyError, TypeError, ValueError):
        return default_reader_table(result)
    return ReaderTable(
        columns=(
            "method",
            "trainable [parameters]",
            "gradients + optimizer [MiB]",
            "weights + activations [MiB]",
            "total [MiB]",
            "step [s]",
            "loss after the steps [nats/token]",
        ),
        rows=tuple(rows[: ReaderTable.MAX_ROWS]),
        finding=result.reading,
    )
