"""Transcription stage: audio file -> Transcript, with openai-whisper.

Device ``auto`` picks CUDA with fp16 when available, else CPU with fp32.
Results are cached by (audio SHA-256, model checksum, decoding options, device):
a rerun with the same inputs returns at once without loading a model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tqdm

from ramble2post.cache import StageCache, sha256_file, stable_key
from ramble2post.config import DEFAULT_WHISPER, TERM_BIAS_DEFAULT
from ramble2post.errors import AudioError
from ramble2post.machine import resolve_device
from ramble2post.records import Correction, ModelInfo, Repair, Segment, Transcript
from ramble2post.transcribe import batched, bias
from ramble2post.transcribe.audio import Audio, Signal, describe_decoder, load_audio
from ramble2post.transcribe.models import load_whisper_model, resolve_whisper_model

if TYPE_CHECKING:  # imported when a model is loaded, not here
    import numpy as np
    from whisper.model import Whisper

CACHE_STAGE = "transcribe"


@dataclasses.dataclass(frozen=True)
class TranscribeOptions:
    """Decoding options; all of them are part of the cache key."""

    model: str | None = None  # name or path; None = pipeline.models.DEFAULT_MODEL
    device: str = "auto"  # auto | cpu | cuda
    language: str | None = None  # None = detect (English-only models: "en")
    prompt: str | None = None  # initial prompt: jargon such as "KV cache, HBM, MI300"
    beam_size: int | None = None  # None = the engine's default: 2 beams batched, greedy sequential; 1 = greedy
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # fallback schedule
    condition_on_previous_text: bool = True
    word_timestamps: bool = False
    # "batched": VAD windows decoded in batches, int8 on CPU (ramble2post/transcribe/batched.py);
    # "sequential": whisper.transcribe, 30-s windows one after the other. Word timestamps need "sequential".
    engine: str = "auto"  # auto | batched | sequential, see choose_engine()
    # re-decode looping segments and VAD speech no segment covers (ramble2post/transcribe/guard.py)
    guard: bool = True
    # nats added to the logits of the glossary's terms' tokens while decoding (bias.py); 0 = off
    term_bias: float = TERM_BIAS_DEFAULT
    # jargon spelled right after decoding (ramble2post/transcribe/glossary.py): None = off,
    # () = built-in terms only, else the user's (term, variants) pairs added to them. Not in the cache key.
    glossary: tuple[tuple[str, tuple[str, ...]], ...] | None = ()


def _decode_options(options: TranscribeOptions, device: str, english_only: bool) -> dict[str, Any]:
    decode: dict[str, Any] = {
        "language": "en" if english_only else options.language,
        "initial_prompt": options.prompt,
        "temperature": options.temperature,
        "condition_on_previous_text": options.condition_on_previous_text,
        "word_timestamps": options.word_timestamps,
        "fp16": device == "cuda",
    }
    if options.beam_size and options.beam_size > 1:
        decode["beam_size"] = options.beam_size
    return decode


# Bumped when an engine's output changes for the same inputs, so that cached transcripts are redone:
# 2 = text-only batched windows, Silero windows packed without the noise between them;
# 3 = the batched decoder's int8 logits rescored in fp32 for its top candidates (precision.RESCORE_TOP);
# 4 = two beams per window in the batched engine (BatchedOptions.beam_size);
# 7 = auto decodes a short recording with both engines (select.py); the guard's phrase loops;
# 8 = decodes that may sample are seeded (torch_state.seeded_sampling); phrases both engines heard are kept.
# 9 = the batched engine detects the language on 4 windows; the guard's phrase loops must be dense.
# 10 = auto's per-window choice scores both texts after three previous texts (select.CONTEXTS).
# 11 = the batched engine ends a looping row (decoding.EndLoops); a prompt's first pass computes logits
#      from the start-of-transcript token on (int8 activations quantized over fewer rows).
# 12 = done windows leave the batch and cross-attention values are bf16 (near-ties move); the batched
#      fallback keeps the likeliest of 5 samples drawn from its own generator (beam.seeded_greedy_decoder);
#      the guard's foreign-script, speaking-rate and heard-twice checks (guard.py).
ENGINE_VERSION = 12


def cache_key(*, audio_sha256: str, model_sha256: str, options: TranscribeOptions, device: str, decoder: str) -> str:
    opts = dataclasses.asdict(options)
    opts.pop("model")  # identified by its checksum instead
    opts.pop("glossary")  # applied to the cached transcript, after decoding
    if options.term_bias:  # but the decoder leans toward its terms (bias.py)
        opts["bias_terms"] = list(bias.glossary_terms(options.glossary))
    else:
        opts.pop("term_bias")  # off: the same key as before the setting existed
    opts["device"] = device
    opts["engine_version"] = ENGINE_VERSION
    opts["decoder"] = decoder  # another ffmpeg build decodes other samples
    return stable_key({"audio": audio_sha256, "model": model_sha256, "options": opts})


# Below this length ``auto`` decodes with both engines and keeps, per window, the text the model
# finds likelier (select.py): whisper's own loop conditions each window on the previous text,
# which keeps a short last window accurate (tiny.en on the 1-min sample: WER 9.9 % vs 18.8 %),
# but it can carry an invented sentence on (issue 26); the batched engine's windows cannot.
# Above it, decoding twice costs too much: batched alone.
BATCHED_MIN_DURATION = 300.0  # s


def choose_engine(engine: str, duration: float, *, word_timestamps: bool = False) -> str:
    """Resolve ``auto``: batched for recordings of at least ``BATCHED_MIN_DURATION`` s, else sequential
    (which ``transcribe_file`` runs together with batched, see ``BATCHED_MIN_DURATION``)."""
    if word_timestamps:
        return "sequential"  # the batched engine does not align words
    if engine == "auto":
        return "batched" if duration >= BATCHED_MIN_DURATION else "sequential"
    return engine


# Real-time factors (wall s per s of audio), used only for the --plan estimate, on top of
# COMMAND_OVERHEAD_S: the whole `ramble2post transcribe` command on the 2-core box (docs/PERFORMANCE.md,
# 2026-12-05: base batched 17.6-21.0 s for six 8-min clips, 25.5 s for the 13-min sample, 104-106 s for
# 67 min: 7 s + 0.025 x duration); tiny.en and the sequential engine from the engine's own figures
# (2026-11-29: batched 0.014 tiny.en, sequential 0.068 / 0.10-0.13) rounded up ~1.3x.
# GPU figures are conservative guesses.
RTF_ESTIMATE = {
    ("tiny.en", "cpu"): {"batched": 0.02, "sequential": 0.09},
    ("base", "cpu"): {"batched": 0.025, "sequential": 0.17},
}
COMMAND_OVERHEAD_S = 7.0  # s: imports, model load, audio decoding, VAD, language detection, the last batch
RTF_FALLBACK = {"cpu": 0.5, "cuda": 0.02}  # unknown models
# Bigger models on CPU, not measured here (no download on the benchmark box): base's batched factor
# scaled by parameters (openai/whisper's README, millions), an extrapolation; docs/PERFORMANCE.md.
PARAMETERS_M = {"small": 244, "medium": 769, "large-v1": 1550, "large-v2": 1550, "large-v3": 1550, "large": 1550}
PARAMETERS_M |= {"turbo": 809, "large-v3-turbo": 809, "small.en": 244, "medium.en": 769, "base.en": 74}
# auto on a short recording: scoring the differing windows after three previous texts, the guard on more
# text (validation clips, idle 2 cores: RTF 0.33 in all against 0.205 for the two engines)
SCORE_RTF = 0.11
# an initial prompt (the jargon prompt, on by default) makes decoding slower: six 8-min clips, the whole
# command 22.9 s against 19.8 s without it (docs/PERFORMANCE.md, stop 22); the real-time factor is scaled by it
PROMPT_FACTOR = 1.2
PROGRESS_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"  # batched engine
BYTES_PER_AUDIO_SECOND = 16_000 * 2  # int16 samples in a temporary file, bytes/s (audio.Pcm; none held in memory)


@dataclasses.dataclass(frozen=True)
class TranscriptionPlan:
    """What ``--plan`` tells before any decoding: the audio's length and the expected cost."""

    audio_path: str
    duration_s: float  # s of audio, from the header
    model: str
    device: str
    engine: str  # "batched" | "sequential" | "both" (auto under BATCHED_MIN_DURATION)
    estimated_wall_s: float  # s, COMMAND_OVERHEAD_S + duration x the assumed real-time factor
    estimated_audio_disk_bytes: int  # bytes of the decoded audio's temporary file (none of it held in memory)
    real_time_factor_assumed: float  # wall s per audio s, the built-in figure (before speed_factor)
    speed_factor: float = 1.0  # the whole estimate's scale: this machine against the built-in figures' box (speed.py)
    speed_runs: int = 0  # how many of its runs that factor is the median of; 0: the built-in figures alone


