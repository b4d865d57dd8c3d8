"""What a post shows of a result: the few rows that answer the claim, and the plot's alt text.

One function pair per experiment, used by its ``reader_table`` / ``plot_alt``
overrides. The full table stays in result.json / results.csv; these pick at most
``ReaderTable.MAX_ROWS`` rows and ``MAX_COLUMNS`` columns, name the unit in each
header, and say in one sentence what the rows show, from the measured numbers only.
A result these cannot read (an older version's columns) gets the generic table.
"""

from __future__ import annotations

from typing import Any

from ramble2post.experiments.base import ReaderTable, Result, default_reader_table
from ramble2post.experiments.tables import sample_rows

KIB = 1024  # bytes
MIB = 2**20  # bytes


def _rows(result: Result) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, r)) for r in result.rows]


def _r(v: Any, nd: int = 1) -> Any:
    return round(float(v), nd) if isinstance(v, (int, float)) else v


# ------------------------------------------------------------ kv-cache-growth


def _kv_models(result: Result) -> list[tuple[str, float]]:
    """(model, KiB per token per sequence) in table order."""
    out = []
    for key, v in result.summary.items():
        if key.endswith(" bytes_per_token") and isinstance(v, (int, float)):
            out.append((key[: -len(" bytes_per_token")].replace(" self-attn", ""), v / KIB))
    return out


def kv_finding(result: Result) -> str:
    s = result.summary
    models = _kv_models(result)
    if not models:
        return result.reading
    per_tok = " and ".join(f"{kib:.1f} KiB per token for {m}" for m, kib in models)
    m0 = models[0][0]
    fit, mqa = s.get(f"{m0} fits_tokens_shipped"), s.get(f"{m0} fits_tokens_MQA")
    text = f"The KV cache grows linearly with context and batch: {per_tok}"
    if fit and s.get("free_memory_GiB"):
        text += f", so {fit:,} tokens of {m0} context fit in the {s['free_memory_GiB']:.1f} GiB free here"
        if mqa:
            text += f" ({mqa:,} with multi-query attention)"
    if s.get("max_check_diff_pct") is not None:
        text += f"; shapes predicted the allocated cache within {abs(s['max_check_diff_pct']):.1f}%"
    return text + "."


def kv_reader_table(result: Result) -> ReaderTable:
    """Per model and attention layout: KV per token, the cache at full context (batch 1 and the
    largest batch), and how much context fits in free memory."""
    try:
        fits = [r for r in _rows(result) if r["kind"] == "fits"]
        batches = sorted({r["batch"] for r in fits})
        small, big = batches[0], batches[-1]
        by_key = {(r["model"], r["attention"], r["batch"]): r for r in fits}
        rows = []
        for model, att in dict.fromkeys((r["model"], r["attention"]) for r in fits):
            one, many = by_key[(model, att, small)], by_key.get((model, att, big))
            rows.append(
                (
                    model,
                    att,
                    _r(one["bytes_per_token"] / KIB, 2),
                    _r(one["kv_bytes"] / MIB, 1),
                    _r(many["kv_bytes"] / MIB, 1) if many else None,
                    one["fits_tokens"],
                )
            )
    except (KeyError, TypeError, ValueError, IndexError):
        return default_reader_table(result)
    if not rows:
        return default_reader_table(result)
    columns = (
        "model",
        "attention",
        "KV per token [KiB]",
        f"cache at full context, batch {small} [MiB]",
        f"same, batch {big} [MiB]",
        f"context that fits in free memory, batch {small} [tokens]",
    )
    return ReaderTable(columns=columns, rows=tuple(sample_rows(rows, ReaderTable.MAX_ROWS)), finding=kv_finding(result))


def kv_plot_alt(result: Result) -> str:
    free = result.summary.get("free_memory_GiB")
    tail = f" The dotted line is this machine's free memory ({free:.1f} GiB)." if free else ""
    return (
        kv_finding(result)
        + " Log-log plot of KV cache size (MiB) against context length (tokens), one panel per model,"
        " one line per attention layout (MHA, GQA, MQA) at batch 1 and the shipped layout at the largest batch." + tail
    )


# ------------------------------------------------------------ batching-speedup

DECODE_PARTS = ("llm (llama.cpp)", "whisper decoder (torch)")


