"""Plots for speculative-decoding and repeated-sampling (matplotlib via experiments.plots).

At most six series per panel, the legend outside the data, log axes labelled as such.
"""

from __future__ import annotations

from collections.abc import Sequence

from ramble2post.experiments.base import Result
from ramble2post.experiments.plots import DPI, FIGSIZE, MARKERS, fig_to_png, plt

__all__ = ["DPI", "speculative_png", "repeated_sampling_png"]


def speculative_png(results: Sequence[Result]) -> bytes:
    """Decode speed-up over plain greedy per drafter (bars), one group per text; one bar colour per machine."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    multi = len(results) > 1
    width = 0.8 / max(1, len(results))
    labels: list[str] = []
    for mi, res in enumerate(results[:6]):
        rows = [dict(zip(res.columns, r)) for r in res.rows if r[1] != "plain greedy"]
        labels = [f"{r['text']}\n{r['method']}\n{r['draft_tokens']} per step" for r in rows]
        pos = [i + (mi - (len(results) - 1) / 2) * width for i in range(len(rows))]
        vals = [r["speedup"] or 0.0 for r in rows]
        bars = ax.bar(pos, vals, width=width, label=res.machine if multi else "decode speed-up")
        for b, r in zip(bars, rows):
            mark = "" if r["identical"] else " (differs!)"
            acc = r["acceptance_pct"]
            ax.annotate(
                f"{acc:.0f}% acc.{mark}" if acc is not None else f"nothing drafted{mark}",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("decode tokens/s relative to plain greedy (x)")
    ax.set_title("Speculative decoding: speed-up where output copies input (rewrite) and where it cannot (free)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig_to_png(fig)


def repeated_sampling_png(results: Sequence[Result]) -> bytes:
    """Left: total seconds vs N, shared prompt vs N independent runs (log-log).
    Right: cost of each sample relative to one sample (log x)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE)
    multi = len(results) > 1
    for mi, res in enumerate(results[:3]):
        rows = [dict(zip(res.columns, r)) for r in res.rows]
        marker = MARKERS[mi % len(MARKERS)]
        suffix = f" ({res.machine})" if multi else ""
        ns = [r["samples"] for r in rows]
        ax1.plot(ns, [r["shared_s"] for r in rows], marker=marker, label="one prompt, N sequences" + suffix)
        ax1.plot(
            ns, [r["independent_s"] for r in rows], marker=marker, linestyle="--", label="N separate runs" + suffix
        )
        ax2.plot(ns, [r["cost_per_sample"] for r in rows], marker=marker, label="shared prompt" + suffix)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("samples N (log scale)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("total time for N samples (s, log scale)")
    ax1.set_title("N samples of one prompt")
    ax2.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax2.set_ylabel("time per sample / time of one sample")
    ax2.set_ylim(bottom=0)
    ax2.set_title("What each sample costs relative to the first")
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.18))
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.18))
    fig.tight_layout()
    return fig_to_png(fig)