def assumed_rtf(*, name: str, device: str, options: TranscribeOptions, duration: float) -> tuple[str, float]:
    """(engine, real-time factor) the built-in figures give for this model, device, options and length."""
    engine = choose_engine(options.engine, duration, word_timestamps=options.word_timestamps)
    rtfs = RTF_ESTIMATE.get((name, device), {})
    rtf = rtfs.get(engine) or RTF_FALLBACK.get(device, 0.5)
    if not rtfs and device == "cpu" and name in PARAMETERS_M and engine == "batched":
        rtf = round(RTF_ESTIMATE[("base", "cpu")]["batched"] * PARAMETERS_M[name] / 74, 3)
    if options.engine == "auto" and engine == "sequential" and not options.word_timestamps:
        engine = "both"  # short: both engines, then each differing window scored (select.py)
        rtf = round(rtf + (rtfs.get("batched") or 0.0) + SCORE_RTF, 3)
    if options.prompt:
        rtf = round(rtf * PROMPT_FACTOR, 3)
    return engine, rtf


def plan_transcription(
    *, audio_path: str | Path, options: TranscribeOptions = TranscribeOptions()
) -> TranscriptionPlan:
    """Estimate time and memory from the file header alone (nothing is decoded).

    audio_path: the audio file; only its header is read.
    options: model, device and engine the estimate is for.
    """
    from ramble2post.transcribe.audio import probe_duration
    from ramble2post.transcribe.speed import machine_factor

    duration = probe_duration(audio_path)
    device = resolve_device(options.device)
    name = options.model or DEFAULT_WHISPER
    engine, rtf = assumed_rtf(name=name, device=device, options=options, duration=duration)
    factor, runs = machine_factor(device)  # this machine's speed against the built-in figures' box
    return TranscriptionPlan(
        audio_path=str(audio_path),
        duration_s=round(duration, 2),
        model=name,
        device=device,
        engine=engine,
        estimated_wall_s=round(factor * (COMMAND_OVERHEAD_S + duration * rtf), 1),
        estimated_audio_disk_bytes=int(duration * BYTES_PER_AUDIO_SECOND),
        real_time_factor_assumed=rtf,
        speed_factor=factor,
        speed_runs=runs,
    )


