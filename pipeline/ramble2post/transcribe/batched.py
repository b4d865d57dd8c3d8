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
   are independent of each other, as in faster-whisper's batched pipeline (prompting each
   window with the words before it was measured and dropped: on 32 files it did not lower the
   WER, docs/PERFORMANCE.md).
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
   Where the encoder runs in bf16, the cached values are kept in bf16 too (the keys and the
   softmax stay fp32): a step reads every window's 1500 frames per layer, the step's largest
   memory traffic. A window's beams run their first pass (start tokens and prompt) once, and a
   window whose beam search is over leaves the batch (``decoding.BatchTask._beam_loop``):
   whisper's loop decoded it on until the batch's longest window ended (23 % of the steps'
   rows on an 8-min clip). Measured: docs/PERFORMANCE.md, stop 25.
6. **Threads**: the encoder's big GEMMs use all physical cores; the decoding loop runs
   on one thread: its per-step ops are tiny, and waking a second thread for each costs
   more than it saves (base, 60 steps x 3 windows: 2.1 CPU-s on 1 thread, 12 on 2).
   ``workers`` runs several batches at once instead, each op on 1 thread (a decoder copy
   per worker; the text is identical, checked on both samples with base and tiny.en).
   Batches are made even and their number a multiple of the workers (``plan_batches``:
   10 windows go as 5 + 5, not 8 + 2): a 3-5 min file took 20-30 % less time.
   ``None`` (auto) = batches laid out for 2 workers on a 2-3-core CPU, run by 2 when there
   are >= 2 batches and >= 4 GiB free, else by 1 (same batches, same text, slower): on an idle 2-core machine the single worker leaves a core idle while it
   decodes (13-min sample, base, 3 interleaved runs: 21.0 s (20.5-21.3) with 2 workers vs
   24.1 s (23.8-24.4) with 1, +1.2 GB peak RSS). With other jobs on the box it was no
   better (51 s (44-59) vs 46 s); on more cores the one worker's encoder uses them all,
   and 2 workers were not measured there.
7. **CUDA**: fp16 weights (``model.half()``) and bigger batches.

The engine runs as four named steps that hand each other frozen records: ``plan_windows``
(VAD, windows, batches, workers: ``WindowPlan``), ``encode`` and ``decode`` per batch
(``decoding.py``; ``run_batch`` makes a ``DecodedBatch``), and ``merge_segments`` (windows'
results -> time-ordered ``BatchedSegment``s); ``transcribe_batched`` strings them together and
returns a ``BatchedResult``. Process-wide settings (torch's thread count, whisper's
``use_sdpa``) are set only inside ``with`` blocks (``torch_state.py``) and are as the caller left
them when it returns; ``OMP_WAIT_POLICY`` is set by the entry points (CLI, scripts), not here.

Numbers for each lever: docs/PERFORMANCE.md, "Transcription".
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Literal

