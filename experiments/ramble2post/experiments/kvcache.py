"""``kv-cache-growth``: how fast the KV cache fills memory, and what GQA/MQA would save.

Every generated token leaves a key and a value vector per layer and per KV head
in the cache, for every sequence in the batch:

    bytes = 2 (K and V) · n_layer · n_kv_heads · head_dim · bytes_per_element · tokens · batch

Computed from each model's shapes (Whisper's decoder: self-attention grows with
the text, cross-attention holds the 1500 encoded audio frames per sequence; the
GGUF LLM: n_layer, n_head_kv, head_dim from its metadata, f16 cache) and
checked against what is actually allocated at run time: the cache tensors'
bytes in PyTorch, and llama.cpp's reported KV buffer and state size. Then: growth
with context length and batch size, how many tokens fit in this machine's free
memory, and how grouped-query / multi-query attention would change that for the
same model shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ramble2post.errors import ExperimentError
from ramble2post.experiments.base import Context, Experiment, ModelUsed, Param, ReaderTable, Result, Trigger, register
from ramble2post.experiments.batching import _free_bytes, int_list, str_list
from ramble2post.experiments.decode_bench import F16_BYTES, LlamaBatchDecoder, kv_size_from_log

MIB = 2**20  # bytes per MiB
AGREE_PCT = 10.0  # computed vs allocated must agree within this (%)
LLM_CHECK_CTX = 512  # llama.cpp KV cells allocated for the check (cells)

COLUMNS = (
    "kind",
    "model",
    "attention",
    "kv_heads",
    "batch",
    "context_tokens",
    "bytes_per_token",
    "kv_bytes",
    "kv_MiB",
    "measured_bytes",
    "diff_pct",
    "fits_tokens",
)
UNITS = {
    "kv_heads": "heads",
    "batch": "sequences",
    "context_tokens": "tokens per sequence",
    "bytes_per_token": "bytes per token per sequence",
    "kv_bytes": "bytes (computed from shapes)",
    "kv_MiB": "MiB",
    "measured_bytes": "bytes (allocated at run time)",
    "diff_pct": "% (computed vs measured)",
    "fits_tokens": "tokens of context per sequence in free memory",
}

TRIGGERS = (
    Trigger(
        r"\bk\.?\s?v\.?[\s-]?(?:cache|caching|cash|store|memory)\b|\bkey[\s-](?:and[\s-])?value[\s-]?(?:cache|cash)\b"
        r"|\bcay[\s-]?v(?:ee)?[\s-]cache\b|\b(?:cave|kate[\s-]?v|queue[\s-]?v|q[\s-]?v)[\s-]?(?:cache|cash)\b",
        1.0,
        "KV cache",
    ),
    Trigger(
        r"\b(?:grouped|group)[\s-]query(?:[\s-]attention)?\b|\bmulti[\s-]query(?:[\s-]attention)?\b"
        r"|\bg\.?\s?q\.?\s?a\b|\bm\.?\s?q\.?\s?a\b|\bmulti[\s-]head(?:ed)? latent\b",
        1.0,
        "GQA/MQA",
    ),
    Trigger(
        r"\b(?:fill|fills|filling|filled) up (?:the |your |all the )?(?:memory|h\.?\s?b\.?\s?m|v\.?\s?ram|gpu)\b",
        0.75,
        "fills up the memory",
    ),
    Trigger(r"\b(?:context|sequence)[\s-](?:length|window|size)s?\b|\blong(?:er)? contexts?\b", 0.5, "context length"),
    Trigger(r"\b(?:h\.?\s?b\.?\s?m|high[\s-]bandwidth memory|v\.?\s?ram|gpu memory)\b", 0.5, "HBM"),
    Trigger(
        r"\bmemory (?:fills?|filling|filled|runs? out|is full)\b|\bout of memory\b|\bo\.?\s?o\.?\s?m\b",
        0.5,
        "memory fills up",
    ),
    Trigger(
        r"\bcontainer\b|\bkeys and values\b|\battention heads?\b|\bper token\b|\bcache[sd]?\b"
        r"|\bgrows?\b|\bgrowing\b",
        0.25,
        "KV word",
        context=True,
    ),
)


@register
class KVCacheGrowth(Experiment):
    name = "kv-cache-growth"
    version = "1"
    claim = "The KV cache grows with context length times batch size until it fills memory; GQA/MQA shrink it."
    triggers = TRIGGERS
    descriptions = (
        "the KV cache of attention keys and values grows with context length and users until it fills GPU memory",
        "grouped query or multi query attention shrinks the key value cache",
        "long contexts need gigabytes of memory for cached attention keys and values",
    )
    params = {
        "models": Param(("whisper", "llm"), "models to measure: whisper, llm"),
        "check_batches": Param((1, 4), "batch sizes whose allocation is measured and compared"),
        "check_steps": Param(32, "decode steps before the allocation is measured (tokens)", quick=16),
        "growth_batches": Param((1, 8), "batch sizes of the growth table"),
    }

    def run(self, context: Context) -> Result:
        p = self.resolve_params(context)
        p["models"] = str_list(p["models"])
        for key in ("check_batches", "growth_batches"):
            p[key] = int_list(p[key], key)
        free = _free_bytes(context.device)
        rows: list[tuple] = []
        models: list[ModelUsed] = []
        notes = [
            f"Free memory at the start: {free / 2**30:.2f} GiB ({'GPU' if context.device == 'cuda' else 'RAM'}); "
            "'fits_tokens' counts only the cache, not weights or activations."
        ]
        checks: list[float] = []
        if "whisper" in p["models"]:
            r, m, c = _whisper(context, p, free)
            rows += r
            models.append(m)
            checks += c
        if "llm" in p["models"]:
            r, m, c = _llm(context, p, free)
            rows += r
            models.append(m)
            checks += c
        if not rows:
            raise ExperimentError("no model measured", hint='--param models=\'["whisper","llm"]\'')
        summary = _summary(rows, free, checks)
        return self.make_result(
            context,
            params=p,
            models=models,
            columns=COLUMNS,
            units=UNITS,
            rows=rows,
            summary=summary,
            reading=reading(summary),
            notes=notes,
        )

    def reader_table(self, result: Result) -> ReaderTable:
        from ramble2post.experiments.reader_tables import kv_reader_table

        return kv_reader_table(result)

    def plot_alt(self, result: Result) -> str:
        from ramble2post.experiments.reader_tables import kv_plot_alt

        return kv_plot_alt(result)

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        from ramble2post.experiments.plots_batching import kvcache_png

        return {"kv-cache-growth.png": kvcache_png(results)}


# --------------------------------------------------------------------- maths


def kv_bytes(
    *, n_layer: int, n_kv_heads: int, head_dim: int, bytes_per_element: int, tokens: int, batch: int = 1
) -> int:
    """Bytes of K and V: 2 · n_layer · n_kv_heads · head_dim · bytes · tokens · batch."""
    return 2 * n_layer * n_kv_heads * head_dim * bytes_per_element * tokens * batch


def layouts(n_head: int, n_kv_heads: int) -> list[tuple[str, int]]:
    """(name, kv heads) for the model as shipped and its MHA / GQA / MQA variants of the same shape."""
    out = [(f"as shipped ({_kind(n_head, n_kv_heads)})", n_kv_heads)]
    if n_kv_heads != n_head:
        out.append(("MHA", n_head))
    gqa = max(1, n_head // 4) if n_kv_heads in (n_head, 1) else None
    if gqa and gqa not in (n_head, n_kv_heads, 1):
        out.append((f"GQA ({n_head // gqa} queries per KV head)", gqa))
    if n_kv_heads != 1:
        out.append(("MQA", 1))
    return out


def _kind(n_head: int, n_kv: int) -> str:
    if n_kv == n_head:
        return "MHA"
    return "MQA" if n_kv == 1 else f"GQA {n_head // n_kv}:1"


def fits_tokens(*, free_bytes: float, bytes_per_token: float, batch: int, fixed_bytes: float = 0.0) -> int:
    """Tokens of context per sequence whose cache fits in ``free_bytes`` (``fixed_bytes`` per sequence first)."""
    room = free_bytes - batch * fixed_bytes
    return max(0, int(room // (batch * bytes_per_token)))


def diff_pct(computed: float, measured: float) -> float:
    """Relative difference of the computed bytes from the measured ones (%)."""
    return 100.0 * (computed - measured) / measured if measured else float("inf")


def _contexts(max_ctx: int) -> list[int]:
    out, c = [], 64
    while c < max_ctx:
        out.append(c)
        c *= 2
    return out + [max_ctx]


def _row(kind, model, attention, kv_heads, batch, ctx, per_token, kvb, measured=None, fits=None) -> tuple:
    return (
        kind,
        model,
        attention,
        kv_heads,
        batch,
        ctx,
        per_token,
        kvb,
        round(kvb / MIB, 3),
        measured,
        None if measured is None else round(diff_pct(kvb, measured), 3),
        fits,
    )


# ------------------------------------------------------------------- Whisper


def _whisper(context: Context, p, free) -> tuple[list[tuple], ModelUsed, list[float]]:
    from ramble2post.experiments.decode_bench import WhisperDecoderBench
    from ramble2post.transcribe.models import load_whisper_model

    context.report(f"Whisper {context.whisper_model}: decoding with the KV cache to measure its tensors")
    model, info = load_whisper_model(name_or_path=context.whisper_model, device=context.device)
    bench = WhisperDecoderBench(model=model, device=context.device)
    d, eb = model.dims, bench.dtype_bytes
    hd = d.n_text_state // d.n_text_head
    name = f"whisper-{info.name}"
    self_tok = kv_bytes(n_layer=d.n_text_layer, n_kv_heads=d.n_text_head, head_dim=hd, bytes_per_element=eb, tokens=1)
    cross = kv_bytes(
        n_layer=d.n_text_layer, n_kv_heads=d.n_text_head, head_dim=hd, bytes_per_element=eb, tokens=d.n_audio_ctx
    )
    rows = [
        _row("per-token", f"{name} self-attn", "as shipped (MHA)", d.n_text_head, 1, 1, self_tok, self_tok),
        _row(
            "per-sequence",
            f"{name} cross-attn",
            "as shipped (MHA)",
            d.n_text_head,
            1,
            d.n_audio_ctx,
            cross // d.n_audio_ctx,
            cross,
        ),
    ]
    checks = []
    for b in p["check_batches"]:
        run = bench.run(batch=int(b), steps=int(p["check_steps"]))
        t = run["context_tokens"]
        computed = b * (cross + t * self_tok)
        measured = run["self_kv_bytes"] + run["cross_kv_bytes"]
        checks.append(abs(diff_pct(computed, measured)))
        rows.append(
            _row(
                "check",
                f"{name} self+cross",
                "as shipped (MHA)",
                d.n_text_head,
                int(b),
                t,
                self_tok,
                computed,
                measured,
            )
        )
    for att, kvh in layouts(d.n_text_head, d.n_text_head):
        per_tok = kv_bytes(n_layer=d.n_text_layer, n_kv_heads=kvh, head_dim=hd, bytes_per_element=eb, tokens=1)
        fixed = per_tok * d.n_audio_ctx  # cross-attention K/V of the audio, per sequence
        for b in p["growth_batches"]:
            for ctx in _contexts(d.n_text_ctx):
                rows.append(_row("growth", name, att, kvh, int(b), ctx, per_tok, int(b) * (fixed + ctx * per_tok)))
            fits = fits_tokens(free_bytes=free, bytes_per_token=per_tok, batch=int(b), fixed_bytes=fixed)
            rows.append(
                _row(
                    "fits",
                    name,
                    att,
                    kvh,
                    int(b),
                    d.n_text_ctx,
                    per_tok,
                    int(b) * (fixed + d.n_text_ctx * per_tok),
                    None,
                    fits,
                )
            )
    return rows, ModelUsed(role="whisper", name=info.name, path=info.path, sha256=info.sha256), checks


# ---------------------------------------------------------------- llama.cpp


def _llm(context: Context, p, free) -> tuple[list[tuple], ModelUsed, list[float]]:
    from ramble2post.cache import sha256_file
    from ramble2post.structure import llm as llm_mod

    name, path, _source, _exp = llm_mod.resolve_gguf(context.llm)
    sha = getattr(llm_mod, "_sha256_cached", sha256_file)(path)
    context.report(f"{name}: llama.cpp KV buffer and state size")
    rows, checks = [], []
    with LlamaBatchDecoder(path=path, threads=1, n_gpu_layers=-1 if context.device == "cuda" else 0) as dec:
        s = dec.shape
        per_tok = dec.kv_bytes_per_token(bytes_per_element=F16_BYTES)
        if per_tok != kv_bytes(
            n_layer=s.n_layer, n_kv_heads=s.n_head_kv, head_dim=s.head_dim, bytes_per_element=F16_BYTES, tokens=1
        ):
            raise ExperimentError("inconsistent KV arithmetic")  # pragma: no cover - guards the two formulas
        shipped = f"as shipped ({_kind(s.n_head, s.n_head_kv)})"
        rows.append(_row("per-token", name, shipped, s.n_head_kv, 1, 1, per_tok, per_tok))
        for b in p["check_batches"]:
            b = int(b)
            n_ctx = max(LLM_CHECK_CTX, -(-b * (len(dec.prompt) + int(p["check_steps"]) + 1) // 256) * 256)
            with dec.context(n_seq=b, n_ctx=n_ctx) as (ctx, log):
                reported = kv_size_from_log(log)
                if reported is not None:  # the buffer llama.cpp allocated for all n_ctx cells
                    rb, cells = reported
                    # the log rounds MiB to 2 decimals: allow for it in the comparison
                    checks.append(max(0.0, abs(diff_pct(cells * per_tok, rb)) - 100 * 0.005 * MIB / rb))
                    rows.append(
                        _row(
                            "check (allocated buffer)",
                            name,
                            shipped,
                            s.n_head_kv,
                            b,
                            cells // b,
                            per_tok,
                            cells * per_tok,
                            rb,
                        )
                    )
                run = dec.run(ctx, batch=b, steps=int(p["check_steps"]))
                t = run["context_tokens"]
                checks.append(abs(diff_pct(b * t * per_tok, run["state_bytes"])))
                rows.append(
                    _row(
                        "check (used cells, llama_state_get_size)",
                        name,
                        shipped,
                        s.n_head_kv,
                        b,
                        t,
                        per_tok,
                        b * t * per_tok,
                        run["state_bytes"],
                    )
                )
        for att, kvh in layouts(s.n_head, s.n_head_kv):
            pt = kv_bytes(n_layer=s.n_layer, n_kv_heads=kvh, head_dim=s.head_dim, bytes_per_element=F16_BYTES, tokens=1)
            for b in p["growth_batches"]:
                for c in _contexts(s.n_ctx_train):
                    rows.append(_row("growth", name, att, kvh, int(b), c, pt, int(b) * c * pt))
                rows.append(
                    _row(
                        "fits",
                        name,
                        att,
                        kvh,
                        int(b),
                        s.n_ctx_train,
                        pt,
                        int(b) * s.n_ctx_train * pt,
                        None,
                        fits_tokens(free_bytes=free, bytes_per_token=pt, batch=int(b)),
                    )
                )
    return rows, ModelUsed(role="llm", name=name, path=str(path), sha256=sha), checks


# ------------------------------------------------------------------- summary


def _summary(rows, free, checks) -> dict[str, Any]:
    s: dict[str, Any] = {
        "free_memory_bytes": free,
        "free_memory_GiB": round(free / 2**30, 3),
        "max_check_diff_pct": round(max(checks), 3) if checks else None,
        "checks_agree_within_10pct": bool(checks) and max(checks) <= AGREE_PCT,
    }
    for r in rows:
        kind, model, att, _kvh, batch = r[0], r[1], r[2], r[3], r[4]
        if kind == "per-token":
            s[f"{model} bytes_per_token"] = r[6]
        if kind == "per-sequence":
            s[f"{model} bytes_per_sequence"] = r[7]
        if kind == "fits" and batch == 1:
            tag = "shipped" if att.startswith("as shipped") else att.split(" ")[0]
            s[f"{model} fits_tokens_{tag}"] = r[11]
            # r[7]: one sequence's cache at the model's full context (cross-attention included)
            s[f"{model} sequences_at_full_context_{tag}"] = int(free // r[7]) if r[7] else None
    return s


def reading(summary: dict[str, Any]) -> str:
    """Plain sentence from the numbers."""
    parts = []
    for key, v in summary.items():
        if key.endswith(" bytes_per_token"):
            model = key[: -len(" bytes_per_token")]
            base = model.replace(" self-attn", "")
            fit = summary.get(f"{base} fits_tokens_shipped")
            mqa = summary.get(f"{base} fits_tokens_MQA")
            seqs = summary.get(f"{base} sequences_at_full_context_shipped")
            txt = f"{model} keeps {v / 1024:.1f} KiB per token per sequence"
            if fit is not None:
                txt += f", so {fit:,} tokens of context fit in free memory"
                if mqa:
                    txt += f" ({mqa:,} with multi-query attention)"
            if seqs is not None:
                txt += f", or {seqs:,} sequences at the model's full context"
            parts.append(txt)
    agree = summary.get("max_check_diff_pct")
    tail = f" Shapes predicted the allocated cache within {agree:.1f}%." if agree is not None else ""
    return ("; ".join(parts) + "." if parts else "No model measured.") + tail
