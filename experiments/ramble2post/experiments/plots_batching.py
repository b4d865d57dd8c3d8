"""Plots for ``batching-speedup`` and ``kv-cache-growth`` (matplotlib Agg, PNG bytes).

Drawn from stored results, one marker style per machine, so a rerun on another
machine shows every machine side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

from ramble2post.experiments.base import Result
from ramble2post.experiments.plots import FIGSIZE, MARKERS, fig_to_png, plt

DECODE_PARTS = ("llm (llama.cpp)", "whisper decoder (torch)")


MAX_SERIES = 6  # lines per panel a reader can tell apart


def _legend_below(ax) -> None:
    """The legend under the panel, outside the data (never covering a line)."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)


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
    ax1.set_xlabel("batch size (sequences decoded per step, log scale)")
    ax1.set_ylabel("decode throughput (tokens/s, all sequences, log scale)")
    ax1.set_title("Throughput vs batch size (dashed: ideal linear)")
    ax1.grid(True, which="both", alpha=0.3)
    _legend_below(ax1)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("arithmetic intensity (FLOP/byte, log scale)")
    ax2.set_ylabel("achieved (GFLOP/s, log scale)")
    ax2.set_title("Roofline: matrix-vector (B=1) to matrix-matrix")
    ax2.grid(True, which="both", alpha=0.3)
    _legend_below(ax2)
    fig.suptitle("Batching speedup while decoding, measured on this machine", fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)


def kvcache_png(results: Sequence[Result]) -> bytes:
    """KV-cache MiB vs context length (log-log), one panel per model, free memory as a dotted line.

    At most MAX_SERIES lines per panel: each attention layout at batch 1, the shipped
    layout at the largest batch, and free memory (with several machines: the shipped
    layout per machine). The legend sits below each panel.
    """
    models = list(dict.fromkeys(r["model"] for res in results for r in _rows(res) if r["kind"] == "growth"))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=FIGSIZE, squeeze=False)
    multi = len(results) > 1
    for ax, model in zip(axes[0], models or ["(no model)"]):
        series = 0
        for mi, res in enumerate(results):
            growth = [r for r in _rows(res) if r["kind"] == "growth" and r["model"] == model]
            suffix = f" ({res.machine})" if multi else ""
            batches = sorted({r["batch"] for r in growth})
            keys = []
            for att in dict.fromkeys(r["attention"] for r in growth):
                if not multi or att.startswith("as shipped"):
                    keys.append((att, batches[0] if batches else 1))
            shipped = [a for a, _ in keys if a.startswith("as shipped")]
            if shipped and len(batches) > 1:
                keys.append((shipped[0], batches[-1]))
            for att, batch in keys:
                if series >= MAX_SERIES - 1:
                    break
                rs = sorted(
                    (r for r in growth if (r["attention"], r["batch"]) == (att, batch)),
                    key=lambda r: r["context_tokens"],
                )
                ax.plot(
                    [r["context_tokens"] for r in rs],
                    [r["kv_bytes"] / 2**20 for r in rs],
                    marker=MARKERS[mi % len(MARKERS)],
                    linestyle="-" if att.startswith("as shipped") else "--",
                    markersize=3,
                    label=f"{att}, batch {batch}{suffix}",
                )
                series += 1
            free = res.summary.get("free_memory_bytes")
            if free and series < MAX_SERIES:
                ax.axhline(free / 2**20, color="grey", linestyle=":", label=f"free memory{suffix}")
                series += 1
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens per sequence, log scale)")
        ax.set_ylabel("KV cache (MiB, log scale)")
        ax.set_title(model, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        _legend_below(ax)
    fig.suptitle("KV cache grows linearly with context and batch; GQA/MQA divide it", fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)