@dataclasses.dataclass(frozen=True)
class EngineRun:
    """One engine's output, before the guard."""

    found: list[dict[str, Any]]  # segments (dicts with start, end, text, avg_logprob, no_speech_prob)
    language: str | None  # detected or given
    decode: dict[str, Any]  # the options it ran with, for the transcript
    regions: Sequence[tuple[float, float]] | None = None  # speech the batched engine's VAD found
    windows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # text-only windows, for the guard
    chunks: tuple[Any, ...] = ()  # the batched engine's windows (vad.Chunk)


def _run_engine(
    engine: str, *, model: Whisper, samples: Signal, decode: dict[str, Any], options: TranscribeOptions, device: str
) -> EngineRun:
    import whisper

    from ramble2post.transcribe.torch_state import seeded_sampling

    duration = len(samples) / 16_000
    if engine == "batched":
        # the same kind of bar as whisper's sequential loop shows, in seconds of audio
        with (
            tqdm.tqdm(
                total=round(duration, 1), unit="s", desc="audio decoded", file=sys.stderr, bar_format=PROGRESS_FORMAT
            ) as bar,
            seeded_sampling(),  # the fallback's samples do not depend on what ran before in the process
        ):
            run = batched.transcribe_batched(
                model=model,
                samples=samples,
                device=device,
                language=decode["language"],
                prompt=options.prompt,
                temperature=options.temperature,
                beam_size=options.beam_size,
                progress=bar.update,
            )
            bar.update(bar.total - bar.n)  # silence the VAD skipped counts as done
        spread = run.segment_times is batched.SegmentTimes.SPREAD
        return EngineRun(
            found=[dataclasses.asdict(s) for s in run.segments],
            language=run.language,
            decode={
                **decode,
                "engine": "batched",
                "condition_on_previous_text": False,
                "segment_times": run.segment_times.value,
            },
            regions=run.regions,
            windows=[dataclasses.asdict(c) for c in run.chunks] if spread else [],
            chunks=run.chunks,
        )
    # whisper prints "Detected language" to stdout; keep stdout clean for the transcript
    # seeded: whether the fallback's sampled text keeps an echo over noise must not depend on the process's
    # past (loading the model draws from torch's generator: a test after another that loaded it got other text)
    with contextlib.redirect_stdout(sys.stderr), seeded_sampling():
        result = whisper.transcribe(model, np.asarray(samples), verbose=False, **decode)  # whole: short files
    return EngineRun(
        found=list(result["segments"]), language=result.get("language"), decode={**decode, "engine": "sequential"}
    )


