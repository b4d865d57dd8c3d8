"""Batched transcription engine: VAD chunks -> batched encoder -> batched greedy decoding.

Still openai-whisper + torch underneath; what changes is how the work is fed:

1. **VAD** (``vad.choose_vad``): an energy detector in numpy on 30 ms frames, with a
   threshold set between the file's noise floor and its speech level, hangover to
   bridge short pauses and padding at the edges, on clean audio; on noisy audio (loud and
   quiet frames less than 25 dB apart) Silero VAD (silero-vad, its model in the wheel, on
   onnxruntime), since there the energy threshold sits inside the noise and cuts words.
2. **Chunking**: clean audio (``plan_chunks``): speech regions are packed greedily into
   windows of at most ``max_chunk_s`` seconds (the encoder always sees 30 s, so fewer, fuller
   windows mean fewer encoder passes); a region too long for one window is cut at the
   quietest frame between 70 % and 100 % of a full window. Noisy audio (``pack_speech``):
   Silero's regions laid end to end without the noise between them, up to 30 s of speech
   per window, as faster-whisper's batched pipeline does.
3. **Batched log-mel + encoder**: the mels of ``batch_size`` windows are computed in
   one STFT and encoded in one forward pass; the encoder output is kept so that the
   temperature fallback re-decodes without encoding again.
4. **Batched decoding**, two beams per window (``BatchedOptions.beam_size``; whisper's beam
   rules as tensor ops in ``beam.py``, the beams sharing their window's cross-attention keys),
   with whisper's own ``DecodingTask`` (logit filters; KV cache written in place,
   ``kvcache.py``), text only (no timestamp tokens: 13-min sample 7.84 % WER vs 8.95 % with them);
   each window's sentences get times spread over its speech (``sentence_times``). Windows
   are independent of each other, as in faster-whisper's batched pipeline. ``context=True``
   prompts each window with the words decoded before it, as whisper's own loop does (windows
   dealt into chains and lanes so that a window's predecessor is decoded one batch earlier,
   ``context.py``); off by default: on 32 files it did not lower the WER (docs/PERFORMANCE.md).
5. **Precision on CPU**: the decoder's linear layers in int8
   (``torch.ao.quantization.quantize_dynamic``; whisper's ``Linear`` subclass is not
   matched by its exact-type lookup, so the modules are swapped to plain ``nn.Linear``
   first); the encoder in bf16 autocast where the CPU has native bf16 (AVX512-BF16/AMX),
   else fp32. Not int8 in the encoder: dynamic quantization shares one activation scale
   per tensor (batch x 1500 frames), which cost 1.9 WER points on the 13-min sample.
   The decoding step itself (``speed_up_decoder``, CPU int8 only): logits through an int8
   per-channel copy of the token embedding instead of whisper's fp32 product with a
   transposed view, and the cross-attention keys/values cached once per decode as
   contiguous (batch, heads, frames, dim) tensors instead of being read through a permuted
   view at every step. Together: decoding 43 -> ~19 s, total ~36 s on the 13-min sample.
6. **Threads**: the encoder's big GEMMs use all physical cores; the decoding loop runs
   on one thread: its per-step ops are tiny, and waking a second thread for each costs
   more than it saves (base, 60 steps x 3 windows: 2.1 CPU-s on 1 thread, 12 on 2).
   ``workers`` runs several batches at once instead, each op on 1 thread (a decoder copy
   per worker; the text is identical, checked on both samples with base and tiny.en).
   Batches are made even and their number a multiple of the workers (``plan_batches``:
   10 windows go as 5 + 5, not 8 + 2): a 3-5 min file took 20-30 % less time.
   ``None`` (auto) = 2 workers on a 2-3-core CPU with >= 2 batches and >= 4 GiB free,
   else 1: on an idle 2-core machine the single worker leaves a core idle while it
   decodes (13-min sample, base, 3 interleaved runs: 21.0 s (20.5-21.3) with 2 workers vs
   24.1 s (23.8-24.4) with 1, +1.2 GB peak RSS). With other jobs on the box it was no
   better (51 s (44-59) vs 46 s); on more cores the one worker's encoder uses them all,
   and 2 workers were not measured there.
7. **CUDA**: fp16 weights (``model.half()``) and bigger batches.

Numbers for each lever: docs/PERFORMANCE.md, "Transcription".
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ramble2post.transcribe import context
from ramble2post.transcribe.audio import SAMPLE_RATE
from ramble2post.transcribe.context import CPU_CHAINS, decode_rows, plan_chains, row_prompts
from ramble2post.transcribe.precision import (  # noqa: F401
    cpu_has_bf16,
    prepare_model,
    quantize_int8,
    replicate_decoder,
)
from ramble2post.transcribe.segments import _split_segments, sentence_times  # noqa: F401

# OpenMP threads that spin while waiting collapse when the cores are shared (measured on the
# 2-core box with other jobs running: tiny.en decoder 27.5 s with 2 spinning threads, 4.6 s
# with 2 passive ones, 5.3 s with 1 thread).
# libgomp reads this once, when torch is first imported: this module is imported before that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ramble2post.transcribe.vad import (  # noqa: E402,F401
    CHUNK_S,
    CUT_FROM,
    FRAME_S,
    N_SAMPLES,
    Chunk,
    VadOptions,
    choose_vad,
    detect_speech,
    frame_levels_db,
    pack_speech,
    plan_chunks,
    silero_regions,
    speech_regions,
)

# whisper's fallback rules (same thresholds as whisper.transcribe)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


@dataclasses.dataclass(frozen=True)
class BatchedOptions:
    """Settings of the batched engine; all of them change the output or its speed."""

    batch_size: int | None = None  # windows per encoder/decoder batch; None = 8 on CPU, 16 on CUDA
    quantize: str = "auto"  # "int8" | "none" | "auto" (= int8 decoder on CPU, fp16 weights on CUDA)
    encoder_bf16: bool = True  # CPU: run the encoder under bf16 autocast where the CPU has native bf16
    # decode timestamp tokens (segment times from Whisper) or text only (sentence times spread over the
    # window's speech by length). Text only is what faster-whisper's batched pipeline does, and it is
    # more accurate: 13-min sample, base, 7.84 % WER vs 8.95 % with timestamps (docs/PERFORMANCE.md).
    timestamps: bool = False
    max_chunk_s: float = 30.0  # s, longest window
    sdpa: bool = True  # torch scaled_dot_product_attention in whisper's attention
    threads: int | None = None  # torch intra-op threads for the encoder; None = physical cores
    decode_threads: int = 1  # threads for the decoding loop (workers == 1): its ops are too small to split
    workers: int | None = None  # CPU: batches run at once, each op on 1 thread; None = auto (see module doc)
    vad: VadOptions = VadOptions()
    vad_engine: str = "auto"  # "energy" (numpy) | "silero" | "auto" (Silero on noisy audio), see vad.detect_speech
    # prompt each window with the text decoded before it, batches dealt out so that it is decoded first
    # (context.py). Off: windows independent, as faster-whisper's batched pipeline decodes them; on did
    # not lower the WER on 32 files (mean +0.22 clean, +0.07 pink 10 dB, -0.28 brown 5 dB points).
    context: bool = False
    # beams per window at temperature 0 (1 = greedy). Two beams: lower WER than greedy on 27 of 36 files
    # (12 re-synthesised rambles clean, + pink 10 dB, + brown 5 dB: means 8.46 -> 8.01, 16.55 -> 15.06,
    # 13.10 -> 12.08 %) at ~1.13x the time: the beams share their window's cross-attention keys
    # (precision.py) and whisper's beam rules run as tensor ops (beam.py). docs/PERFORMANCE.md
    beam_size: int = 2


# ---------------------------------------------------------------------------- workers


AUTO_WORKERS_MAX_CORES = 3  # auto picks 2 workers only on 2-3 physical cores (measured on 2; see module doc)
WORKER_RAM_BYTES = 4 << 30  # bytes free needed for a second worker (its decoder copy and caches: ~1.2 GB)


def auto_workers(n_batches: int) -> int:
    """Workers for ``n_batches`` batches on this CPU when the caller did not choose (see module doc)."""
    cores = physical_cores()
    if n_batches < 2 or not 2 <= cores <= AUTO_WORKERS_MAX_CORES:
        return 1
    try:
        import psutil

        if psutil.virtual_memory().available < WORKER_RAM_BYTES:
            return 1
    except (ImportError, OSError):
        return 1
    return 2


def plan_batches(n_windows: int, *, batch_size: int, workers: int) -> list[list[int]]:
    """Windows ``0 .. n_windows - 1`` in contiguous batches of at most ``batch_size``, their number a
    multiple of ``workers`` where there are windows enough, their sizes within one of each other.

    Decoding a batch costs time in proportion to its rows (each row reads its own 1500 cached
    keys and values at every step), so 10 windows on 2 workers go as 5 + 5, not 8 + 2.
    """
    if n_windows <= 0:
        return []
    count = -(-n_windows // batch_size)
    count = min(n_windows, -(-count // workers) * workers)
    bounds = [round(k * n_windows / count) for k in range(count + 1)]
    return [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyperthreads don't help GEMMs)."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover
        n = None
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n or avail, avail))


# ---------------------------------------------------------------------------- mel + decoding


def batch_log_mel(batch: Sequence[np.ndarray], *, n_mels: int, device: str):
    """Log-mel of several <= 30 s clips at once, each zero-padded to 30 s: (B, n_mels, 3000).

    Same maths as ``whisper.log_mel_spectrogram`` (clamp 8 dB below each clip's own max).
    """
    import torch
    from whisper.audio import HOP_LENGTH, N_FFT, mel_filters

    audio = np.zeros((len(batch), N_SAMPLES), np.float32)
    for i, clip in enumerate(batch):
        audio[i, : min(len(clip), N_SAMPLES)] = clip[:N_SAMPLES]
    x = torch.from_numpy(audio).to(device)
    window = torch.hann_window(N_FFT, device=x.device)
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel = mel_filters(x.device, n_mels) @ magnitudes
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (log_spec + 4.0) / 4.0


def _needs_fallback(r) -> bool:
    if r.no_speech_prob > NO_SPEECH_THRESHOLD and r.avg_logprob < LOGPROB_THRESHOLD:
        return False  # silence: keep, it will be dropped
    return r.compression_ratio > COMPRESSION_RATIO_THRESHOLD or r.avg_logprob < LOGPROB_THRESHOLD


def transcribe_batched(
    *,
    model,
    samples: np.ndarray,
    device: str,
    language: str | None = None,
    prompt: str | None = None,
    temperature: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    beam_size: int | None = None,
    options: BatchedOptions = BatchedOptions(),
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Transcribe 16 kHz mono ``samples`` with the batched engine.

    model: a loaded openai-whisper model (not modified; a prepared copy is memoised).
    device: "cpu" or "cuda" (where ``model`` lives).
    language: None = detect once on the first window (English-only models: "en").
    prompt: initial prompt given to every window (windows are independent).
    temperature: fallback schedule; windows failing whisper's thresholds at one
        temperature are re-decoded at the next, from the cached encoder output.
    beam_size: beams per window at temperature 0; None = ``options.beam_size`` (2), 1 = greedy.
    progress: called with the seconds of audio in each batch once it is decoded (from worker
        threads when there are several), e.g. to advance a progress bar.
    Returns ``{"segments": [{start, end, text, avg_logprob, no_speech_prob}], "language", "timing", "chunks",
    "vad", "segment_times", "regions", "speech_s"}`` (``vad``: "energy" or "silero"; ``regions``: its speech, s).
    """
    import torch
    import whisper
    from whisper.model import MultiHeadAttention
    from whisper.tokenizer import get_tokenizer

    t0 = time.perf_counter()
    beams = options.beam_size if beam_size is None else beam_size
    enc_threads = options.threads or physical_cores()
    net = prepare_model(model, device=device, quantize=options.quantize)
    t_prep = time.perf_counter()
    vad = choose_vad(samples=samples, engine=options.vad_engine)
    if vad == "silero":  # noisy audio: speech packed without the noise between it
        regions = silero_regions(samples=samples)
        chunks = pack_speech(regions=regions, max_chunk_s=options.max_chunk_s)
    else:
        regions = speech_regions(samples=samples, options=options.vad)
        chunks = plan_chunks(samples=samples, regions=regions, max_chunk_s=options.max_chunk_s)
    t_vad = time.perf_counter()
    batch_size = options.batch_size or (16 if device == "cuda" else 8)
    # context: chains of lanes (see context.py); else each batch on its own, as before
    if options.context:
        plan = plan_chains(len(chunks), batch_size=batch_size, chains=CPU_CHAINS if device == "cpu" else 1)
    else:
        # as many batches as a full batch size needs, rounded up to a multiple of the workers that
        # would run them, all of one size (+-1), so that no worker waits for another's bigger batch
        fit = 1 if device != "cpu" else (options.workers or auto_workers(2))
        plan = [[b] for b in plan_batches(len(chunks), batch_size=batch_size, workers=fit)]
    workers = 1 if device != "cpu" else (options.workers or auto_workers(len(plan)))
    workers = max(1, min(workers, len(plan)))
    fp16 = device == "cuda"
    bf16 = device == "cpu" and options.encoder_bf16 and cpu_has_bf16()
    if not model.is_multilingual:
        language = "en"
    timing = {
        "prepare_s": t_prep - t0,
        "vad_s": t_vad - t_prep,
        "mel_s": 0.0,
        "encode_s": 0.0,
        "decode_s": 0.0,
        "fallback_s": 0.0,
        "context_s": 0.0,
    }

    def clip(c: Chunk) -> np.ndarray:
        cuts = [samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in c.spans()]
        return cuts[0] if len(cuts) == 1 else np.concatenate(cuts)

    results: list[Any] = [None] * len(chunks)
    history: list[list[int] | None] = [None] * len(chunks)  # text tokens each window adds to later prompts
    temps = [float(t) for t in temperature] if isinstance(temperature, (list, tuple)) else [float(temperature)]  # type: ignore[arg-type]
    lock = threading.Lock()

    def encode(replica, batch: Sequence[Chunk], threads: int | None, spent: dict[str, float]):
        ta = time.perf_counter()
        mel = batch_log_mel([clip(c) for c in batch], n_mels=model.dims.n_mels, device=device)
        if fp16:
            mel = mel.half()
        spent["mel_s"] += time.perf_counter() - ta
        if threads:
            torch.set_num_threads(threads)
        tb = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = replica.encoder(mel)
        features = features.float() if bf16 else features
        spent["encode_s"] += time.perf_counter() - tb
        return features

    def decode(replica, idx: list[int], features, prompts, spent: dict[str, float], key: str) -> None:
        """Decode windows ``idx`` (and re-decode at higher temperatures where whisper's rules say)."""
        todo = list(range(len(idx)))
        for k, t in enumerate(temps):
            kwargs: dict[str, Any] = {
                "language": language,
                "fp16": fp16,
                "without_timestamps": not options.timestamps,
                "temperature": t,
            }
            if t == 0 and beams > 1:
                kwargs["beam_size"] = beams
            ts = time.perf_counter()
            rows = features if len(todo) == len(idx) else features[todo]  # fallback: only the failed rows
            out = decode_rows(replica, rows, whisper.DecodingOptions(**kwargs), [prompts[i] for i in todo])
            spent[key if k == 0 else "fallback_s"] += time.perf_counter() - ts
            for i, r in zip(todo, out):
                results[idx[i]] = r
            todo = [i for i, r in zip(todo, out) if _needs_fallback(r)]
            if not todo:
                break
        for i in idx:
            r = results[i]
            silent = r.no_speech_prob > NO_SPEECH_THRESHOLD and r.avg_logprob < LOGPROB_THRESHOLD
            # whisper's loop: a dropped window adds nothing; one decoded above 0.5 resets the prompt
            history[i] = [] if silent else None if r.temperature > 0.5 else [t for t in r.tokens if t < eot]

    def run_chain(replica, chain: list[list[int]], enc_n: int | None, dec_n: int | None) -> None:
        """Encode and decode a chain's batches in order; then its lanes' first windows again, prompted."""
        spent = dict.fromkeys(("mel_s", "encode_s", "decode_s", "fallback_s", "context_s"), 0.0)
        start, first = chain[0][0], None
        for b, idx in enumerate(chain):
            features = encode(replica, [chunks[i] for i in idx], enc_n, spent)
            if dec_n:
                torch.set_num_threads(dec_n)
            if b == 0:
                first = features
            prompts = (
                row_prompts(idx, history, start=start, base=base) if options.context else [base or None] * len(idx)
            )
            decode(replica, idx, features, prompts, spent, "decode_s")
            if progress:
                with lock:
                    progress(sum(chunks[i].end - chunks[i].start for i in idx))
        redo = (
            [p for p, i in enumerate(chain[0]) if i > start] if options.context and context.REDECODE_LANE_STARTS else []
        )
        if redo and first is not None:
            idx = [chain[0][p] for p in redo]
            decode(replica, idx, first[redo], row_prompts(idx, history, start=start, base=base), spent, "context_s")
        with lock:  # with several workers these add up the workers' times (more than the wall time)
            for key, v in spent.items():
                timing[key] += v

    prev_sdpa = MultiHeadAttention.use_sdpa
    MultiHeadAttention.use_sdpa = options.sdpa
    try:
        with torch.inference_mode():
            if language is None and chunks:
                features = encode(net, chunks[:1], enc_threads, timing)
                _, probs = net.detect_language(features, get_tokenizer(True, num_languages=model.num_languages))
                language = max(probs[0], key=probs[0].get)
            tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language)
            eot = tokenizer.eot
            base = tokenizer.encode(" " + prompt.strip()) if prompt else []
            if workers == 1:
                for chain in plan:
                    run_chain(net, chain, enc_threads, options.decode_threads)
            else:
                # one chain per worker at a time, every op on 1 thread. Each worker needs its own
                # decoder: whisper's KV cache lives in forward hooks on the decoder's modules.
                torch.set_num_threads(1)
                replicas = replicate_decoder(net, workers)
                queue = list(reversed(plan))

                def worker(replica) -> None:
                    with torch.inference_mode():
                        while True:
                            with lock:
                                if not queue:
                                    return
                                chain = queue.pop()
                            run_chain(replica, chain, None, None)

                with ThreadPoolExecutor(max_workers=workers) as pool:
                    for f in [pool.submit(worker, r) for r in replicas]:
                        f.result()
    finally:
        MultiHeadAttention.use_sdpa = prev_sdpa
        torch.set_num_threads(enc_threads)

    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language or "en")
    segments = []
    for chunk, r in zip(chunks, results):
        if r.no_speech_prob > NO_SPEECH_THRESHOLD and r.avg_logprob < LOGPROB_THRESHOLD:
            continue  # whisper's silence rule
        pieces = (
            [(a, b, tokenizer.decode(toks).strip()) for a, b, toks in _split_segments(r.tokens, tokenizer, chunk, True)]
            if options.timestamps
            else sentence_times(tokenizer.decode([t for t in r.tokens if t < tokenizer.eot]), chunk)
        )
        for start, end, text in pieces:
            if text:
                segments.append(
                    {
                        "start": start,
                        "end": end,
                        "text": text,
                        "avg_logprob": r.avg_logprob,
                        "no_speech_prob": r.no_speech_prob,
                    }
                )
    segments.sort(key=lambda s: (s["start"], s["end"]))
    timing = {k: round(v, 3) for k, v in timing.items()}
    timing["total_s"] = round(time.perf_counter() - t0, 3)
    return {
        "segments": segments,
        "language": language or "en",
        "timing": timing,
        "chunks": [dataclasses.asdict(c) for c in chunks],
        "vad": vad,
        # text-only windows: a sentence's start/end are its share of the window's speech, not heard times
        "segment_times": "timestamp tokens" if options.timestamps else "spread over each window",
        "regions": [(round(a, 3), round(b, 3)) for a, b in regions],
        "speech_s": round(sum(b - a for a, b in regions), 3),
    }
