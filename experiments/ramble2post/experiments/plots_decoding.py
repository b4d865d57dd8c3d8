"""Plots for speculative-decoding and repeated-sampling (matplotlib via experiments.plots).

At most six series per panel, the legend outside the data, log axes labelled as such.
"""

from __future__ import annotations

from collections.abc import Sequence

from ramble2post.experiments.base import Result
from ramble2post.experiments.plots import DPI, FIGSIZE, MARKERS, fig_to_png, plt

__all__ = ["DPI", "speculative_png", "repeated_sampling_png"]


def _short(method: str, k: int) -> str:
    m = method.replace("prompt lookup (n-gram 2)", "lookup").replace("draft model ", "draft ")
    m = m.replace("(Q4_0 copy)", "Q4_0").replace(", no flash attention", "\nno flash attn")
    return f"{m}\nk={k}"


def speculative_png(results: Sequence[Result]) -> bytes:
    """Left: decode speed-up over plain greedy per drafter, one bar colour per text (and machine).
    Right: cost of one forward pass over n tokens relative to one token (log-log), the reason."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE, gridspec_kw={"width_ratios": [3, 2]})
    multi = len(results) > 1
    series = [(res, text) for res in results[:3] for text in ("rewrite", "free")]
    width = 0.8 / max(1, len(series))
    labels: list[str] = []
    for si, (res, text) in enumerate(series):
        rows = [dict(zip(res.columns, r)) for r in res.rows if r[0] == text and r[1] != "plain greedy"]
        if not rows:
            continue
        labels = [_short(r["method"], r["draft_tokens"]) for r in rows]
        pos = [i + (si - (len(series) - 1) / 2) * width for i in range(len(rows))]
        bars = ax1.bar(
            pos, [r["speedup"] or 0.0 for r in rows], width=width, label=text + (f" ({res.machine})" if multi else "")
        )
        for b, r in zip(bars, rows):
            acc = r["acceptance_pct"]
            txt = (f"{acc:.0f}%" if acc is not None else "none") + ("" if r["identical"] else "\ndiffers")
            ax1.annotate(txt, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)
    ax1.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax1.set_xticks(range(len(labels)), labels, fontsize=7)
    ax1.set_ylabel("decode tokens/s relative to plain greedy (x)")
    ax1.set_title("Speed-up per drafter (label: % of drafts accepted)", fontsize=10)
    ax1.grid(True, axis="y", alpha=0.3)
    ax1.legend(fontsize=8, title="text", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for mi, res in enumerate(results[:3]):
        vr = [r for r in res.rows if r[0] == "verify pass"]
        ns = [r[2] + 1 for r in vr]
        ax2.plot(
            ns,
            [r[14] for r in vr],
            marker=MARKERS[mi % len(MARKERS)],
            label="measured" + (f" ({res.machine})" if multi else ""),
        )
    ax2.plot([1, 11], [1, 1], color="grey", linestyle="--", linewidth=1, label="memory-bound ideal")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("tokens in one forward pass (log scale)")
    ax2.set_ylabel("time relative to a one-token step (x, log scale)")
    ax2.set_title("What verifying k drafts costs", fontsize=10)
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.15))
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
