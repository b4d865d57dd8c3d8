"""``low-precision-matmul``: where low-precision matrix units pay, and where they cannot.

The claim (the GPU talk in ``shared/seeds``, around 16:00-17:30): the big numbers on a
modern chip come from units specialised for low-precision matrix-matrix multiplication
(tensor cores on a GPU, AMX on a recent Xeon), not from the general cores; decoding one
token at a time is a matrix-vector product, and it cannot use them.

What is measured, per dtype (fp32, bf16, fp16, int8 on any machine; tf32 and fp8 on a
GPU), with the same PyTorch call a model's linear layer makes:

* **matrix-matrix** ``[m, k] @ [k, n]`` at the packaged models' layer shapes with m = 512
  tokens (a prompt being read, or a batch), and a square sweep: achieved TFLOP/s (TOP/s for
  int8), the share of the dtype's peak, and the speed-up over fp32;
* **matrix-vector** (m = 1, one token of decode) at the same layer shapes, the weights
  stacked deep enough to stream from memory: achieved GB/s against the machine's measured
  copy bandwidth, and the speed-up over fp32;
* **which instruction path ran**: the oneDNN / oneMKL kernel each call dispatched to on a
  CPU (``brg_matmul:avx10_1_512_amx`` means AMX tiles did the work), cuBLAS with or
  without tensor cores on a GPU.

Peak: the published dense peak of a known GPU, else the best square product this run
measured for that dtype (said in the result).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ramble2post.errors import ExperimentError
from ramble2post.experiments import roofline as rl
from ramble2post.experiments.base import Context, Experiment, Param, ReaderTable, Result, Trigger, register
from ramble2post.experiments.batching import int_list, str_list
from ramble2post.experiments.lowprec_paths import DTYPE_NOTES, cpu_flags, kernel_path, published_peak

PREFILL_M = 512  # rows of the matrix-matrix products at model shapes (tokens)
STREAM_BYTES = 64 * 2**20  # fp32 bytes of stacked weights per matrix-vector call: streams from DRAM
STREAM_BYTES_QUICK = 32 * 2**20  # bytes, --quick
TERA = 1e12  # FLOP per TFLOP
WHISPER_MLP = {"tiny.en": (384, 1536), "base": (512, 2048)}  # (d_model, d_mlp), openai-whisper ModelDimensions
CPU_DTYPES = ("fp32", "bf16", "fp16", "int8")
CUDA_DTYPES = ("fp32", "tf32", "bf16", "fp16", "int8", "fp8")

COLUMNS = (
    "kind",
    "shape",
    "m",
    "n",
    "k",
    "dtype",
    "seconds",
    "tflops",
    "pct_of_peak",
    "GBps",
    "pct_of_bandwidth",
    "speedup_vs_fp32",
    "path",
)
UNITS = {
    "m": "rows (tokens)",
    "n": "output features",
    "k": "input features",
    "seconds": "s per call (median)",
    "tflops": "TFLOP/s (TOP/s for int8)",
    "pct_of_peak": "% of the dtype's peak FLOP/s",
    "GBps": "GB/s of operands moved",
    "pct_of_bandwidth": "% of measured copy bandwidth",
    "speedup_vs_fp32": "x fp32 on the same shape",
    "path": "kernel that ran",
}

_DTYPE = (
    r"(?:bf|b\.?\s?f\.?|bee[\s-]?float|bfloat|brain[\s-]?float|fp|f\.?\s?p\.?|tf|int|in)[\s-]?(?:8|16|32|eight|sixteen|thirty[\s-]two)"
    r"|(?:eight|sixteen|8|16|4|four)[\s-]bits?"
)
_MATMUL = (
    r"(?:matmuls?|mat[\s-]?mull?s?|matt[\s-]?(?:mall|mole|mul)s?|gemms?|gem multipl\w*|matrix multipl\w*"
    r"|matrix[\s-]matrix|multipl\w* (?:of )?(?:two )?(?:big |large |chunky |huge )?(?:matri(?:x|ces)|grids|blocks|tables))"
)
TRIGGERS = (
    Trigger(
        r"\bten(?:[sz][eo]r|[\s-]sore)[\s-]?(?:cores?|course|cause|core's|chords?)\b"
        r"|\bmatrix[\s-](?:cores?|units?|engines?|extensions?)\b|\ba\.?\s?m\.?\s?x\b|\bam[\s-]ex\b|\badvanced matrix\b"
        r"|\bsystolic\b|\bmma instructions?\b",
        1.0,
        "tensor cores / AMX",
    ),
    Trigger(
        r"\b(?:low(?:er)?|reduced?)[\s-]precision (?:math|matmuls?|matrix|multipl\w*|arithmetic|compute|flops|units?|throughput)\b"
        rf"|\b(?:{_DTYPE})\s+(?:{_MATMUL}|flops|flaps|tops|tensor)\b",
        1.0,
        "low-precision matmul",
    ),
    Trigger(rf"\b{_MATMUL}\s+(?:in|at|with)\s+(?:{_DTYPE})\b", 1.0, "matmul in a low-precision type"),
    Trigger(
        rf"\b{_MATMUL}\b|\bgemv\b|\bgem[\s-]v\b|\bmat[\s-]?vec\b|\bmatrix[\s-](?:vector|times)\b"
        r"|\btimes (?:a single column|one vector|a (?:single )?vector|a list)\b",
        0.5,
        "matrix multiplication",
    ),
    Trigger(
        r"\b(?:tera|peta)[\s-]?(?:flops|flaps|ops)\b|\bt\.?\s?flops\b|\bflops\b|\bflaps\b|\btops\b"
        r"|\b(?:peak|headline|marketing|advertised|quoted|spec[\s-]sheet|big flop) (?:compute|throughput|flops|number|figure|speed)\b"
        r"|\b(?:dedicated|special(?:ised|ized)?) (?:matrix |math )?(?:hardware|units?|blocks?|circuits?|silicon)\b",
        0.5,
        "FLOPs / dedicated units",
    ),
    Trigger(
        rf"\b(?:{_DTYPE})\b|\bhalf[\s-]precision\b|\b(?:memory|bandwidth|compute)[\s-]bound\b|\bdecod\w+\b"
        r"|\bone (?:token|vector|word|piece) at a time\b|\b(?:cuda|normal|regular|general) cores\b|\bvector units\b"
        r"|\bsmall numbers\b|\blow[\s-]bit\b|\b(?:read|reading|load|loading) (?:the )?weights\b"
        r"|\bmemory (?:traffic|bandwidth)\b|\bwaiting on (?:memory|h\.?\s?b\.?\s?m)\b|\bon paper\b",
        0.25,
        "precision word",
        context=True,
    ),
)


@register
class LowPrecisionMatmul(Experiment):
    name = "low-precision-matmul"
    version = "1"
    claim = (
        "A chip's big FLOP numbers come from low-precision matrix units (tensor cores, AMX) that "
        "matrix-matrix work uses and one-token matrix-vector decoding cannot."
    )
    triggers = TRIGGERS
    descriptions = (
        "tensor cores do low precision matrix multiplication and that is where the flops of a GPU come from",
        "decoding one token at a time is matrix vector work that cannot use the tensor cores",
        "bf16 and fp8 matrix multiplies are many times faster than fp32 on modern hardware",
    )
    params = {
        "dtypes": Param("auto", "dtypes to measure (auto: fp32 bf16 fp16 int8, plus tf32 fp8 on a GPU)"),
        "square": Param((256, 512, 1024, 2048), "square matrix-matrix sizes (elements)", quick=(512, 1024)),
        "prefill_m": Param(PREFILL_M, "rows of the matrix-matrix products at model shapes (tokens)", quick=256),
        "reps": Param(7, "timed calls per point (median reported)", quick=3),
        "models": Param(("whisper", "llm"), "models whose layer shapes are measured: whisper, llm"),
    }

    def run(self, context: Context) -> Result:
        p = self.resolve_params(context)
        dtypes = _dtypes(p["dtypes"], context.device)
        p["dtypes"], p["square"], p["models"] = dtypes, int_list(p["square"], "square"), str_list(p["models"])
        m_big, reps, device = int(p["prefill_m"]), int(p["reps"]), context.device
        shapes = model_shapes(context, p["models"])
        context.report("measuring memory bandwidth")
        bw = rl.measure_bandwidth(device=device, nbytes=rl.COPY_BYTES_QUICK if context.quick else rl.COPY_BYTES)
        peak_bps = bw.peak_bytes_per_s
        notes = [DTYPE_NOTES[d] for d in CUDA_DTYPES if d not in dtypes and d in DTYPE_NOTES and device == "cpu"]
        points: list[dict[str, Any]] = []
        for dt in dtypes:
            context.report(f"{dt}: matrix-matrix and matrix-vector products")
            for size in p["square"]:
                points.append(_point(dt, "matrix-matrix", f"square {size}", size, size, size, device, reps, notes))
            for label, n, k in shapes:
                points.append(_point(dt, "matrix-matrix", label, m_big, n, k, device, reps, notes))
                points.append(_point(dt, "matrix-vector", label, 1, n, k, device, reps, notes, stream=True))
        peaks, peak_source = _peaks(points, dtypes, device)
        rows = [_row(pt, points, peaks, peak_bps) for pt in points]
        summary = _summary(rows, dtypes, peaks, peak_source, bw, device)
        return self.make_result(
            context,
            params=p,
            models=[],
            columns=COLUMNS,
            units=UNITS,
            rows=rows,
            summary=summary,
            reading=reading(summary),
            notes=[*dict.fromkeys(notes), f"peak FLOP/s: {peak_source}"],
        )

    def reader_table(self, result: Result) -> ReaderTable:
        from ramble2post.experiments.reader_tables_training import lowprec_reader_table

        return lowprec_reader_table(result)

    def plot_alt(self, result: Result) -> str:
        return result.reading

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        from ramble2post.experiments.plots_training import lowprec_png

        return {"low-precision-matmul.png": lowprec_png(results)}


# --------------------------------------------------------------------- shapes


def _dtypes(value: Any, device: str) -> list[str]:
    if value in ("auto", None):
        return list(CUDA_DTYPES if device == "cuda" else CPU_DTYPES)
    out = str_list(value)
    unknown = [d for d in out if d not in CUDA_DTYPES]
    if unknown:
        raise ExperimentError(f"unknown dtype(s) {', '.join(unknown)}", hint=f"known: {', '.join(CUDA_DTYPES)}")
    if "fp32" not in out:
        out.insert(0, "fp32")  # every speed-up is over fp32
    return out


def model_shapes(context: Context, models: Sequence[str]) -> list[tuple[str, int, int]]:
    """(label, n, k) of each packaged model's MLP up-projection (the largest per-layer matmul)."""
    shapes = []
    if "whisper" in models:
        name = context.whisper_model if context.whisper_model in WHISPER_MLP else "base"
        d, ff = WHISPER_MLP[name]
        shapes.append((f"whisper-{name} mlp {d}x{ff}", ff, d))
    if "llm" in models:
        try:
            label, d, ff = _gguf_mlp(context.llm)
            shapes.append((f"{label} mlp {d}x{ff}", ff, d))
        except Exception as e:  # noqa: BLE001 - a missing GGUF costs one shape, not the experiment
            context.report(f"no LLM shape ({type(e).__name__}: {e})")
    return shapes or [("mlp 512x2048", 2048, 512)]


