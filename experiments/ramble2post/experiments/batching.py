"""``batching-speedup``: are extra sequences nearly free while decoding?

Decoding one token per step is a matrix-vector product per layer: the weights
stream from memory once per step whatever the batch, so B sequences per step
should give close to B× the tokens/s until compute runs out. Measured side by
side in one run, interleaved round by round so a busy machine slows every batch
size alike:

(a) the GGUF LLM through llama.cpp, B sequences per ``llama_decode`` call;
(b) the Whisper text decoder with its KV cache in PyTorch, B sequences per step;
(c) roofline rows: the memory bandwidth and FLOP/s of this machine (measured
    here), and matrix-vector vs matrix-matrix products at the models' layer shapes.

Every decode row has tokens/s, the speedup over batch 1, the latency each
sequence sees per token (the step time), and the model-bandwidth utilisation:
bytes read per step (weights + KV cache) / step time / measured peak bandwidth.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ramble2post.errors import ExperimentError
from ramble2post.experiments import roofline as rl
from ramble2post.experiments.base import Context, Experiment, ModelUsed, Param, ReaderTable, Result, Trigger, register
from ramble2post.experiments.decode_bench import LlamaBatchDecoder, WhisperDecoderBench, timing_plan

MB = 1e6  # bytes per MB
CTX_PAD = 256  # llama.cpp KV cells are allocated in multiples of this (cells)
MEMORY_SHARE = 0.5  # a batch is skipped when its KV cache would need more than this share of free RAM

COLUMNS = (
    "part",
    "model",
    "batch",
    "tokens_per_s",
    "speedup",
    "latency_ms_per_token",
    "bytes_per_step_MB",
    "GB_per_s",
    "GFLOP_per_s",
    "arith_intensity",
    "MBU_pct",
)
UNITS = {
    "batch": "sequences",
    "tokens_per_s": "tokens/s (all sequences)",
    "speedup": "x batch 1",
    "latency_ms_per_token": "ms (step time each sequence waits)",
    "bytes_per_step_MB": "MB (1e6 bytes)",
    "GB_per_s": "GB/s",
    "GFLOP_per_s": "GFLOP/s",
    "arith_intensity": "FLOP/byte",
    "MBU_pct": "% of measured peak",
}

_BATCH = r"batch(?:ing|ed|es)?"
TRIGGERS = (
    Trigger(
        rf"\b{_BATCH}\b[^.?!]{{0,60}}\b(?:tokens?|throughput|sequences|requests|decod\w*|inference|"
        r"generat\w*|users?|prompts?)\b",
        1.0,
        "batching + decoding",
    ),
    Trigger(
        r"\b(?:tokens?|throughput|sequences|requests|decod\w*|inference|generat\w*)\b[^.?!]{0,60}"
        rf"\b{_BATCH}\b",
        1.0,
        "decoding + batching",
    ),
    Trigger(
        r"\bbatch (?:it|them|those|these|that|up|together)\b|\bcontinuous[\s-]batching\b|"
        r"\bbatch(?:ed)? (?:inference|decoding|generation)\b|\bbatch[\s-]sizes?\b",
        1.0,
        "batch it",
    ),
    Trigger(
        r"\b(?:matching|matched|badging|patching)\b[^.?!]{0,60}\b(?:tokens?|throughput|requests|sequences|users|"
        r"prompts)\b|\b(?:tokens?|throughput|requests)\b[^.?!]{0,60}\b(?:matching|matched|badging|patching)\b",
        1.0,
        "batching misheard ('matching') + decoding",
    ),
    Trigger(r"\bbatching\b", 0.75, "batching"),
    Trigger(
        r"\btokens? (?:per|a|/)\s?(?:second|sec|s)\b|\btok(?:ens)?/s\b|\bt\.?\s?p\.?\s?s\b", 0.75, "tokens per second"
    ),
    Trigger(
        r"\bmemory[\s-](?:bandwidth|bound)\b|\bbandwidth[\s-]bound\b|\bmatrix[\s-]vector\b|\bmat[\s-]?vec\b"
        r"|\bg\.?\s?e\.?\s?m\.?\s?v\b|\broofline\b|\barithmetic intensity\b|\bcompute[\s-]bound\b",
        0.75,
        "memory bound",
        shared=True,  # the reason batching pays, and why one-token decoding cannot use the matrix units
    ),
    Trigger(
        r"\bthroughput\b|\bparallel (?:requests|sequences|users)\b|\b(?:nearly|almost|basically) free\b|\bfor free\b"
        r"|\bmatrix[\s-]matrix\b|\btensor cores?\b|\bmodel bandwidth utili[sz]ation\b|\bm\.?\s?b\.?\s?u\b",
        0.25,
        "throughput word",
        context=True,
    ),
)


@register
class BatchingSpeedup(Experiment):
    name = "batching-speedup"
    version = "1"
    claim = "Decoding is memory-bound, so batching several sequences multiplies tokens/s until compute runs out."
    triggers = TRIGGERS
    descriptions = (
        "batching many requests together multiplies the tokens per second throughput",
        "serving many sequences at once is nearly free because decoding is memory bandwidth bound",
        "tokens per second for one request versus many requests processed together",
    )
    params = {
        "batches": Param((1, 2, 4, 8, 16, 32), "batch sizes (sequences decoded per step)", quick=(1, 2, 4, 8)),
        "steps": Param(16, "decode steps timed per batch size and round", quick=12),
        "rounds": Param(3, "interleaved rounds over all batch sizes (median of rounds)", quick=2),
        "parts": Param(("llm", "whisper", "roofline"), "what to measure: llm, whisper, roofline"),
        "threads": Param("auto", "CPU threads for llama.cpp and torch; auto: all usable cores, 1 if busy"),
        "clock": Param("auto", "step timer: wall, cpu (process CPU time), or auto (cpu only when the machine is busy)"),
        "roofline_batches": Param(
            (1, 2, 4, 8, 16, 32, 64, 128, 256), "batch sizes of the matmul sweep", quick=(1, 2, 4, 8, 16, 32, 64)
        ),
    }

    def run(self, context: Context) -> Result:
        import torch

        p = self.resolve_params(context)
        batches = sorted(set(int_list(p["batches"], "batches")))
        p["roofline_batches"] = int_list(p["roofline_batches"], "roofline_batches")
        if not batches or batches[0] != 1:
            raise ExperimentError(
                "batches must include 1 (the speedup baseline)", hint="e.g. --param 'batches=[1,2,4]'"
            )
        threads, clock, why = timing_plan(context.device)
        if p["threads"] != "auto" or p["clock"] != "auto":
            threads = threads if p["threads"] == "auto" else int(p["threads"])
            clock = clock if p["clock"] == "auto" else str(p["clock"])
            why = f"{threads} thread(s), {clock} clock (set by parameter)"
        notes = [
            f"Timing: {why}.",
            "All timings come from one run, interleaved round by round on a machine that may be shared; "
            "each value is the median over rounds of the median step time.",
        ]
        parts = set(str_list(p["parts"]))
        old_threads, old_clock = torch.get_num_threads(), rl.set_clock(clock)
        torch.set_num_threads(threads)
        models: list[ModelUsed] = []
        try:
            with contextlib.ExitStack() as stack:
                context.report("measuring memory bandwidth and peak FLOP/s")
                bw = rl.measure_bandwidth(
                    device=context.device, nbytes=rl.COPY_BYTES_QUICK if context.quick else rl.COPY_BYTES
                )
                peak_flops = rl.measure_peak_flops(device=context.device)
                llm = wh = None
                if "llm" in parts:
                    llm, llm_used = _load_llm(context, threads)
                    stack.callback(llm.close)
                    models.append(llm_used)
                    if context.device == "cuda" and not llm.gpu_offload:
                        notes.append(
                            "This llama-cpp-python build cannot offload to the GPU: the LLM rows ran on "
                            "the CPU, while MBU is relative to the GPU's measured bandwidth."
                        )
                if "whisper" in parts:
                    wh, wh_used = _load_whisper(context)
                    models.append(wh_used)
                batches_llm, batches_wh, skipped = _fitting(batches, llm, wh, p["steps"])
                notes += skipped
                times = _interleaved(context, llm, wh, batches_llm, batches_wh, p["steps"], p["rounds"])
                rows = []
                if llm is not None:
                    rows += _llm_rows(llm, times["llm"], p["steps"], bw.peak_bytes_per_s)
                if wh is not None:
                    rows += _whisper_rows(wh, times["whisper"], p["steps"], bw.peak_bytes_per_s)
                shapes = _roofline_shapes(llm, wh) if "roofline" in parts else []
                context.report("roofline: matrix-vector vs matrix-matrix at the models' layer shapes")
                points = [
                    pt
                    for label, n, k in shapes
                    for pt in rl.matmul_sweep(
                        label=label, n=n, k=k, batches=p["roofline_batches"], device=context.device
                    )
                ]
        finally:
            torch.set_num_threads(old_threads)
            rl.set_clock(old_clock)
        # the compute roof is the best FLOP/s seen: the square matmul or a large-batch sweep point
        peak_flops = max([peak_flops] + [pt.flops_per_s for pt in points])
        rows = _peak_rows(bw, peak_flops) + rows + _roofline_rows(points, bw.peak_bytes_per_s)
        summary = {**_summary(rows, bw, peak_flops, points, threads), "clock": clock}
        return self.make_result(
            context,
            params={**p, "threads": threads, "clock": clock},
            models=models,
            columns=COLUMNS,
            units=UNITS,
            rows=rows,
            summary=summary,
            reading=reading(summary),
            notes=notes,
        )

    def reader_table(self, result: Result) -> ReaderTable:
        from ramble2post.experiments.reader_tables import batching_reader_table

        return batching_reader_table(result)

    def plot_alt(self, result: Result) -> str:
        from ramble2post.experiments.reader_tables import batching_plot_alt

        return batching_plot_alt(result)

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        from ramble2post.experiments.plots_batching import batching_png

        return {"batching-speedup.png": batching_png(results)}


# ------------------------------------------------------------------- loading


def str_list(value: Any) -> list[str]:
    """A list parameter given as a list, or as a string "a,b" (--param parts=llm,whisper)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def int_list(value: Any, name: str) -> list[int]:
    """Integers from a list or "1,2,4"; a bad value is an ExperimentError naming the parameter."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        return [int(v) for v in (str_list(value) if isinstance(value, str) else value)]
    except (TypeError, ValueError) as e:
        raise ExperimentError(
            f"parameter {name} must be a list of integers, got {value!r}", hint=f"e.g. --param '{name}=[1,2,4]'"
        ) from e


def _load_llm(context: Context, threads: int) -> tuple[LlamaBatchDecoder, ModelUsed]:
    from ramble2post.cache import sha256_file
    from ramble2post.structure import llm as llm_mod

    name, path, _source, _expected = llm_mod.resolve_gguf(context.llm)
    sha = getattr(llm_mod, "_sha256_cached", sha256_file)(path)
    context.report(f"loading {name} (llama.cpp)")
    dec = LlamaBatchDecoder(path=path, threads=threads, n_gpu_layers=-1 if context.device == "cuda" else 0)
    return dec, ModelUsed(role="llm", name=name, path=str(path), sha256=sha)


def _load_whisper(context: Context) -> tuple[WhisperDecoderBench, ModelUsed]:
    from ramble2post.transcribe.models import load_whisper_model

    context.report(f"loading Whisper {context.whisper_model} and encoding one 30-s window")
    model, info = load_whisper_model(name_or_path=context.whisper_model, device=context.device)
    audio = None
    if context.audio_path is not None:
        from ramble2post.transcribe.audio import load_audio

        audio = _samples(load_audio(context.audio_path, check_silence=False))
    bench = WhisperDecoderBench(model=model, audio=audio, device=context.device)
    return bench, ModelUsed(role="whisper", name=info.name, path=info.path, sha256=info.sha256)


def _samples(audio: Any):
    """The float32 samples of a pipeline.audio result (an object or a bare array)."""
    import numpy as np
    import torch

    arr = getattr(audio, "samples", audio)
    return torch.from_numpy(np.asarray(arr, dtype=np.float32))


def _free_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def _fitting(batches, llm, wh, steps) -> tuple[list[int], list[int], list[str]]:
    """Batch sizes whose KV caches fit in MEMORY_SHARE of free memory (the rest are skipped, with a note)."""
    device = "cuda" if wh is not None and wh.device == "cuda" else "cpu"
    budget = MEMORY_SHARE * _free_bytes(device)
    notes, out_llm, out_wh = [], [], []
    for b in batches:
        if llm is not None:
            if b * _llm_ctx(llm, steps) * llm.kv_bytes_per_token() <= budget:
                out_llm.append(b)
            else:
                notes.append(f"LLM batch {b} skipped: its KV cache would not fit in free memory")
        if wh is not None:
            if b * (wh.cross_kv_bytes() + (len(wh.sot) + steps) * wh.kv_bytes_per_token()) <= budget:
                out_wh.append(b)
            else:
                notes.append(f"Whisper batch {b} skipped: its KV cache would not fit in free memory")
    return out_llm, out_wh, notes


def _llm_ctx(llm: LlamaBatchDecoder, steps: int) -> int:
    return len(llm.prompt) + steps + 1


def _interleaved(context, llm, wh, batches_llm, batches_wh, steps, rounds) -> dict[str, dict[int, list[dict]]]:
    """Round-robin over batch sizes and models so machine noise hits every configuration alike."""
    out: dict[str, dict[int, list[dict]]] = {"llm": {}, "whisper": {}}
    with contextlib.ExitStack() as stack:
        ctx = None
        if llm is not None and batches_llm:
            n_ctx = max(batches_llm) * _llm_ctx(llm, steps)
            n_ctx = -(-n_ctx // CTX_PAD) * CTX_PAD
            ctx, _log = stack.enter_context(llm.context(n_seq=max(batches_llm), n_ctx=n_ctx))
        for r in range(int(rounds)):
            for b in sorted(set(batches_llm) | set(batches_wh)):
                context.report(f"round {r + 1}/{rounds}: batch {b}")
                if ctx is not None and b in batches_llm:
                    out["llm"].setdefault(b, []).append(llm.run(ctx, batch=b, steps=steps))
                if wh is not None and b in batches_wh:
                    out["whisper"].setdefault(b, []).append(wh.run(batch=b, steps=steps))
    return out


# ---------------------------------------------------------------------- rows


def _decode_row(part, model, b, step_s, base_tps, bytes_step, flops_step, peak_bps) -> tuple:
    tps = b / step_s
    return (
        part,
        model,
        b,
        round(tps, 2),
        round(tps / base_tps, 3) if base_tps else None,
        round(step_s * 1e3, 3),
        round(bytes_step / MB, 2),
        round(bytes_step / step_s / rl.GB, 3),
        round(flops_step / step_s / rl.GFLOP, 3),
        round(rl.arithmetic_intensity(flops=flops_step, bytes_moved=bytes_step), 3),
        round(100 * rl.mbu(bytes_per_step=bytes_step, seconds_per_step=step_s, peak_bytes_per_s=peak_bps), 2),
    )


def _median_step(runs: list[dict]) -> float:
    return rl.median([r["step_s"] for r in runs])


def _llm_rows(llm: LlamaBatchDecoder, by_batch, steps, peak_bps) -> list[tuple]:
    rows, base = [], None
    avg_ctx = len(llm.prompt) + steps / 2  # tokens of context per sequence, averaged over the timed steps
    for b in sorted(by_batch):
        step_s = _median_step(by_batch[b])
        base = base or (b / step_s if b == 1 else None)
        bytes_step = llm.shape.weight_bytes + b * avg_ctx * llm.kv_bytes_per_token()
        flops_step = 2 * llm.shape.n_params * b
        rows.append(_decode_row("llm (llama.cpp)", "gguf", b, step_s, base, bytes_step, flops_step, peak_bps))
    return rows


def _whisper_rows(wh: WhisperDecoderBench, by_batch, steps, peak_bps) -> list[tuple]:
    rows, base = [], None
    avg_ctx = len(wh.sot) + steps / 2
    w_bytes = wh.weight_bytes_per_step()
    n_weights = w_bytes // wh.dtype_bytes
    for b in sorted(by_batch):
        step_s = _median_step(by_batch[b])
        base = base or (b / step_s if b == 1 else None)
        bytes_step = w_bytes + b * (wh.cross_kv_bytes() + avg_ctx * wh.kv_bytes_per_token())
        rows.append(
            _decode_row("whisper decoder (torch)", "whisper", b, step_s, base, bytes_step, 2 * n_weights * b, peak_bps)
        )
    return rows


def _peak_rows(bw: rl.Bandwidth, peak_flops: float) -> list[tuple]:
    nb = bw.buffer_bytes / MB
    return [
        (
            "peak",
            "copy (read+write)",
            None,
            None,
            None,
            None,
            round(2 * nb, 1),
            round(bw.copy_bytes_per_s / rl.GB, 3),
            None,
            None,
            round(100 * bw.copy_bytes_per_s / bw.peak_bytes_per_s, 2),
        ),
        (
            "peak",
            "read (sum)",
            None,
            None,
            None,
            None,
            round(nb, 1),
            round(bw.read_bytes_per_s / rl.GB, 3),
            None,
            None,
            round(100 * bw.read_bytes_per_s / bw.peak_bytes_per_s, 2),
        ),
        (
            "peak",
            f"fp32 matmul (best of {rl.PEAK_FLOPS_N}^3 and the sweep)",
            None,
            None,
            None,
            None,
            None,
            None,
            round(peak_flops / rl.GFLOP, 3),
            None,
            None,
        ),
    ]


def _roofline_shapes(llm, wh) -> list[tuple[str, int, int]]:
    """(label, n, k) layer shapes of the models in the run: MLP up-projections and the output head."""
    shapes = []
    if wh is not None:
        d = wh.model.dims
        shapes.append((f"whisper mlp {d.n_text_state}x{4 * d.n_text_state}", 4 * d.n_text_state, d.n_text_state))
    if llm is not None:
        s = llm.shape
        ff = _llm_ff(s)
        shapes.append((f"llm mlp {s.n_embd}x{ff}", ff, s.n_embd))
    if not shapes:
        shapes.append(("mlp 512x2048", 2048, 512))
    return shapes


def _llm_ff(s) -> int:
    """Feed-forward width estimated from the parameter count (llama-style gated MLP, tied embeddings)."""
    attn = s.n_embd * s.n_head * s.head_dim * 2 + s.n_embd * s.n_head_kv * s.head_dim * 2
    per_layer = (s.n_params - s.n_vocab * s.n_embd) / max(1, s.n_layer) - attn
    ff = int(per_layer / (3 * s.n_embd))
    return max(64, ff // 64 * 64)


def _roofline_rows(points: Sequence[rl.MatmulPoint], peak_bps) -> list[tuple]:
    rows = []
    base: dict[Any, Any] = {}
    for pt in points:
        tps = pt.batch / pt.seconds
        base.setdefault(pt.label, tps)
        rows.append(
            (
                "roofline fp32",
                f"{pt.label} x{pt.layers} layers",
                pt.batch,
                round(tps, 2),
                round(tps / base[pt.label], 3),
                round(pt.seconds * 1e3, 3),
                round(pt.bytes_moved / MB, 2),
                round(pt.bytes_per_s / rl.GB, 3),
                round(pt.flops_per_s / rl.GFLOP, 3),
                round(pt.intensity, 3),
                round(100 * pt.bytes_per_s / peak_bps, 2),
            )
        )
    return rows


def _summary(rows, bw, peak_flops, points, threads) -> dict[str, Any]:
    ridge = rl.ridge_intensity(peak_flops_per_s=peak_flops, peak_bytes_per_s=bw.peak_bytes_per_s)
    s: dict[str, Any] = {
        "threads": threads,
        "peak_GB_per_s": round(bw.peak_bytes_per_s / rl.GB, 3),
        "copy_GB_per_s": round(bw.copy_bytes_per_s / rl.GB, 3),
        "read_GB_per_s": round(bw.read_bytes_per_s / rl.GB, 3),
        "peak_GFLOP_per_s": round(peak_flops / rl.GFLOP, 3),
        "ridge_FLOP_per_byte": round(ridge, 3),
        "compute_bound_batch_fp32": round(rl.compute_bound_batch(ridge_flop_per_byte=ridge, bytes_per_weight=4), 1),
    }
    for key, part in (("llm", "llm (llama.cpp)"), ("whisper", "whisper decoder (torch)")):
        rs = [r for r in rows if r[0] == part]
        if not rs:
            continue
        best = max(rs, key=lambda r: r[3])
        s[f"{key}_tokens_per_s_batch1"] = rs[0][3]
        s[f"{key}_best_tokens_per_s"] = best[3]
        s[f"{key}_best_batch"] = best[2]
        s[f"{key}_best_speedup"] = best[4]
        s[f"{key}_MBU_pct_batch1"] = rs[0][10]
        at4 = [r[4] for r in rs if r[2] >= 4]
        s[f"{key}_min_speedup_at_batch_ge_4"] = min(at4) if at4 else None
    for label in dict.fromkeys(pt.label for pt in points):
        knee = rl.measured_knee([pt for pt in points if pt.label == label])
        s[f"knee_batch {label}"] = knee
    return s


def reading(summary: dict[str, Any]) -> str:
    """One plain sentence templated from the measured numbers."""
    parts = []
    for key, name in (("llm", "the LLM"), ("whisper", "the Whisper decoder")):
        if f"{key}_best_speedup" in summary:
            parts.append(
                f"{name} went from {summary[f'{key}_tokens_per_s_batch1']:.1f} to "
                f"{summary[f'{key}_best_tokens_per_s']:.1f} tokens/s "
                f"({summary[f'{key}_best_speedup']:.1f}x at batch {summary[f'{key}_best_batch']})"
            )
    head = ("On this machine, batching " + " and ".join(parts) + ". ") if parts else ""
    return (
        head + f"Memory delivers {summary['peak_GB_per_s']:.1f} GB/s and the cores "
        f"{summary['peak_GFLOP_per_s']:.0f} GFLOP/s, so an fp32 layer turns compute-bound near batch "
        f"{summary['compute_bound_batch_fp32']:.0f}; below that, extra sequences mostly reuse weights "
        "already being read."
    )


def speedups(result: Result, part: str) -> dict[int, float]:
    """batch -> speedup for one part of a result ("llm (llama.cpp)", "whisper decoder (torch)", ...)."""
    return {r[2]: r[4] for r in result.rows if r[0] == part}
