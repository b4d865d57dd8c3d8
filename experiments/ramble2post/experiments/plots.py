"""Plots for experiment results (matplotlib, Agg backend, PNG bytes).

Plots are drawn from stored results, so several results (one per machine)
can share one figure. Every axis names its quantity and unit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot import
import matplotlib.pyplot as plt  # noqa: E402

from ramble2post.experiments.base import Result  # noqa: E402

DPI = 120  # dots per inch of saved PNGs
FIGSIZE = (11.0, 4.6)  # inches: ~1320 x 550 px at DPI
MARKERS = ("o", "s", "^", "D", "v", "P")


def fig_to_png(fig) -> bytes:
    """Render a figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _family(scheme: str) -> str:
    if scheme in ("fp32", "fp16", "bf16"):
        return "float"
    return scheme.split("-", 1)[1] if "-" in scheme else "per-channel"


def quantization_loss_png(results: Sequence[Result]) -> bytes:
    """Left: mean KL divergence vs bits per weight (log y), one line per scheme family.
    Right: same-top-1 rate per scheme. One marker style per machine."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE)
    multi = len(results) > 1
    bar_w = 0.8 / max(1, len(results))
    for mi, res in enumerate(results):
        rows = [dict(zip(res.columns, r)) for r in res.rows]
        marker = MARKERS[mi % len(MARKERS)]
        fams: dict[str, list[dict]] = {}
        for r in rows:
            if r["scheme"] != "fp32":
                fams.setdefault(_family(r["scheme"]), []).append(r)
        for fam, rs in sorted(fams.items()):
            rs = sorted(rs, key=lambda r: r["bits_per_weight"])
            xs = [r["bits_per_weight"] for r in rs]
            ys = [max(r["mean_KLD"], 1e-9) for r in rs]
            label = f"{fam} ({res.machine})" if multi else fam
            ax1.plot(xs, ys, marker=marker, linestyle="-" if fam != "float" else "none", label=label)
            for r, x, y in zip(rs, xs, ys):
                text = r["scheme"] + (" (=0, drawn at 1e-9)" if r["mean_KLD"] <= 0 else "")
                ax1.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        names = [r["scheme"] for r in rows if r["scheme"] != "fp32"]
        vals = [r["same_top1_pct"] for r in rows if r["scheme"] != "fp32"]
        pos = [i + (mi - (len(results) - 1) / 2) * bar_w for i in range(len(names))]
        ax2.bar(pos, vals, width=bar_w, label=res.machine if multi else None)
        ax2.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax1.set_yscale("log")
    ax1.set_xlabel("bits per weight (including scales, linear scale)")
    ax1.set_ylabel("mean KL divergence vs fp32 (nats/token, log scale)")
    ax1.set_title("Quality loss grows as bits drop")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    ax2.set_ylabel("same top-1 token as fp32 (%)")
    ax2.set_ylim(0, 105)
    ax2.axhline(95, color="grey", linestyle="--", linewidth=1)
    ax2.annotate(
        "95%",
        (0, 95),
        xycoords=("axes fraction", "data"),
        xytext=(2, 2),
        textcoords="offset points",
        fontsize=7,
        color="grey",
    )
    ax2.set_title("How often the most likely next token is unchanged")
    ax2.grid(True, axis="y", alpha=0.3)
    if multi:
        ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
    model = results[0].models[0].name if results and results[0].models else "model"
    fig.suptitle(f"Quantization loss, Whisper {model} decoder, teacher-forced on the reference text", fontsize=11)
    fig.tight_layout()
    return fig_to_png(fig)