def _guard_both(
    seq: EngineRun,
    bat: EngineRun,
    *,
    model: Whisper,
    samples: Signal,
    options: TranscribeOptions,
    device: str,
    spoken: frozenset[str],
) -> tuple[EngineRun, EngineRun, list[dict[str, Any]]]:
    """Both engines' outputs after the guard (see ``transcribe_file``), and its records; ``spoken``: the
    phrases both engines heard (``select.heard_by_both``), not phrase loops."""
    from ramble2post.transcribe import guard

    decoder = guard.whisper_clip_decoder(
        model, language=seq.language or bat.language, prompt=options.prompt, fp16=device == "cuda"
    )
    regions = bat.regions or ()
    fixed_seq, records = guard.repair(
        samples=samples, segments=seq.found, regions=regions, decode=decoder, spoken=spoken
    )
    fixed_bat, more = guard.repair(
        samples=samples, segments=bat.found, regions=regions, decode=decoder, windows=bat.windows, spoken=spoken
    )
    return (
        dataclasses.replace(seq, found=fixed_seq),
        dataclasses.replace(bat, found=fixed_bat),
        records + more,
    )


def _tally(choices: Sequence[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in choices:
        out[c.chosen] = out.get(c.chosen, 0) + 1
    return out


def _audio_and_model(
    audio_path: Path, *, options: TranscribeOptions, device: str
) -> tuple[Audio, Whisper, ModelInfo, float]:
    """The decoded recording and the loaded model, the first decoded (ffmpeg, in its own process) while
    the second loads: ~0.5 s and ~0.8 s of an 8-min command, overlapped. Also the decode's seconds.
    A recording that cannot be decoded is the error reported, whatever the model's loading did."""

    def decode() -> tuple[Audio, float]:
        t = time.perf_counter()
        return load_audio(audio_path), time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ramble2post-audio") as pool:
        pending = pool.submit(decode)
        try:
            model, info = load_whisper_model(name_or_path=options.model, device=device)
        except Exception:  # not Ctrl-C: that stops the run as it is
            pending.result()  # a bad recording is the error to report first
            raise
        audio, decode_s = pending.result()
    return audio, model, info, decode_s


def transcribe_file(
    *, audio_path: str | Path, options: TranscribeOptions = TranscribeOptions(), use_cache: bool = True
) -> Transcript:
    """Transcribe one audio file.

    audio_path: any file ffmpeg can decode.
    options: model, device and decoding settings.
    use_cache: return a cached transcript for identical inputs, and store new ones.
    """
    t0 = time.perf_counter()
    audio_path = Path(audio_path)
    if not audio_path.exists():
        raise AudioError(f"audio file not found: {audio_path}")
    audio_sha = sha256_file(audio_path) if audio_path.is_file() and audio_path.stat().st_size else ""
    device = resolve_device(options.device)
    resolved = resolve_whisper_model(options.model)
    ffmpeg_build = describe_decoder()
    key = cache_key(
        audio_sha256=audio_sha, model_sha256=resolved.info.sha256, options=options, device=device, decoder=ffmpeg_build
    )
    cache = StageCache(CACHE_STAGE)
    if use_cache and audio_sha and (hit := cache.get(key)):
        return apply_glossary(Transcript.from_dict(hit), options.glossary)

    with bias.biasing(bias.glossary_terms(options.glossary), options.term_bias):
        audio, model, info, decode_s = _audio_and_model(audio_path, options=options, device=device)
        t_loaded = time.perf_counter()
        decode = _decode_options(options, device, english_only=not model.is_multilingual)
        engine = choose_engine(options.engine, audio.duration, word_timestamps=options.word_timestamps)
        # auto on a short recording: both engines, the likelier text per window (ramble2post/transcribe/select.py)
        both = options.engine == "auto" and engine == "sequential" and not options.word_timestamps
        early: list[dict[str, Any]] = []
        spoken: frozenset[str] = frozenset()  # phrases both engines heard repeated: said, not a loop (select.py)
        if both:
            seq = _run_engine(
                "sequential", model=model, samples=audio.pcm, decode=decode, options=options, device=device
            )
            # in the language the sequential engine heard on its first 30 s (the batched engine alone once took
            # Finnish on a noisy English clip, c25 of the short-clip set, WER 83 %: see batched.LANGUAGE_WINDOWS)
            same = {**decode, "language": decode["language"] or seq.language}
            run = _run_engine("batched", model=model, samples=audio.pcm, decode=same, options=options, device=device)
            from ramble2post.transcribe import select

            # before the guard: what each engine heard on its own
            spoken = select.heard_by_both(seq.found, run.found, run.chunks)
            if options.guard:  # each engine's own loops and echoes go first: an echo over noise loses a window's score
                seq, run, early = _guard_both(
                    seq, run, model=model, samples=audio.pcm, options=options, device=device, spoken=spoken
                )
            found, choices = select.pick(
                model=model,
                samples=audio.pcm,
                chunks=run.chunks,
                sequential=seq.found,
                batched=run.found,
                language=seq.language or run.language,
            )
            # the sequential engine's options (context, fallback), its language and the batched VAD's speech
            run = dataclasses.replace(seq, found=found, regions=run.regions, windows=[])
            decode = {**run.decode, "engine": "both", "windows_chosen": _tally(choices)}
        else:
            run = _run_engine(engine, model=model, samples=audio.pcm, decode=decode, options=options, device=device)
            decode = run.decode
        language, found, regions, windows = run.language, run.found, run.regions, run.windows
        t_engine = time.perf_counter()
        repairs: list[dict[str, Any]] = early  # the guard's records: first on each engine (auto, short), then here
        if options.guard:
            from ramble2post.transcribe import guard
            from ramble2post.transcribe.vad import detect_speech

            decoder = guard.whisper_clip_decoder(
                model, language=language or decode["language"], prompt=options.prompt, fp16=device == "cuda"
            )
            found, more = guard.repair(
                samples=audio.pcm,
                segments=found,
                # the batched engine's own regions, else the same choice made here: Silero on noisy audio
                regions=regions or detect_speech(samples=audio.pcm),
                decode=decoder,
                # text-only windows: their sentences cover them whatever was dropped, so judge their word rate
                windows=windows,
                spoken=spoken,
            )
            repairs += more
    t_done = time.perf_counter()
    _note_speed(options=options, name=info.name, device=device, duration=audio.duration, work_s=t_done - t0)

    segments = tuple(
        Segment(
            id=i,
            start=round(float(s["start"]), 3),
            end=round(float(s["end"]), 3),
            text=s["text"].strip(),
            avg_logprob=round(float(s["avg_logprob"]), 4),
            no_speech_prob=round(float(s["no_speech_prob"]), 4),
        )
        for i, s in enumerate(found)
    )
    if not any(s.text for s in segments):
        raise AudioError(
            f"no speech recognised in {audio_path.name} ({audio.duration:.{0 if audio.duration >= 10 else 1}f} s of audio)",
            hint="check the recording: noise or music gives no words",
        )
    transcribe_s = t_done - t_loaded
    transcript = Transcript(
        audio_path=str(audio_path),
        audio_sha256=audio_sha,
        duration=round(audio.duration, 3),
        language=language or decode["language"] or "en",
        text=" ".join(s.text for s in segments),
        segments=segments,
        model=info,
        device=device,
        # as JSON gives them back (tuples as lists), so that a transcript equals itself read from the cache
        options=json.loads(json.dumps({k: v for k, v in decode.items()} | {"guard": options.guard})),
        repairs=tuple(Repair(**r) for r in repairs),
        decoder=ffmpeg_build,
        timing={
            "audio_decode_s": round(decode_s, 3),  # while the model loads (both before t_loaded)
            "model_load_s": round(t_loaded - t0, 3),
            "transcribe_s": round(transcribe_s, 3),
            "guard_s": round(t_done - t_engine, 3),
            "total_s": round(t_done - t0, 3),
            "real_time_factor": round(transcribe_s / audio.duration, 4),
        },
    )
    if use_cache:
        cache.put(key, transcript.to_dict())
    return apply_glossary(transcript, options.glossary)


def _note_speed(*, options: TranscribeOptions, name: str, device: str, duration: float, work_s: float) -> None:
    """Note this decode's speed against the built-in figures, for the next ``--plan`` (speed.py)."""
    from ramble2post.transcribe.speed import note_run

    engine, rtf = assumed_rtf(name=name, device=device, options=options, duration=duration)
    assumed = COMMAND_OVERHEAD_S + duration * rtf
    note_run(device=device, model=name, engine=engine, audio_s=duration, work_s=work_s, assumed_s=assumed)


def apply_glossary(transcript: Transcript, terms: tuple[tuple[str, tuple[str, ...]], ...] | None) -> Transcript:
    """``transcript`` with glossary terms spelled right; each change is listed in ``corrections``.

    terms: None = leave the transcript alone; else the user's (term, variants) pairs, added to the built-in ones.
    """
    if terms is None:
        return transcript
    from ramble2post.transcribe.glossary import Glossary, correct_segments

    glossary = Glossary.build(terms=dict(terms))
    fixed, records = correct_segments([dataclasses.asdict(s) for s in transcript.segments], glossary)
    if not records:
        return transcript
    segments = tuple(Segment(**s) for s in fixed)
    return dataclasses.replace(
        transcript,
        segments=segments,
        text=" ".join(s.text for s in segments),
        corrections=tuple(Correction(**r) for r in records),
        options={**transcript.options, "glossary_terms": len(glossary.terms)},
    )
