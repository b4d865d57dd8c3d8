"""Plots for ``batching-speedup`` and ``kv-cache-growth`` (matplotlib Agg, PNG bytes).

Drawn from stored results, one marker style per machine, so a rerun on another
machine shows every machine side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

from ramble2post.experiments.base import Result
from ramble2post.experiments.plots import FIGSIZE, MARKERS, fig_to_png, plt

DECODE_PARTS = ("llm (llama.cpp)", "whisper decoder (torch)")


def _rows(res: Result) -> list[dict]:
    return [dict(zip(res.columns, r)) for r in res.rows]


def batching_png(results: Sequence[Result]) -> bytes:
    """Left: tokens/s vs batch size (log-log) with the ideal linear line from batch 1.
    Right: roofline, achieved GFLOP/s vs arithmetic intensity, with the measured roofs."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE)
    multi = len(results) > 1
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for mi, res in enumerate(results):
        rows = _rows(res)
        marker = MARKERS[mi % len(MARKERS)]
        suffix = f" ({res.machine})" if multi else ""
        for pi, part in enumerate(DECODE_PARTS):
            rs = sorted((r for r in rows if r["part"] == part and r["tokens_per_s"]), key=lambda r: r["batch"])
            if not rs:
                continue
            c = colors[(pi + 2 * mi) % len(colors)]
            xs = [r["batch"] for r in rs]
            ax1.plot(xs, [r["tokens_per_s"] for r in rs], marker=marker, color=c, label=part + suffix)
            base = rs[0]["tokens_per_s"] / rs[0]["batch"]
            ax1.plot(
                xs,
                [base * x for x in xs],
                linestyle="--",
                color=c,
                alpha=0.5,
                label=f"ideal linear, {part.split(' ')[0]}{suffix}",
            )
        roof = [r for r in rows if r["part"].startswith("roofline")]
        for li, label in enumerate(dict.fromkeys(r["model"] for r in roof)):
            rs = sorted((r for r in roof if r["model"] == label), key=lambda r: r["arith_intensity"])
            ax2.plot(
                [r["arith_intensity"] for r in rs],
                [r["GFLOP_per_s"] for r in rs],
                marker=marker,
                color=colors[(li + 4 + 2 * mi) % len(colors)],
                label=label + suffix,
            )
            for r in rs:
                ax2.annotate(
                    f"B={r['batch']}",
                    (r["arith_intensity"], r["GFLOP_per_s"]),
                    textcoords="offset points",
                    xytext=(3, -9),
                    fontsize=6,
                )
        s = res.summary
        if s.get("peak_GB_per_s") and s.get("peak_GFLOP_per_s"):
            xs = [2 ** (e / 4) for e in range(-12, 41)]
            ys = [min(s["peak_GFLOP_per_s"], s["peak_GB_per_s"] * x) for x in xs]
            ax2.plot(xs, ys, color="grey", linestyle=":", label=f"measured roof{suffix}")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("batch size (sequences decoded per step)")
    ax1.set_ylabel("decode throughput (tokens/s, all sequences)")
    ax1.set_title("Throughput vs batch size (dashed: ideal linear)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax2.set_ylabel("achieved (GFLOP/s)")
    ax2.set_title("Roofline: matrix-vector (B=1) to matrix-matrix")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle("Batching speedup while decoding, measured on this machine", fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)


def kvcache_png(results: Sequence[Result]) -> bytes:
    """KV-cache bytes vs context length (log-log) per model and attention layout, free memory as a line."""
    fig, ax = plt.subplots(1, 1, figsize=FIGSIZE)
    multi = len(results) > 1
    for mi, res in enumerate(results):
        rows = _rows(res)
        marker = MARKERS[mi % len(MARKERS)]
        suffix = f" ({res.machine})" if multi else ""
        growth = [r for r in rows if r["kind"] == "growth"]
        for label in dict.fromkeys((r["model"], r["attention"], r["batch"]) for r in growth):
            rs = sorted(
                (r for r in growth if (r["model"], r["attention"], r["batch"]) == label),
                key=lambda r: r["context_tokens"],
            )
            ls = "-" if label[1].startswith("as shipped") else "--"
            ax.plot(
                [r["context_tokens"] for r in rs],
                [r["kv_bytes"] / 2**20 for r in rs],
                marker=marker,
                linestyle=ls,
                markersize=3,
                label=f"{label[0]}, {label[1]}, batch {label[2]}{suffix}",
            )
        free = res.summary.get("free_memory_bytes")
        if free:
            ax.axhline(free / 2**20, color="grey", linestyle=":", label=f"free memory{suffix}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens per sequence)")
    ax.set_ylabel("KV cache (MiB)")
    ax.set_title("KV cache grows linearly with context and batch; GQA/MQA divide it")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig_to_png(fig)
