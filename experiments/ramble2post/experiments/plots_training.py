"""Plots for ``low-precision-matmul`` and ``lora-finetune`` (one marker / hatch per machine)."""

from __future__ import annotations

from collections.abc import Sequence

from ramble2post.experiments.base import Result
from ramble2post.experiments.plots import FIGSIZE, MARKERS, fig_to_png, plt

MIB = 2**20  # bytes


def _rows(res: Result) -> list[dict]:
    return [dict(zip(res.columns, r)) for r in res.rows]


def lowprec_png(results: Sequence[Result]) -> bytes:
    """Speed-up over fp32 per dtype, matrix-matrix bars beside matrix-vector bars, one group per machine."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE)
    multi = len(results) > 1
    dtypes: list[str] = []
    for res in results:
        for d in res.params.get("dtypes", []):
            if d != "fp32" and d not in dtypes:
                dtypes.append(d)
    width = 0.8 / max(1, 2 * len(results))
    for mi, res in enumerate(results):
        s = res.summary
        for ki, (kind, key) in enumerate((("matrix-matrix", "mm"), ("matrix-vector", "mv"))):
            xs = [i + (2 * mi + ki - (2 * len(results) - 1) / 2) * width for i in range(len(dtypes))]
            ys = [s.get(f"{d}_{key}_speedup") or 0.0 for d in dtypes]
            label = f"{kind} ({res.machine})" if multi else kind
            ax1.bar(xs, ys, width=width, label=label, hatch="//" if ki else None)
        sq = [r for r in _rows(res) if r["shape"].startswith("square") and r["tflops"]]
        for di, d in enumerate(res.params.get("dtypes", [])):
            pts = sorted((r["m"], r["tflops"]) for r in sq if r["dtype"] == d)
            if pts:
                ax2.plot(
                    *zip(*pts), marker=MARKERS[(di + mi) % len(MARKERS)], label=f"{d} ({res.machine})" if multi else d
                )
    ax1.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax1.set_xticks(range(len(dtypes)), dtypes)
    ax1.set_ylabel("speed-up over fp32 (x, same shapes)")
    ax1.set_title("Low precision pays on matrix-matrix, not on matrix-vector")
    ax1.grid(True, axis="y", alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("square matrix size n (n x n @ n x n, elements, log scale)")
    ax2.set_ylabel("achieved TFLOP/s (TOP/s for int8)")
    ax2.set_title("Square matrix-matrix throughput by dtype")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle("Low-precision matrix multiplication on this machine", fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)


MEMORY_PARTS = (
    ("weight_bytes", "weights"),
    ("grad_bytes", "gradients"),
    ("optimizer_bytes", "optimizer state"),
    ("activation_bytes", "activations"),
)


def lora_png(results: Sequence[Result]) -> bytes:
    """Left: training memory by kind per method (stacked bars). Right: loss per step per method."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE)
    multi = len(results) > 1
    for mi, res in enumerate(results):
        rows = _rows(res)
        names = [r["method"] + (f"\n{res.machine}" if multi else "") for r in rows]
        xs = [i + mi * (len(rows) + 1) for i in range(len(rows))]
        bottom = [0.0] * len(rows)
        for key, label in MEMORY_PARTS:
            vals = [r[key] / MIB for r in rows]
            ax1.bar(xs, vals, bottom=bottom, label=label if mi == 0 else None)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax1.set_xticks(xs, names, fontsize=8)
        curves = res.summary
        for ri, r in enumerate(rows):
            raw = curves.get(f"{r['method']} losses")
            if isinstance(raw, str) and raw:
                ys = [float(v) for v in raw.split()]
                ax2.plot(
                    range(1, len(ys) + 1),
                    ys,
                    marker=MARKERS[(ri + mi) % len(MARKERS)],
                    label=f"{r['method']} ({res.machine})" if multi else r["method"],
                )
    ax1.set_ylabel("training memory (MiB)")
    ax1.set_title("What a training step holds in memory")
    ax1.grid(True, axis="y", alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("training loss (nats/token)")
    ax2.set_title("Loss on the same batch, same number of steps")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    model = results[0].models[0].name if results and results[0].models else "model"
    fig.suptitle(f"Full fine-tuning vs LoRA, Whisper {model} decoder", fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)
