"""The batched engine's encode and decode steps: log-mel and encoder for a batch of windows, then
whisper's decoding (two beams per window, temperature fallback) on the encoder output.

Each step takes the windows' data and a ``DecodeSettings`` record and returns what it made with
the seconds it spent (``StepTimes``); nothing is shared between batches, so batches can run on
several threads (each with its own decoder, see ``precision.replicate_decoder``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ramble2post.transcribe.audio import SAMPLE_RATE, Signal
from ramble2post.transcribe.beam import batch_beam_decoder, seeded_greedy_decoder
from ramble2post.transcribe.kvcache import static_inference
from ramble2post.transcribe.torch_state import SAMPLING_SEED
from ramble2post.transcribe.vad import N_SAMPLES, Chunk

# whisper's fallback rules (same thresholds as whisper.transcribe)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """What every batch is encoded and decoded with, fixed once per recording."""

    language: str | None  # decoding language (None only while it is being detected)
    device: str  # "cpu" | "cuda"
    n_mels: int  # mel bins the model's encoder expects
    fp16: bool  # CUDA: fp16 mel and weights
    bf16: bool  # CPU: encoder under bf16 autocast
    timestamps: bool  # decode timestamp tokens (else text only)
    temperatures: tuple[float, ...]  # fallback schedule
    beams: int  # beams per window at temperature 0; 1 = greedy
    # samples per window at a fallback temperature, the likeliest kept (whisper.transcribe's and faster-whisper's
    # default: 5); 1 = one sample
    best_of: int = 1
    prompt: tuple[int, ...] = ()  # the user's prompt tokens, given to every window


@dataclasses.dataclass(frozen=True)
class StepTimes:
    """Seconds spent in each step; added up over batches (with several workers: more than the wall time)."""

    mel_s: float = 0.0
    encode_s: float = 0.0
    decode_s: float = 0.0
    fallback_s: float = 0.0

    def __add__(self, other: StepTimes) -> StepTimes:
        return StepTimes(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


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


def encode(net, clips: Sequence[np.ndarray], *, settings: DecodeSettings) -> tuple[Any, StepTimes]:
    """Encoder output (B, 1500, d) of a batch of <= 30-s clips, and the seconds spent.

    net: the prepared model (``precision.prepare_model``) or one of its replicas.
    clips: 16 kHz mono audio of each window.
    settings: device, mel bins and precision.
    """
    import torch

    ta = time.perf_counter()
    mel = batch_log_mel(clips, n_mels=settings.n_mels, device=settings.device)
    if settings.fp16:
        mel = mel.half()
    tb = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
        features = net.encoder(mel)
    features = features.float() if settings.bf16 else features
    return features, StepTimes(mel_s=tb - ta, encode_s=time.perf_counter() - tb)


def chunk_audio(samples: Signal, chunk: Chunk) -> np.ndarray:
    """The audio a window holds: its stretches of ``samples`` laid end to end."""
    cuts = [samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in chunk.spans()]
    return cuts[0] if len(cuts) == 1 else np.concatenate(cuts)


# Windows the language is detected on when the first is unsure, spread over the recording, their
# probabilities averaged. On one window base took Finnish for English read by espeak-ng's RP voice over
# white noise (the first window of an 8-min clip: fi 0.48, en 0.25; its next seven: en 0.42-0.79) and
# decoded the whole file as Finnish (WER 72-81 %, 182-327 s instead of 20 s); faster-whisper's batched
# pipeline, also on one window: WER 141 %.
LANGUAGE_WINDOWS = 4
# The first window decides alone when its language is more likely than all the others together (the
# other five 8-min clips: en 0.87-0.99): three more encoder passes cost ~1 s of a 19-s command.
LANGUAGE_SURE = 0.5


def detect_language(
    net, model, *, samples: Signal, chunks: Sequence[Chunk], settings: DecodeSettings, first: Any = None
) -> tuple[list[dict[str, float]], StepTimes]:
    """Language probabilities (whisper's ``detect_language``, one dict per window) of the first window, and
    of ``LANGUAGE_WINDOWS`` spread over the recording when the first is unsure (``LANGUAGE_SURE``); and the
    seconds spent encoding them. first: the first window's encoder output (1, 1500, d), when a batch has it."""
    from whisper.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(True, num_languages=model.num_languages)
    if first is None:
        features, times = encode(net, [chunk_audio(samples, chunks[0])], settings=settings)
    else:
        features, times = first, StepTimes()
    _, probs = net.detect_language(features, tokenizer)
    rest = detection_windows(len(chunks))[1:]
    if max(probs[0].values()) >= LANGUAGE_SURE or not rest:
        return [probs[0]], times
    features, more_times = encode(net, [chunk_audio(samples, chunks[i]) for i in rest], settings=settings)
    _, more = net.detect_language(features, tokenizer)
    return [probs[0], *more], times + more_times


def detection_windows(n_windows: int) -> list[int]:
    """Indices of up to ``LANGUAGE_WINDOWS`` windows spread evenly from the first to the last."""
    k = min(LANGUAGE_WINDOWS, n_windows)
    return sorted({round(j * (n_windows - 1) / max(1, k - 1)) for j in range(k)})


def likeliest_language(probs: Sequence[dict[str, float]]) -> str:
    """The language with the highest mean probability over the windows' ``detect_language`` results."""
    total: dict[str, float] = {}
    for p in probs:
        for lang, v in p.items():
            total[lang] = total.get(lang, 0.0) + v
    return max(total, key=total.__getitem__)


def is_silent(r) -> bool:
    """whisper's silence rule: a window it would drop (likely no speech, and decoded without confidence)."""
    return bool(r.no_speech_prob > NO_SPEECH_THRESHOLD and r.avg_logprob < LOGPROB_THRESHOLD)


# A window's text ends in a loop when its last LOOP_REPEATS x p tokens repeat a pattern of p <= LOOP_PERIOD_MAX
# tokens (",000" x 12 after a jargon prompt). The row is ended there (``EndLoops``) rather than run on to
# whisper's 224 tokens, which kept the whole batch decoding (one 8-min clip in-process: 25.8 s; ended here
# 18.9 s; 16.1 s without a prompt), and
# the window is decoded again at the next temperature, as whisper's compression-ratio rule would have done.
LOOP_PERIOD_MAX = 4  # tokens
LOOP_REPEATS = 8  # times in a row; speech repeats a 1-4-token pattern 8 times only in a decoder loop
LOOP_PENALTY = 1e4  # logit units taken off every token but end-of-text in a looping row


def loop_rows(seq) -> Any:
    """Boolean mask of the rows of ``seq`` (rows x tokens, a torch tensor) whose tail is a loop (see above)."""
    import torch

    mask = torch.zeros(seq.shape[0], dtype=torch.bool, device=seq.device)
    for p in range(1, LOOP_PERIOD_MAX + 1):
        n = p * LOOP_REPEATS
        if seq.shape[1] >= n:
            tail = seq[:, -n:]
            mask |= (tail[:, p:] == tail[:, :-p]).all(dim=1)
    return mask


@functools.cache
def end_loops():
    """whisper ``LogitFilter`` that ends a row whose text loops: only end-of-text is left to choose (class made
    on first use: whisper is imported lazily)."""
    from whisper.decoding import LogitFilter

    class EndLoops(LogitFilter):
        def __init__(self, sample_begin: int, eot: int):
            self.sample_begin, self.eot = sample_begin, eot

        def apply(self, logits, tokens):
            rows = loop_rows(tokens[:, self.sample_begin :])
            if rows.any():  # far below end-of-text but finite: beam search still ranks every candidate
                keep = logits[rows, self.eot].clone()
                logits[rows] -= LOOP_PENALTY
                logits[rows, self.eot] = keep

    return EndLoops


def needs_fallback(r) -> bool:
    """whisper's rule for decoding a window again at the next temperature (silent windows are kept), and a
    text that ends in a loop (``loop_rows``)."""
    import torch

    if is_silent(r):
        return False  # silence: keep, it will be dropped
    if r.compression_ratio > COMPRESSION_RATIO_THRESHOLD or r.avg_logprob < LOGPROB_THRESHOLD:
        return True
    return bool(r.tokens) and bool(loop_rows(torch.tensor([r.tokens]))[0])


def decode(net, features, *, settings: DecodeSettings) -> tuple[list[Any], StepTimes]:
    """whisper's ``DecodingResult`` per window of a batch, and the seconds spent.

    net: the prepared model or a replica (its decoder's KV cache is written: one thread per replica).
    features: the batch's encoder output; the fallback re-decodes from it without encoding again.
    settings: language, temperatures, beams and prompt.
    Windows failing whisper's thresholds at one temperature are decoded again at the next.
    """
    import whisper

    results: list[Any] = [None] * features.shape[0]
    todo = list(range(len(results)))
    # cross-attention values in bf16 where the encoder runs in bf16 (precision.FastCrossAttention),
    # for this decode only: the prepared model is shared by every decode of the process
    cross = [b.cross_attn for b in net.decoder.blocks if hasattr(getattr(b, "cross_attn", None), "values_bf16")]
    spent = {"decode_s": 0.0, "fallback_s": 0.0}
    try:
        for m in cross:
            m.values_bf16 = settings.bf16
        for k, t in enumerate(settings.temperatures):
            kwargs: dict[str, Any] = {
                "language": settings.language,
                "fp16": settings.fp16,
                "without_timestamps": not settings.timestamps,
                "temperature": t,
            }
            if t == 0 and settings.beams > 1:
                kwargs["beam_size"] = settings.beams
            if t > 0 and settings.best_of > 1:
                kwargs["best_of"] = settings.best_of
            if settings.prompt:
                kwargs["prompt"] = list(settings.prompt)
            ts = time.perf_counter()
            rows = features if len(todo) == len(results) else features[todo]  # fallback: only the failed rows
            out = batch_task()(net, whisper.DecodingOptions(**kwargs)).run(rows)
            spent["decode_s" if k == 0 else "fallback_s"] += time.perf_counter() - ts
            for i, r in zip(todo, out):
                # without the encoder output whisper keeps in each result: a view of the batch's (beams x windows
                # x 1500 x d) tensor, it held 6 MB per window (base) until the end, 0.9 GB on a 67-min file
                results[i] = dataclasses.replace(r, audio_features=None)
            todo = [i for i, r in zip(todo, out) if needs_fallback(r)]
            if not todo:
                break
    finally:
        for m in cross:
            m.values_bf16 = False
    return results, StepTimes(**spent)


@functools.cache
def batch_task():
    """Whisper's ``DecodingTask`` for a batch of windows (made once: whisper is imported lazily).

    Beam search over several windows: whisper (20250625) repeats the tokens per beam but not
    the encoder output, which only works for one window. Here the encoder output is repeated
    too, and the fast decoder (``precision.speed_up_decoder``) is told the group size, so that
    it makes each window's cross-attention keys once for all its beams; the beams are chosen by
    ``beam.BatchBeamDecoder`` (whisper's rules, as tensor ops).
    """
    from ramble2post.transcribe import bias

    bias.install()  # before the subclass is made: the glossary's terms are favoured inside ``bias.biasing``
    from whisper.decoding import DecodingTask

    class BatchTask(DecodingTask):
        drop_done = True  # a window's rows leave the batch once its beam search is over (``_beam_loop``)

        def __init__(self, model, options):
            super().__init__(model, options)
            self.inference = static_inference()(model, len(self.initial_tokens))  # kvcache.py
            self.logit_filters.append(end_loops()(self.sample_begin, self.tokenizer.eot))
            if options.beam_size is not None:  # whisper's selection rules, as tensor ops (beam.py)
                self.decoder = batch_beam_decoder()(
                    options.beam_size, self.tokenizer.eot, self.inference, options.patience
                )
            elif options.temperature > 0:  # the fallback's samples from the task's own generator (beam.py)
                self.decoder = seeded_greedy_decoder()(options.temperature, self.tokenizer.eot, seed=SAMPLING_SEED)

        def _get_audio_features(self, mel):
            features = super()._get_audio_features(mel)
            return features.repeat_interleave(self.n_group, dim=0) if self.n_group > 1 else features

        def _detect_language(self, audio_features, tokens):
            languages, probs = super()._detect_language(audio_features, tokens)
            return languages[: tokens.shape[0]], probs  # one per window, not per beam

        def _main_loop(self, audio_features, tokens):
            # after a prompt, the first pass's logits only from the start-of-transcript token on (the fast
            # decoder: precision.FastTextDecoder.logits_from); whisper reads them there and at the last one
            decoder, start = self.model.decoder, int(self.sot_index)  # type: ignore[has-type]
            fast = hasattr(decoder, "logits_from")
            beams = fast and self.drop_done and hasattr(self.decoder, "finished_sequences")
            loop = self._beam_loop if beams else super()._main_loop
            if start == 0 or not fast:
                return loop(audio_features, tokens)
            decoder.logits_from, self.sot_index = start, 0
            try:
                return loop(audio_features, tokens)
            finally:
                decoder.logits_from, self.sot_index = 0, start

        def _beam_loop(self, audio_features, tokens):
            """whisper's decoding loop for beam search, with a window's rows dropped once it is done.

            A window is done when it has ``max_candidates`` finished sequences: whisper's result for
            it is then chosen among those, whatever its beams decode next; whisper's loop goes on
            decoding them until every window of the batch is done (on the 8-min clips, 23 % of the
            rows' steps). Here its rows leave the batch (tokens, scores, KV caches); the tensors
            whisper's ``run`` expects are put back together at the end. Same results (tests/test_beam.py).
            """
            import torch

            g, n_rows = self.n_group, tokens.shape[0]
            sum_logprobs = torch.zeros(n_rows, device=audio_features.device)
            no_speech_probs = [np.nan] * n_rows
            live = list(range(n_rows // g))  # the window of each group of rows still decoding
            parked: dict[int, tuple[Any, Any, dict]] = {}  # window -> its rows' tokens, scores, finished
            try:
                for i in range(self.sample_len):
                    logits = self.inference.logits(tokens, audio_features)
                    if i == 0 and self.tokenizer.no_speech is not None:
                        probs_at_sot = logits[:, self.sot_index].float().softmax(dim=-1)
                        no_speech_probs = probs_at_sot[:, self.tokenizer.no_speech].tolist()
                    logits = logits[:, -1]
                    for logit_filter in self.logit_filters:
                        logit_filter.apply(logits, tokens)
                    tokens, completed = self.decoder.update(tokens, logits, sum_logprobs)
                    if completed or tokens.shape[-1] > self.n_ctx:
                        break
                    finished = self.decoder.finished_sequences
                    done = [len(f) >= self.decoder.max_candidates for f in finished]
                    if any(done):
                        for k in (k for k, d in enumerate(done) if d):
                            rows_k = slice(k * g, (k + 1) * g)
                            parked[live[k]] = (tokens[rows_k], sum_logprobs[rows_k].clone(), finished[k])
                        keep = [k for k, d in enumerate(done) if not d]
                        rows = torch.tensor([k * g + j for k in keep for j in range(g)])
                        tokens, sum_logprobs = tokens[rows], sum_logprobs[rows]
                        audio_features = audio_features[rows]
                        self.decoder.finished_sequences = [finished[k] for k in keep]
                        self.inference.keep(rows, keep)
                        live = [live[k] for k in keep]
            finally:
                self.inference.cleanup_caching()
            if not parked:
                return tokens, sum_logprobs, no_speech_probs
            # whisper's run reshapes (windows, beams, length) and picks from the finished sequences of a
            # done window; its rows' tokens are kept as they were, padded with end-of-text
            all_tokens = tokens.new_full((n_rows, tokens.shape[-1]), self.tokenizer.eot)
            all_scores = sum_logprobs.new_zeros(n_rows)
            all_finished: list[Any] = [None] * (n_rows // g)
            finished = self.decoder.finished_sequences
            for k, w in enumerate(live):
                parked[w] = (tokens[k * g : (k + 1) * g], sum_logprobs[k * g : (k + 1) * g], finished[k])
            for w, (t, lp, f) in parked.items():
                all_tokens[w * g : (w + 1) * g, : t.shape[-1]] = t
                all_scores[w * g : (w + 1) * g] = lp
                all_finished[w] = f
            self.decoder.finished_sequences = all_finished
            return all_tokens, all_scores, no_speech_probs

        def run(self, mel):
            cross = [b.cross_attn for b in self.model.decoder.blocks if getattr(b, "cross_attn", None)]
            for m in cross:
                m.group = self.n_group
            self.inference.group = self.n_group
            try:
                return super().run(mel)
            finally:
                for m in cross:
                    m.group = 1

    return BatchTask