def _gguf_mlp(spec: str) -> tuple[str, int, int]:
    """(model name, embedding width, feed-forward width) from the GGUF's metadata (vocabulary-only load)."""
    import llama_cpp

    from ramble2post.experiments.decode_bench import captured_llama_log
    from ramble2post.structure.llm import resolve_gguf

    name, path, _src, _exp = resolve_gguf(spec)
    with captured_llama_log():
        md = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False).metadata
    arch = md["general.architecture"]
    return name, int(md[f"{arch}.embedding_length"]), int(md[f"{arch}.feed_forward_length"])


# ------------------------------------------------------------------ measuring


def _operands(dt: str, m: int, n: int, k: int, device: str, copies: int) -> tuple[Callable[[], object], int]:
    """A zero-argument call computing ``x @ W`` for each of ``copies`` weights, and bytes per element."""
    g = torch.Generator(device="cpu").manual_seed(rl.SEED)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    if dt == "int8":
        x = torch.randint(-64, 64, (m, k), generator=g, dtype=torch.int8).to(device)
        ws = [torch.randint(-64, 64, (k, n), generator=g, dtype=torch.int8).to(device) for _ in range(copies)]
        return (lambda: [torch._int_mm(x, w) for w in ws]), 1
    if dt == "fp8":
        f8 = torch.float8_e4m3fn
        x8 = rand(m, k).to(f8)
        ws8 = [rand(n, k).to(f8).t() for _ in range(copies)]  # column-major, as _scaled_mm wants
        one = torch.ones((), device=device)
        return (lambda: [torch._scaled_mm(x8, w, scale_a=one, scale_b=one, out_dtype=torch.bfloat16) for w in ws8]), 1
    torch_dt = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dt]
    xf = rand(m, k).to(torch_dt)
    wsf = [rand(k, n).to(torch_dt) for _ in range(copies)]
    return (lambda: [xf @ w for w in wsf]), xf.element_size()