def batching_finding(result: Result) -> str:
    s = result.summary
    parts = []
    for key, name in (("llm", "the LLM"), ("whisper", "the Whisper decoder")):
        if s.get(f"{key}_best_speedup") is not None:
            parts.append(f"{s[f'{key}_best_speedup']:.1f}x for {name} (at batch {s[f'{key}_best_batch']})")
    if not parts:
        return result.reading
    text = "Batching raised total decode throughput over batch 1 to " + " and ".join(parts)
    if s.get("compute_bound_batch_fp32"):
        text += (
            f", because one step reads all weights anyway: memory ({s.get('peak_GB_per_s', 0):.0f} GB/s) is the limit"
            f" until about batch {s['compute_bound_batch_fp32']:.0f}, where the cores "
            f"({s.get('peak_GFLOP_per_s', 0):.0f} GFLOP/s) take over"
        )
    return text + "."


def batching_reader_table(result: Result) -> ReaderTable:
    """Decode throughput, speedup and per-token latency by batch size, for each decoder."""
    try:
        rows = []
        for part in DECODE_PARTS:
            rs = sorted((r for r in _rows(result) if r["part"] == part and r["tokens_per_s"]), key=lambda r: r["batch"])
            for r in sample_rows(rs, ReaderTable.MAX_ROWS // len(DECODE_PARTS)):
                rows.append(
                    (
                        part,
                        r["batch"],
                        _r(r["tokens_per_s"]),
                        _r(r["speedup"], 2),
                        _r(r["latency_ms_per_token"]),
                        _r(r["GB_per_s"], 1),
                    )
                )
    except (KeyError, TypeError, ValueError):
        return default_reader_table(result)
    if not rows:
        return default_reader_table(result)
    columns = (
        "decoder",
        "batch [sequences]",
        "throughput [tokens/s, all sequences]",
        "speedup [x batch 1]",
        "latency [ms per token]",
        "memory traffic [GB/s]",
    )
    return ReaderTable(columns=columns, rows=tuple(rows), finding=batching_finding(result))


def batching_plot_alt(result: Result) -> str:
    return (
        batching_finding(result)
        + " Left: log-log plot of decode throughput (tokens/s) against batch size, dashed lines the ideal linear"
        " speedup. Right: roofline, achieved GFLOP/s against arithmetic intensity (FLOP/byte), with the measured roofs."
    )


# ------------------------------------------------------------ quantization-loss


def quant_finding(result: Result) -> str:
    """The reading's first sentence (int8), else the whole reading."""
    first = result.reading.split(". ")[0].rstrip(".")
    return first + "." if first else result.reading


def quant_reader_table(result: Result) -> ReaderTable:
    """Per scheme: size, perplexity ratio, KL divergence, same top token, change in WER."""
    try:
        rows = [
            (
                r["scheme"],
                _r(r["bits_per_weight"], 2),
                _r(r["model_MB"], 0),
                _r(r["ppl_ratio"], 3),
                _r(r["mean_KLD"], 4),
                _r(r["same_top1_pct"], 1),
                _r(r["delta_WER_pp"], 1),
            )
            for r in _rows(result)
        ]
    except (KeyError, TypeError, ValueError):
        return default_reader_table(result)
    columns = (
        "scheme",
        "weights [bit per weight]",
        "model [MB]",
        "perplexity [x fp32]",
        "mean KL divergence [nats/token]",
        "same top token [%]",
        "WER change [percentage points]",
    )
    return ReaderTable(
        columns=columns, rows=tuple(sample_rows(rows, ReaderTable.MAX_ROWS)), finding=quant_finding(result)
    )


def quant_plot_alt(result: Result) -> str:
    tops = [
        f"{r['scheme']} {r['same_top1_pct']:.0f}%"
        for r in _rows(result)
        if r.get("scheme") != "fp32" and isinstance(r.get("same_top1_pct"), (int, float))
    ]
    head = quant_finding(result) + " Quality loss grows as bits drop"
    if tops:
        head += ": the most likely next token stays the same " + ", ".join(tops[:6]) + " of the time"
    return (
        head + ". Left: mean KL divergence against fp32 (log scale) by bits per weight; right: same-top-token rate"
        " per scheme."
    )