from ramble2post.machine import physical_cores
from ramble2post.transcribe.audio import Signal
from ramble2post.transcribe.decoding import (  # noqa: F401  (batch_log_mel: re-exported for tests and scripts)
    DecodeSettings,
    StepTimes,
    batch_log_mel,
    chunk_audio,
    decode,
    detect_language,
    encode,
    is_silent,
    likeliest_language,
)
from ramble2post.transcribe.language import LanguageGate, decode_settings
from ramble2post.transcribe.precision import (  # noqa: F401
    cpu_has_bf16,
    prepare_model,
    quantize_int8,
    replicate_decoder,
)
from ramble2post.transcribe.segments import _split_segments, sentence_times  # noqa: F401
from ramble2post.transcribe.torch_state import release_free_memory, torch_threads, whisper_sdpa
from ramble2post.transcribe.vad import (  # noqa: F401
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

if TYPE_CHECKING:  # whisper (and torch under it) is imported when a model is loaded, not here
    from whisper.model import Whisper
    from whisper.tokenizer import Tokenizer


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
    # beams per window at temperature 0 (1 = greedy). Two beams: lower WER than greedy on 27 of 36 files
    # (12 re-synthesised rambles clean, + pink 10 dB, + brown 5 dB: means 8.46 -> 8.01, 16.55 -> 15.06,
    # 13.10 -> 12.08 %) at ~1.13x the time: the beams share their window's cross-attention keys
    # (precision.py) and whisper's beam rules run as tensor ops (beam.py). docs/PERFORMANCE.md
    beam_size: int = 2
    best_of: int = 5  # samples per window at a fallback temperature, the likeliest kept (whisper's default)


class SegmentTimes(enum.StrEnum):
    """Where a segment's start and end come from (kept in the transcript's provenance)."""

    TIMESTAMP_TOKENS = "timestamp tokens"  # Whisper's own timestamp tokens
    SPREAD = "spread over each window"  # text-only windows: a sentence's share of its window's speech


@dataclasses.dataclass(frozen=True)
class BatchedSegment:
    """One sentence (text-only windows) or timestamped segment, times in s of the file."""

    start: float  # s
    end: float  # s
    text: str
    avg_logprob: float  # its window's
    no_speech_prob: float  # its window's


@dataclasses.dataclass(frozen=True)
class BatchedTiming:
    """Seconds spent in each step; mel..fallback add up the workers' times (more than the wall time)."""

    prepare_s: float  # s, until the int8 / fp16 copy (memoised) was ready and the language known (overlapped)
    vad_s: float  # s, VAD and windows (while the copy is made)
    mel_s: float  # s
    encode_s: float  # s
    decode_s: float  # s, first decode of every window
    fallback_s: float  # s, windows decoded again at higher temperatures
    total_s: float  # s, wall time of the whole call


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """The ``plan_windows`` step: where the speech is, its windows and how they are batched."""

    vad: Literal["energy", "silero"]  # the detector used
    regions: tuple[tuple[float, float], ...]  # s, speech found
    chunks: tuple[Chunk, ...]  # encoder windows, in time order
    batches: tuple[tuple[int, ...], ...]  # window indices per batch, in decoding order
    workers: int  # batches decoded at once (CPU), each on its own decoder copy and 1 thread


@dataclasses.dataclass(frozen=True)
class DecodedBatch:
    """One batch after ``run_batch``: whisper's result per window, and the seconds spent."""

    windows: tuple[int, ...]  # window indices
    results: tuple[Any, ...]  # whisper ``DecodingResult`` per window
    times: StepTimes
    audio_s: float  # s of the file the windows cover (for progress)


@dataclasses.dataclass(frozen=True)
class BatchedResult:
    """What ``transcribe_batched`` returns."""

    segments: tuple[BatchedSegment, ...]  # in time order, whisper's silent windows left out
    language: str
    timing: BatchedTiming
    chunks: tuple[Chunk, ...]  # the windows decoded
    vad: Literal["energy", "silero"]
    segment_times: SegmentTimes
    regions: tuple[tuple[float, float], ...]  # s, the VAD's speech, rounded to ms
    speech_s: float  # s of speech in ``regions``


# ---------------------------------------------------------------------------- workers


AUTO_WORKERS_MAX_CORES = 3  # auto picks 2 workers only on 2-3 physical cores (measured on 2; see module doc)
WORKER_RAM_BYTES = 4 << 30  # bytes free needed for a second worker (its decoder copy and caches: ~1.2 GB)


def layout_workers() -> int:
    """The workers the batch layout is planned for on this CPU when the caller did not choose.

    It depends on the machine alone (2 on 2-3 physical cores, else 1), never on the memory free at
    the moment: batches of other shapes decode near-ties differently (the 1-min sample as one batch
    of 3 windows or as 2 + 1: tiny.en int8 WER 20.8 vs 12.5 %), so a layout that followed free memory
    gave one recording different transcripts from run to run on a busy machine.
    """
    return 2 if 2 <= physical_cores() <= AUTO_WORKERS_MAX_CORES else 1


def auto_workers(n_batches: int) -> int:
    """Workers that run ``n_batches`` batches at once when the caller did not choose (see module doc).

    Short of memory for a second decoder copy, one worker runs the same batches one after the other:
    the text is the same, only slower.
    """
    if n_batches < 2 or layout_workers() < 2:
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


# ---------------------------------------------------------------------------- the steps


def plan_windows(*, samples: Signal, device: str, options: BatchedOptions) -> WindowPlan:
    """Step 1: speech regions, the windows that hold them, their batches and the workers to run them.

    samples: 16 kHz mono audio of the whole file.
    device: "cpu" or "cuda" (workers and batch size depend on it).
    options: VAD engine, window length, batch size, workers.
    """
    vad = choose_vad(samples=samples, engine=options.vad_engine)
    if vad == "silero":  # noisy audio: speech packed without the noise between it
        regions = silero_regions(samples=samples)
        chunks = pack_speech(regions=regions, max_chunk_s=options.max_chunk_s)
    else:
        regions = speech_regions(samples=samples, options=options.vad)
        chunks = plan_chunks(samples=samples, regions=regions, max_chunk_s=options.max_chunk_s)
    batch_size = options.batch_size or (16 if device == "cuda" else 8)
    # as many batches as a full batch size needs, rounded up to a multiple of the workers that
    # would run them, all of one size (+-1), so that no worker waits for another's bigger batch
    fit = 1 if device != "cpu" else (options.workers or layout_workers())
    batches = plan_batches(len(chunks), batch_size=batch_size, workers=fit)
    workers = 1 if device != "cpu" else (options.workers or auto_workers(len(batches)))
    return WindowPlan(
        vad="silero" if vad == "silero" else "energy",
        regions=tuple((float(a), float(b)) for a, b in regions),
        chunks=tuple(chunks),
        batches=tuple(tuple(b) for b in batches),
        workers=max(1, min(workers, len(batches))),
    )


window_audio = chunk_audio  # the audio a window holds (decoding.chunk_audio)


def run_batch(
    net: Whisper,
    *,
    samples: Signal,
    chunks: Sequence[Chunk],
    windows: Sequence[int],
    settings: DecodeSettings | LanguageGate,
    decode_threads: int | None = None,
) -> DecodedBatch:
    """Steps 2 and 3 for one batch: encode its windows, then decode them (with whisper's fallback).

    net: the prepared model, or a replica with its own decoder when batches run on several threads.
    samples: the file's audio; chunks: all windows; windows: the indices of this batch's windows.
    settings: decoding settings shared by every batch, or the gate that gives them once the language is known.
    decode_threads: torch threads for the decoding loop (None = as set for the encoder).
    """
    batch = [chunks[i] for i in windows]
    encoding = settings.encoding if isinstance(settings, LanguageGate) else settings
    features, enc_times = encode(net, [window_audio(samples, c) for c in batch], settings=encoding)
    release_free_memory()  # the encoder's activations, before decoding fills the heap again
    if isinstance(settings, LanguageGate):
        encoding = settings.settings(net, windows, features)
    with torch_threads(decode_threads):
        results, dec_times = decode(net, features, settings=encoding)
    return DecodedBatch(
        windows=tuple(windows),
        results=tuple(results),
        times=enc_times + dec_times,
        audio_s=sum(c.end - c.start for c in batch),
    )


def run_batches(
    net: Whisper,
    *,
    plan: WindowPlan,
    samples: Signal,
    settings: DecodeSettings | LanguageGate,
    options: BatchedOptions,
    progress: Callable[[float], None] | None = None,
) -> list[DecodedBatch]:
    """Steps 2 and 3 for every batch of ``plan``: one after the other, or ``plan.workers`` at once.

    One worker: the encoder on ``options.threads`` (None = physical cores), decoding on
    ``options.decode_threads``. Several: every op on 1 thread, each worker with its own decoder
    (whisper's KV cache lives in forward hooks on the decoder's modules).
    progress: called from this thread with the seconds of audio of each batch once it is decoded.
    """
    import torch

    def done(batch: DecodedBatch) -> DecodedBatch:
        release_free_memory()  # the batch's activations: without it peak memory grew with the recording
        if progress:
            progress(batch.audio_s)
        return batch

    if plan.workers == 1:
        with torch_threads(options.threads or physical_cores()):
            return [
                done(
                    run_batch(
                        net,
                        samples=samples,
                        chunks=plan.chunks,
                        windows=w,
                        settings=settings,
                        decode_threads=options.decode_threads,
                    )
                )
                for w in plan.batches
            ]
    free: SimpleQueue[Any] = SimpleQueue()  # decoders not in use; a worker takes one per batch
    with torch_threads(1):
        for replica in replicate_decoder(net, plan.workers):
            free.put(replica)

        def on_a_free_decoder(windows: tuple[int, ...]) -> DecodedBatch:
            replica = free.get()
            try:
                with torch.inference_mode():
                    return run_batch(replica, samples=samples, chunks=plan.chunks, windows=windows, settings=settings)
            finally:
                free.put(replica)

        with ThreadPoolExecutor(max_workers=plan.workers) as pool:
            futures = [pool.submit(on_a_free_decoder, w) for w in plan.batches]
            for f in as_completed(futures):
                done(f.result())
            return [f.result() for f in futures]


def merge_segments(
    *, chunks: Sequence[Chunk], results: Sequence[Any], tokenizer: Tokenizer, timestamps: bool
) -> tuple[BatchedSegment, ...]:
    """Step 4: every window's text as segments in file time, sorted; whisper's silent windows dropped.

    chunks: the windows; results: whisper's ``DecodingResult`` for each, in the same order.
    tokenizer: whisper's tokenizer for the decoding language.
    timestamps: the windows were decoded with timestamp tokens (else text only, times spread).
    """
    segments = []
    for chunk, r in zip(chunks, results):
        if is_silent(r):
            continue  # whisper's silence rule
        pieces = (
            [(a, b, tokenizer.decode(toks).strip()) for a, b, toks in _split_segments(r.tokens, tokenizer, chunk, True)]
            if timestamps
            else sentence_times(tokenizer.decode([t for t in r.tokens if t < tokenizer.eot]), chunk)
        )
        segments += [BatchedSegment(a, b, text, r.avg_logprob, r.no_speech_prob) for a, b, text in pieces if text]
    return tuple(sorted(segments, key=lambda s: (s.start, s.end)))


# ---------------------------------------------------------------------------- the engine


def transcribe_batched(
    *,
    model: Whisper,
    samples: Signal,
    device: str,
    language: str | None = None,
    prompt: str | None = None,
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    beam_size: int | None = None,
    options: BatchedOptions = BatchedOptions(),
    progress: Callable[[float], None] | None = None,
) -> BatchedResult:
    """Transcribe 16 kHz mono ``samples`` with the batched engine.

    model: a loaded openai-whisper model (not modified; a prepared copy is memoised).
    samples: 16 kHz mono float32 audio.
    device: "cpu" or "cuda" (where ``model`` lives).
    language: None = detect once: on the first window, or ``LANGUAGE_WINDOWS`` when it is unsure
        (English-only models: "en").
    prompt: initial prompt given to every window (windows are independent).
    temperature: fallback schedule; windows failing whisper's thresholds at one
        temperature are re-decoded at the next, from the cached encoder output.
    beam_size: beams per window at temperature 0; None = ``options.beam_size`` (2), 1 = greedy.
    options: engine settings (batching, precision, threads, VAD).
    progress: called with the seconds of audio in each batch once it is decoded (from the calling
        thread), e.g. to advance a progress bar.
    Torch's thread count and whisper's ``use_sdpa`` are as they were when it returns.
    """
    import torch
    from whisper.tokenizer import get_tokenizer

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ramble2post-prepare") as pool:
        # the int8 decoder is made while the VAD runs (CPU: ~0.6 s of one core, overlapped)
        preparing = pool.submit(prepare_model, model, device=device, quantize=options.quantize)
        plan = plan_windows(samples=samples, device=device, options=options)
        t_vad = time.perf_counter()
        settings = decode_settings(
            model=model,
            samples=samples,
            chunks=plan.chunks,
            device=device,
            language=language,
            prompt=prompt,
            temperature=temperature,
            beams=options.beam_size if beam_size is None else beam_size,
            best_of=options.best_of,
            encoder_bf16=options.encoder_bf16,
            timestamps=options.timestamps,
        )
        net = preparing.result()
    t_prep = time.perf_counter()
    with whisper_sdpa(options.sdpa), torch.inference_mode():
        batches = run_batches(net, plan=plan, samples=samples, settings=settings, options=options, progress=progress)

    results: list[Any] = [None] * len(plan.chunks)
    times = settings.times if isinstance(settings, LanguageGate) else StepTimes()
    for b in batches:
        times += b.times
        for i, r in zip(b.windows, b.results):
            results[i] = r
    if isinstance(settings, LanguageGate):  # every batch has passed it (none when there are no windows)
        settings = settings.settings(net, [], None) if plan.batches else settings.encoding
    language = settings.language or "en"
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language)
    segments = merge_segments(chunks=plan.chunks, results=results, tokenizer=tokenizer, timestamps=options.timestamps)
    return BatchedResult(
        segments=segments,
        language=language,
        timing=BatchedTiming(
            prepare_s=round(t_prep - t0, 3),
            vad_s=round(t_vad - t0, 3),
            mel_s=round(times.mel_s, 3),
            encode_s=round(times.encode_s, 3),
            decode_s=round(times.decode_s, 3),
            fallback_s=round(times.fallback_s, 3),
            total_s=round(time.perf_counter() - t0, 3),
        ),
        chunks=plan.chunks,
        vad=plan.vad,
        # text-only windows: a sentence's start/end are its share of the window's speech, not heard times
        segment_times=SegmentTimes.TIMESTAMP_TOKENS if options.timestamps else SegmentTimes.SPREAD,
        regions=tuple((round(a, 3), round(b, 3)) for a, b in plan.regions),
        speech_s=round(sum(b - a for a, b in plan.regions), 3),
    )
