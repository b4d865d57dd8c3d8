"""``quantization-loss``: how much quality does int8 / int4 / fewer bits really lose?

Measured on the Whisper model in use: its decoder is a language model
conditioned on audio, so teacher-forcing it on the reference text of an
utterance gives next-token distributions to compare, in the style of
llama.cpp's ``llama-perplexity --kl-divergence``:

* perplexity ratio vs fp32 on the reference text,
* mean (and 99th-percentile) KL divergence  KL(P_fp32 ‖ P_scheme) per token,
* same-top-1 rate (how often the most likely next token is unchanged),
* RMS Δp: root-mean-square change of the probability of the correct token,
* mean relative weight error ‖W − Ŵ‖/‖W‖ and model bytes at that bit width,
* WER change of a full transcription of the audio (greedy, temperature 0).

Audio is cut into windows of at most 30 s at the fp32 transcription's segment
boundaries; the reference text is shared out over the windows in proportion to
the words fp32 heard in each. Quantization is simulated (see experiments.quant).
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ramble2post.errors import ExperimentError
from ramble2post.experiments import quant
from ramble2post.experiments.base import (
    Context,
    Experiment,
    ModelUsed,
    Param,
    ReaderTable,
    Result,
    Stopwatch,
    Trigger,
    register,
)
from ramble2post.experiments.detect import num

WINDOW_S = 30.0  # s, Whisper's input length
SAMPLE_RATE = 16_000  # Hz
TIMING_WARMUP = 2  # forward passes not timed
TIMING_REPS = 5  # timed forward passes (median reported)

COLUMNS = (
    "scheme",
    "bits_per_weight",
    "model_MB",
    "weight_rel_error",
    "perplexity",
    "ppl_ratio",
    "mean_KLD",
    "p99_KLD",
    "same_top1_pct",
    "rms_dp_pct",
    "WER_pct",
    "delta_WER_pp",
    "forward_ms",
)
UNITS = {
    "bits_per_weight": "bit",
    "model_MB": "MB (1e6 bytes)",
    "weight_rel_error": "ratio",
    "perplexity": "",
    "ppl_ratio": "x fp32",
    "mean_KLD": "nats/token",
    "p99_KLD": "nats/token",
    "same_top1_pct": "%",
    "rms_dp_pct": "%",
    "WER_pct": "%",
    "delta_WER_pp": "percentage points",
    "forward_ms": "ms",
}

FULL_SCHEMES = ("fp16", "bf16", "int8", "int4", "int3", "int2", "int4-g128", "int4-g32", "int3-g32", "int2-g32")
QUICK_SCHEMES = ("fp16", "bf16", "int8", "int4", "int3", "int2", "int4-g128", "int4-g32")

Q = num(2, 3, 4, 8)
_NOT_TIME = r"(?!\s+(?:hours?|minutes?|seconds?|days?|weeks?|months?|years?|o'?clock|am|pm|of|or|and|to|people|parts|pieces|times|ways|steps|more))"

TRIGGERS = (
    Trigger(r"\b(?:de)?quanti[sz](?:e|es|ed|ing|ation|ations|er|ers)\b", 1.0, "quantize"),
    Trigger(rf"\bi\.?\s?n\.?\s?t[\s-]?{Q}\b", 1.0, "intN", shared=True),
    Trigger(rf"\bint[\s-]?{Q}\b", 1.0, "intN", shared=True),
    Trigger(
        rf"(?<!sixty[\s-])(?<!thirty[\s-])\b{num(1, 2, 3, 4, 5, 6, 8)}[\s-]?bits?\b(?!\s+(?:of|more|less|per second))",
        1.0,
        "N-bit",
        shared=True,
    ),
    Trigger(
        r"\b(?:bits?[\s-]per[\s-](?:weight|parameter)|bit[\s-]?widths?|fewer bits)\b",
        1.0,
        "bit width",
    ),
    Trigger(r"\blow(?:er)?[\s-]bits?\b", 1.0, "low bit", shared=True),
    Trigger(rf"\b(?:fp|nf|mxfp|f\.?\s?p\.?)[\s-]?{num(8, 4)}\b", 1.0, "fp8/fp4", shared=True),
    Trigger(
        r"\bg\.?\s?p\.?\s?t[\s-]?q\b|\ba\.?\s?w\.?\s?q\b|\bsmooth[\s-]?quant\b|\bbits[\s-]?and[\s-]?bytes\b"
        r"|\bq[2-8]_?(?:k|0|1)(?:_[sml])?\b|\bk[\s-]quants?\b|\bllm\.int8\b",
        1.0,
        "method",
    ),
    Trigger(
        r"how much (?:worse|better|quality|accuracy|do you lose|you lose)\b[^.?!]{0,40}?"
        rf"\b(?:in|int|into|inte)[\s-]?{Q}\b",
        1.0,
        "how much worse is intN",
    ),
    Trigger(rf"\b(?:in|into|inte|ent)[\s-]{num(4, 8)}\b{_NOT_TIME}", 0.5, "intN (heard as 'in eight')", shared=True),
    Trigger(rf"\b(?:fp|f\.?\s?p\.?|float)[\s-]?{num(16)}\b|\bhalf[\s-]precision\b", 0.5, "fp16", shared=True),
    Trigger(rf"\b(?:bf|b\.?\s?f\.?|bfloat|brain[\s-]float)[\s-]?{num(16)}\b", 0.5, "bf16", shared=True),
    # QLoRA quantizes the frozen base to 4 bits: a quantization word, shared with lora-finetune
    Trigger(r"\bq[\s-]?lora\b", 1.0, "QLoRA", shared=True),
    Trigger(
        r"\bquants\b|\b(?:reduced?|lower(?:ing)?|drop(?:ping)?|cut(?:ting)?)\s+(?:the\s+)?precision\b"
        r"|\bmixed[\s-]precision\b|\bcompress(?:ing)?\s+(?:the\s+)?weights\b|\bweight[\s-]only\b",
        0.5,
        "lower precision",
        shared=True,
    ),
    Trigger(r"\bperplexity\b|\bkl[\s-]divergence\b|\bk\.?\s?l\.?\s?d\b", 0.25, "quality metric", context=True),
    Trigger(
        r"\b(?:how much )?worse\b|\baccuracy\b|\bquality\b|\bdegrad\w*|\blos(?:e|es|ing|s)\b|\boutliers?\b"
        r"|\bweights\b|\bprecision\b|\brounding\b",
        0.25,
        "quality word",
        context=True,
    ),
)


@register
class QuantizationLoss(Experiment):
    name = "quantization-loss"
    version = "1"
    claim = "Lower-bit weights (int8, int4, ...) change a model's outputs by a measurable amount, larger as bits drop."
    triggers = TRIGGERS
    descriptions = (
        "quantizing model weights to fewer bits, int8 or four bit, and how much quality or accuracy is lost",
        "a compressed low-bit version of the model answers almost the same as the full precision model",
        "perplexity gets worse as the bits per weight drop",
    )
    params = {
        "schemes": Param(FULL_SCHEMES, "weight formats to compare against fp32", quick=QUICK_SCHEMES),
        "wer_schemes": Param(
            "all", "schemes that also get a full transcription for WER ('all' or a list)", quick=("int8", "int4")
        ),
        "wer_min_top1_pct": Param(
            50.0,
            "skip the WER transcription when same-top-1 is below this (%): a "
            "broken model only loops to the token limit and scores ~100% or worse",
            quick=0.0,
        ),
        "audio_seconds": Param(60.0, "seconds of audio used from the start of the file (s)", quick=60.0),
        "max_windows": Param(4, "30-s windows teacher-forced at most", quick=2),
        "include_embedding": Param(True, "also quantize the tied token embedding (the output projection)"),
        "time_forward": Param("cuda", "time a forward pass per scheme: 'cuda' (GPU only), 'always' or 'never'"),
    }

    def run(self, context: Context) -> Result:
        p = self.resolve_params(context)
        t0 = time.perf_counter()
        schemes = [quant.get_scheme(s) for s in p["schemes"]]
        wer_set = {s.name for s in schemes} if p["wer_schemes"] == "all" else set(p["wer_schemes"])
        device = context.device
        if device == "cuda" and not torch.cuda.is_available():
            raise ExperimentError("device cuda asked for but torch sees no GPU", hint="use --device cpu")

        base_model, info = _load_model(context.whisper_model, device)
        model = copy.deepcopy(base_model).float().eval()  # the shared, memoised model is never modified
        ref_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        audio, audio_path, reference, ref_source = _audio_and_reference(context, p["audio_seconds"])

        context.report("fp32: transcribing the reference audio")
        wall = {"load": time.perf_counter() - t0, "transcribe": 0.0, "teacher_forced": 0.0}
        with Stopwatch() as sw:
            fp32_text, segments, language = _transcribe(model, audio, device)
        wall["transcribe"] += sw.seconds
        if reference is None:
            reference, ref_source = fp32_text, "fp32 transcription (no reference text given)"
        windows = _windows(segments, reference, len(audio) / SAMPLE_RATE, p["max_windows"])
        tokenizer = _tokenizer(model, language)
        batches = [_prepare(model, tokenizer, audio, w, device) for w in windows]
        n_tokens = sum(len(b["targets"]) for b in batches)
        if n_tokens == 0:
            raise ExperimentError("no reference tokens to evaluate", hint="is the audio silent?")

        with torch.inference_mode():
            ref_logp = [_logprobs(model, b) for b in batches]
        do_time = p["time_forward"] == "always" or (p["time_forward"] == "cuda" and device == "cuda")
        fp32_stats = quant.apply_scheme(model, "fp32", include_embedding=p["include_embedding"], state_dict=ref_sd)[1]
        wer_fp32 = _wer(reference, fp32_text)
        rows = [
            _row(
                quant.get_scheme("fp32"),
                fp32_stats,
                fp32_stats,
                _metrics(ref_logp, ref_logp, batches),
                wer_fp32,
                wer_fp32,
                _time_forward(model, batches[0], "fp32", device) if do_time else None,
            )
        ]
        results: dict[str, dict[str, Any]] = {}
        skipped_wer: list[str] = []
        for i, s in enumerate(schemes, 1):
            context.report(f"[{i}/{len(schemes)}] {s.name}: round-tripping weights and teacher-forcing")
            sd, stats = quant.apply_scheme(model, s, include_embedding=p["include_embedding"], state_dict=ref_sd)
            model.load_state_dict(sd)
            del sd
            with Stopwatch() as sw, torch.inference_mode():
                m = _metrics(ref_logp, [_logprobs(model, b) for b in batches], batches)
            wall["teacher_forced"] += sw.seconds
            wer = None
            if s.name in wer_set and m["same_top1_pct"] < p["wer_min_top1_pct"]:
                skipped_wer.append(s.name)
            elif s.name in wer_set and stats.max_rel_error == 0.0:
                wer = wer_fp32  # bit-identical weights: the transcription is the fp32 one
            elif s.name in wer_set:
                context.report(f"[{i}/{len(schemes)}] {s.name}: transcribing for WER")
                with Stopwatch() as sw:
                    wer = _wer(reference, _transcribe(model, audio, device, language=language)[0])
                wall["transcribe"] += sw.seconds
            fwd = _time_forward(model, batches[0], s.name, device) if do_time else None
            rows.append(_row(s, stats, fp32_stats, m, wer, wer_fp32, fwd))
            results[s.name] = dict(zip(COLUMNS, rows[-1]))
        model.load_state_dict(ref_sd)

        survivors = quant.int8_fp16_survivors()
        casualties, first_bad = quant.int16_fp16_casualties()
        summary = _summary(results, rows[0], schemes, n_tokens, len(windows), len(audio) / SAMPLE_RATE)
        summary.update(
            int8_fp16_int8_survivors=survivors,
            int16_fp16_int16_casualties=casualties,
            int16_smallest_failing_abs=first_bad,
            reference_source=ref_source,
            **{f"wall_s_{k}": round(v, 2) for k, v in wall.items()},
        )
        notes = [
            "Quantization is simulated: weights are quantized and dequantized, so every row computes in "
            "fp32 and differs only in weight values; forward_ms therefore does not show int-kernel speedups.",
            "Integer schemes: symmetric absmax round-to-nearest, scales stored as fp16; intN-gG = one scale per "
            f"G inputs. Tied token embedding {'included' if p['include_embedding'] else 'left in fp32'}.",
            *(
                [
                    f"WER not measured for {', '.join(skipped_wer)}: same-top-1 below {p['wer_min_top1_pct']:.0f}%, "
                    "the transcription would only loop to the token limit."
                ]
                if skipped_wer
                else []
            ),
            f"Reference text: {ref_source}. Windows: {len(windows)} x <= 30 s, {n_tokens} tokens teacher-forced.",
            f"Exhaustive casts: {survivors}/256 int8 values survive int8->fp16->int8; {casualties} of 65536 int16 "
            f"values do not survive int16->fp16->int16 (first failure at |x| = {first_bad}).",
        ]
        model_used = ModelUsed(
            role="whisper",
            name=info.name,
            path=info.path,
            sha256=info.sha256,
            source_sha256=getattr(info, "source_sha256", None),
        )
        params = dict(p, audio=str(audio_path), language=language)
        del model
        return self.make_result(
            context,
            params=params,
            models=[model_used],
            columns=COLUMNS,
            units=UNITS,
            rows=rows,
            summary=summary,
            reading=reading(summary, results, model_name=info.name),
            notes=notes,
        )

    def reader_table(self, result: Result) -> ReaderTable:
        from ramble2post.experiments.reader_tables import quant_reader_table

        return quant_reader_table(result)

    def plot_alt(self, result: Result) -> str:
        from ramble2post.experiments.reader_tables import quant_plot_alt

        return quant_plot_alt(result)

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        from ramble2post.experiments.plots import quantization_loss_png

        return {"quantization-loss.png": quantization_loss_png(results)}


# ------------------------------------------------------------------ helpers


def _load_model(name: str, device: str):
    try:
        from ramble2post.transcribe.models import load_whisper_model
    except ImportError as e:  # pragma: no cover - pipeline.models ships with the package
        raise ExperimentError("ramble2post.transcribe.models is missing: cannot load Whisper") from e
    return load_whisper_model(name_or_path=name, device=device)


def _audio_and_reference(context: Context, seconds: float):
    from ramble2post.config import SAMPLE_AUDIO
    from ramble2post.transcribe.audio import load_audio

    path = Path(context.audio_path) if context.audio_path else SAMPLE_AUDIO
    audio = load_audio(path).samples[: int(seconds * SAMPLE_RATE)]
    reference, source = context.reference_text, "given with the audio"
    if reference is None and path.resolve() == SAMPLE_AUDIO.resolve():
        txt = SAMPLE_AUDIO.with_suffix(".txt")
        if txt.exists():
            reference, source = txt.read_text(encoding="utf-8"), f"hand transcript {txt.name}"
    return audio, path, reference, source


def _transcribe(model, audio, device: str, *, language: str | None = None):
    lang = "en" if not model.is_multilingual else language
    out = model.transcribe(
        audio, language=lang, temperature=0.0, fp16=False, condition_on_previous_text=False, verbose=None
    )
    segs = [(float(s["start"]), float(s["end"]), s["text"]) for s in out["segments"]]
    return out["text"].strip(), segs, out.get("language") or lang or "en"


def _windows(segments, reference: str, duration: float, max_windows: int) -> list[dict[str, Any]]:
    """Group fp32 segments into <= 30 s windows; share reference words out in proportion."""
    groups: list[list[tuple[float, float, str]]] = []
    for seg in segments:
        if groups and seg[1] - groups[-1][0][0] <= WINDOW_S:
            groups[-1].append(seg)
        else:
            groups.append([seg])
    if not groups:
        groups = [[(0.0, min(duration, WINDOW_S), reference)]]
    heard = [sum(len(s[2].split()) for s in g) for g in groups]
    words = reference.split()
    total = max(1, sum(heard))
    out, pos, acc = [], 0, 0
    for g, h in zip(groups, heard):
        acc += h
        end = round(len(words) * acc / total)
        start_s, end_s = g[0][0], min(g[-1][1], g[0][0] + WINDOW_S)
        text = " ".join(words[pos:end])
        pos = end
        if text:
            out.append({"start": start_s, "end": end_s, "text": text})
    return out[:max_windows]


def _tokenizer(model, language: str):
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(
        model.is_multilingual,
        num_languages=model.num_languages,
        language=language if model.is_multilingual else None,
        task="transcribe",
    )


def _prepare(model, tokenizer, audio, window, device: str) -> dict[str, Any]:
    from whisper.audio import log_mel_spectrogram, pad_or_trim

    a, b = int(window["start"] * SAMPLE_RATE), int(window["end"] * SAMPLE_RATE)
    mel = log_mel_spectrogram(pad_or_trim(torch.from_numpy(audio[a:b].copy())), model.dims.n_mels)
    prefix = list(tokenizer.sot_sequence_including_notimestamps)
    text_tokens = tokenizer.encode(" " + window["text"].strip())
    max_text = model.dims.n_text_ctx - len(prefix) - 1
    text_tokens = text_tokens[:max_text]
    tokens = prefix + text_tokens + [tokenizer.eot]
    return {
        "mel": mel.unsqueeze(0).to(device),
        "tokens": torch.tensor([tokens[:-1]], device=device),
        "targets": torch.tensor(tokens[len(prefix) :], device=device),
        "first": len(prefix) - 1,  # position whose output predicts the first text token
    }


def _logprobs(model, batch) -> torch.Tensor:
    """Teacher-forced next-token log-probabilities at the text positions, [T, vocab] fp32."""
    audio_features = model.embed_audio(batch["mel"])
    logits = model.logits(batch["tokens"], audio_features)[0, batch["first"] :]
    return torch.log_softmax(logits.float(), dim=-1)


def _metrics(ref: list[torch.Tensor], new: list[torch.Tensor], batches) -> dict[str, float]:
    lr, lq = torch.cat(ref), torch.cat(new)
    tgt = torch.cat([b["targets"] for b in batches])
    idx = torch.arange(len(tgt), device=tgt.device)
    nll_q = -lq[idx, tgt]
    kld = (lr.exp() * (lr - lq)).sum(-1).clamp(min=0)
    dp = lq[idx, tgt].exp() - lr[idx, tgt].exp()
    nll_r = -lr[idx, tgt]
    return {
        "perplexity": float(nll_q.mean().exp()),
        "ppl_ratio": float((nll_q.mean() - nll_r.mean()).exp()),
        "mean_KLD": float(kld.mean()),
        "p99_KLD": float(torch.quantile(kld.double().cpu(), 0.99)),
        "same_top1_pct": 100.0 * float((lq.argmax(-1) == lr.argmax(-1)).float().mean()),
        "rms_dp_pct": 100.0 * float(dp.pow(2).mean().sqrt()),
    }


def _wer(reference: str, hypothesis: str) -> float:
    from ramble2post.transcribe.wer import word_error_rate

    try:
        return 100.0 * word_error_rate(reference=reference, hypothesis=hypothesis)
    except ValueError:
        return float("nan")


def _time_forward(model, batch, scheme: str, device: str) -> float:
    """Median ms of one encoder+decoder forward in the scheme's compute dtype (warm-up excluded)."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(scheme)
    if dtype is None and device == "cuda" and scheme != "fp32":
        dtype = torch.float16  # dequantized int weights run on fp16 kernels
    dtype = dtype or torch.float32
    m = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    mel = batch["mel"].to(dtype)
    times = []
    with torch.inference_mode():
        for i in range(TIMING_WARMUP + TIMING_REPS):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            m.logits(batch["tokens"], m.embed_audio(mel))
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= TIMING_WARMUP:
                times.append(1000.0 * (time.perf_counter() - t))
    return sorted(times)[len(times) // 2]


def _row(s, stats, fp32_stats, m, wer, wer_fp32, fwd) -> tuple:
    bpw = (
        s.bits
        if s.kind in ("fp32", "float")
        else (
            (stats.model_bytes - (fp32_stats.model_bytes - fp32_stats.n_params_quantized * quant.FP32_BYTES))
            * 8
            / max(1, stats.n_params_quantized)
        )
    )
    return (
        s.name,
        round(bpw, 3),
        round(stats.model_bytes / 1e6, 2),
        round(stats.mean_rel_error, 6),
        round(m["perplexity"], 4),
        round(m["ppl_ratio"], 5),
        round(m["mean_KLD"], 6),
        round(m["p99_KLD"], 5),
        round(m["same_top1_pct"], 2),
        round(m["rms_dp_pct"], 3),
        None if wer is None or math.isnan(wer) else round(wer, 2),
        None if wer is None or math.isnan(wer) or math.isnan(wer_fp32) else round(wer - wer_fp32, 2),
        None if fwd is None else round(fwd, 2),
    )


def _summary(results, fp32_row, schemes, n_tokens, n_windows, audio_s) -> dict[str, Any]:
    fp32 = dict(zip(COLUMNS, fp32_row))
    out: dict[str, Any] = {
        "tokens": n_tokens,
        "windows": n_windows,
        "audio_seconds": round(audio_s, 2),
        "fp32_perplexity": fp32["perplexity"],
        "fp32_WER_pct": fp32["WER_pct"],
        "fp32_model_MB": fp32["model_MB"],
    }
    for name, r in results.items():
        key = re.sub(r"[^a-z0-9]+", "_", name)
        for col in ("mean_KLD", "ppl_ratio", "same_top1_pct", "model_MB", "delta_WER_pp"):
            out[f"{key}_{col}"] = r[col]
    for fam, members in quant.schemes_by_family([s.name for s in schemes]).items():
        if len(members) >= 2:
            kl = [results[s.name]["mean_KLD"] for s in members]
            pr = [results[s.name]["ppl_ratio"] for s in members]
            out[f"monotonic_{fam}"] = all(a < b for a, b in zip(kl, kl[1:])) and all(a <= b for a, b in zip(pr, pr[1:]))
    groups = [n for n in results if n.startswith("int4-g")]
    if "int4" in results and groups:
        out["int4_groupwise_beats_per_channel"] = all(
            results[g]["mean_KLD"] < results["int4"]["mean_KLD"] for g in groups
        )
    return out


def reading(summary: dict[str, Any], results: dict[str, dict[str, Any]], *, model_name: str) -> str:
    """One plain-language sentence per finding, filled in from the measured numbers only."""
    parts = []
    if "int8" in results:
        r = results["int8"]
        parts.append(
            f"With int8 weights, Whisper {model_name} kept the same most-likely next token "
            f"{r['same_top1_pct']:.1f}% of the time (mean KL divergence {r['mean_KLD']:.4f} nats/token, "
            f"perplexity x{r['ppl_ratio']:.3f}) at {r['model_MB']:.0f} MB instead of {summary['fp32_model_MB']:.0f} MB."
        )
    if "int4" in results:
        r = results["int4"]
        s = f"Per-channel int4 moved perplexity x{r['ppl_ratio']:.3f} with {r['same_top1_pct']:.1f}% same top token"
        best = min((n for n in results if n.startswith("int4-g")), key=lambda n: results[n]["mean_KLD"], default=None)
        if best and results[best]["mean_KLD"] > 0:
            ratio = r["mean_KLD"] / results[best]["mean_KLD"]
            s += (
                f"; group-wise {best} cut its KL divergence {ratio:.1f}x"
                if ratio >= 1
                else f"; group-wise {best} did not help (KL divergence x{1 / ratio:.1f} higher)"
            )
        parts.append(s + ".")
    low = [n for n in ("int2", "int3") if n in results]
    if low:
        r = results[low[0]]
        verdict = "the model breaks down" if r["ppl_ratio"] > 2 or r["same_top1_pct"] < 50 else "quality drops further"
        parts.append(
            f"At {low[0][3:]} bits per weight {verdict}: perplexity x{r['ppl_ratio']:.3g}, "
            f"same top token {r['same_top1_pct']:.0f}% of the time."
        )
    for name in ("fp16", "bf16"):
        if name in results:
            r = results[name]
            if r["weight_rel_error"] == 0:
                parts.append(f"{name} changed no weight at all: this checkpoint's weights are already {name} values.")
            else:
                parts.append(
                    f"{name} is the near-lossless baseline (mean KL divergence {r['mean_KLD']:.2g} nats/token)."
                )
            break
    parts.append(f"Measured over {summary['tokens']} tokens of {summary['audio_seconds']:.0f} s of audio.")
    return " ".join(parts)