def _point(
    dt: str,
    kind: str,
    label: str,
    m: int,
    n: int,
    k: int,
    device: str,
    reps: int,
    notes: list[str],
    *,
    stream: bool = False,
) -> dict[str, Any]:
    """Time one (dtype, shape): seconds per product (median), or the reason it cannot run here."""
    pt: dict[str, Any] = {"kind": kind, "shape": label, "m": m, "n": n, "k": k, "dtype": dt}
    copies = max(1, -(-(STREAM_BYTES if stream else 0) // (n * k * 4))) if stream else 1
    try:
        with _tf32(dt == "tf32" and device == "cuda"):
            call, esize = _operands(dt, m, n, k, device, copies)
            pt["path"] = kernel_path(call, dt, device)
            t = rl.median(rl.time_call(call, device=device, reps=reps)) / copies
    except (RuntimeError, TypeError, AttributeError, NotImplementedError) as e:
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        notes.append(f"{dt} {kind}: not available on this machine ({why})")
        pt.update(seconds=None, path=f"not available here: {why}")
        return pt
    pt["seconds"] = t
    pt["flops"] = rl.matmul_flops(batch=m, n=n, k=k)
    pt["bytes"] = esize * (m * k + k * n) + (4 if dt == "int8" else esize) * m * n
    return pt


class _tf32:
    """Allow TF32 tensor-core math for fp32 matmuls inside the block (CUDA only)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        if self.on:
            self.old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True

    def __exit__(self, *exc: object) -> None:
        if self.on:
            torch.backends.cuda.matmul.allow_tf32 = self.old


def _peaks(points: list[dict[str, Any]], dtypes: Sequence[str], device: str) -> tuple[dict[str, float], str]:
    """Peak FLOP/s per dtype: published for a known GPU, else the best square product measured here."""
    if device == "cuda":
        pub = published_peak(torch.cuda.get_device_name(0))
        if pub is not None:
            name, table = pub
            return {d: table[d] * TERA for d in dtypes if d in table}, f"published dense peak of the {name}"
    peaks = {}
    for d in dtypes:
        best = [pt["flops"] / pt["seconds"] for pt in points if pt["dtype"] == d and pt.get("seconds")]
        if best:
            peaks[d] = max(best)
    return peaks, "the best product measured in this run for each dtype (no published peak for this device)"


def _row(pt: dict[str, Any], points: list[dict[str, Any]], peaks: dict[str, float], peak_bps: float) -> tuple:
    s = pt.get("seconds")
    if not s:
        return (pt["kind"], pt["shape"], pt["m"], pt["n"], pt["k"], pt["dtype"], *([None] * 6), pt["path"])
    fps, bps = pt["flops"] / s, pt["bytes"] / s
    base = next(
        (q for q in points if q["dtype"] == "fp32" and q["shape"] == pt["shape"] and q["kind"] == pt["kind"]), None
    )
    speed = base["seconds"] / s if base and base.get("seconds") else None
    peak = peaks.get(pt["dtype"])
    return (
        pt["kind"],
        pt["shape"],
        pt["m"],
        pt["n"],
        pt["k"],
        pt["dtype"],
        round(s, 7),
        round(fps / TERA, 4),
        round(100 * fps / peak, 1) if peak else None,
        round(bps / rl.GB, 2),
        round(100 * bps / peak_bps, 1),
        round(speed, 3) if speed else None,
        pt["path"],
    )


def _gmean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v and v > 0]
    return round(math.exp(statistics.fmean(math.log(v) for v in vals)), 3) if vals else None


def _summary(rows, dtypes, peaks, peak_source, bw: rl.Bandwidth, device: str) -> dict[str, Any]:
    r = [dict(zip(COLUMNS, row)) for row in rows]
    s: dict[str, Any] = {
        "device": device,
        "bandwidth_GBps": round(bw.peak_bytes_per_s / rl.GB, 2),
        "peak_source": peak_source,
        "cpu_flags": " ".join(cpu_flags()) if device == "cpu" else None,
    }
    for d in dtypes:
        mm = [x for x in r if x["dtype"] == d and x["kind"] == "matrix-matrix" and x["seconds"]]
        mv = [x for x in r if x["dtype"] == d and x["kind"] == "matrix-vector" and x["seconds"]]
        if not mm and not mv:
            s[f"{d}_available"] = False
            continue
        s[f"{d}_available"] = True
        if mm:
            best = max(mm, key=lambda x: x["tflops"])
            s[f"{d}_mm_best_tflops"] = best["tflops"]
            s[f"{d}_mm_speedup"] = _gmean([x["speedup_vs_fp32"] for x in mm])
            s[f"{d}_mm_path"] = best["path"]
        if mv:
            s[f"{d}_mv_speedup"] = _gmean([x["speedup_vs_fp32"] for x in mv])
            s[f"{d}_mv_GBps"] = max(x["GBps"] for x in mv)
            s[f"{d}_mv_pct_of_bandwidth"] = max(x["pct_of_bandwidth"] for x in mv)
        if peaks.get(d):
            s[f"{d}_peak_tflops"] = round(peaks[d] / TERA, 4)
    if s.get("fp32_peak_tflops"):  # roofline ridge: below it a product waits on memory
        s["ridge_flop_per_byte"] = round(s["fp32_peak_tflops"] * TERA / bw.peak_bytes_per_s, 2)
    low = [d for d in dtypes if d != "fp32" and s.get(f"{d}_mm_speedup")]
    if low:
        best = max(low, key=lambda d: s[f"{d}_mm_speedup"])
        s["best_low_precision"] = best
        s["best_mm_speedup"] = s[f"{best}_mm_speedup"]
        s["best_mv_speedup"] = max((s.get(f"{d}_mv_speedup") or 0.0) for d in low) or None
    return s


def reading(s: dict[str, Any]) -> str:
    """One plain sentence (or two) from the numbers."""
    best = s.get("best_low_precision")
    if not best:
        return "Only fp32 could be measured here, so there is no low-precision speed-up to report."
    path = s.get(f"{best}_mm_path") or ""
    where = f"; kernel: {path}" if path else ""
    if s["best_mm_speedup"] < 1.1:  # no matrix unit for a low-precision type on this machine (an older CPU)
        text = (
            f"No low-precision type beat fp32 on matrix-matrix products here (best: {best} at "
            f"{s['best_mm_speedup']:.2f}x{where}): this machine has no matrix unit for them"
        )
    else:
        text = (
            f"Matrix-matrix products ran {s['best_mm_speedup']:.1f}x faster in {best} than in fp32 "
            f"({s[f'{best}_mm_best_tflops']:.2f} TFLOP/s at best{where})"
        )
    mv = s.get("best_mv_speedup")
    if mv:
        text += f"; matrix-vector products, one token of decoding, gained at most {mv:.1f}x from any low-precision type"
        ridge = s.get("ridge_flop_per_byte")
        if ridge:
            text += (
                ": they do 2 operations per weight read (0.5 FLOP/byte in fp32), far below this machine's "
                f"{ridge:.0f} FLOP/byte ridge, so they wait on memory, not on the matrix units"
            )
    return text + "."
