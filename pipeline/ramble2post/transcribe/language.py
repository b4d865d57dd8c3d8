"""The decoding settings of a recording, and its language detected by the batch that holds its first window.

Split from ``batched.py``: what every batch is decoded with (``decode_settings``), and the gate the
batches wait at between encoding and decoding while the language is unknown (``LanguageGate``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ramble2post.transcribe.audio import Signal
from ramble2post.transcribe.decoding import DecodeSettings, StepTimes, detect_language, likeliest_language
from ramble2post.transcribe.precision import cpu_has_bf16
from ramble2post.transcribe.vad import Chunk

if TYPE_CHECKING:  # whisper (and torch under it) is imported when a model is loaded, not here
    from whisper.model import Whisper


class LanguageGate:
    """The decoding settings of a recording whose language is detected from its windows.

    The batch that holds the first window detects it from that window's encoder output (whisper's
    ``detect_language``: one decoder step; ``LANGUAGE_WINDOWS`` more windows only when it is unsure) and
    opens the gate; every batch waits at it between encoding and decoding. Before, the first window was
    encoded once more for the detection, on the main thread, before any batch started (~0.5 s of an
    8-min command). Batches are handed out in order, so the first one is always being worked on.
    """

    def __init__(self, settings: DecodeSettings, *, model: Whisper, samples: Signal, chunks: Sequence[Chunk]):
        self._settings, self._model, self._samples, self._chunks = settings, model, samples, chunks
        self._future: Future[DecodeSettings] = Future()
        self.times = StepTimes()

    @property
    def encoding(self) -> DecodeSettings:
        """What the encoder needs (device, mel bins, precision): everything but the language."""
        return self._settings

    def settings(self, net: Whisper, windows: Sequence[int], features: Any) -> DecodeSettings:
        """The settings to decode ``windows`` with, once the language is known; ``features``: their encoder output."""
        if 0 in windows and not self._future.done():
            try:
                probs, self.times = detect_language(
                    net,
                    self._model,
                    samples=self._samples,
                    chunks=self._chunks,
                    settings=self._settings,
                    first=features[list(windows).index(0)][None],
                )
                self._future.set_result(dataclasses.replace(self._settings, language=likeliest_language(probs)))
            except BaseException as e:  # the batches waiting at the gate fail with it, not hang
                self._future.set_exception(e)
                raise
        return self._future.result()


def decode_settings(
    *,
    model: Whisper,
    samples: Signal,
    chunks: Sequence[Chunk],
    device: str,
    language: str | None,
    prompt: str | None,
    temperature: float | Sequence[float],
    beams: int,
    encoder_bf16: bool,
    timestamps: bool,
    best_of: int = 1,
) -> DecodeSettings | LanguageGate:
    """What every batch is decoded with: the prompt's tokens, the fallback temperatures and beams, the
    language; a ``LanguageGate`` when the language is to be detected (by the first batch).

    chunks: the recording's windows; encoder_bf16: run the encoder under bf16 autocast where the CPU has
    native bf16; beams: per window at temperature 0; best_of: samples per window at a fallback temperature;
    timestamps: decode timestamp tokens."""
    from whisper.tokenizer import get_tokenizer

    temps = tuple(float(t) for t in temperature) if isinstance(temperature, (list, tuple)) else (float(temperature),)  # type: ignore[arg-type]
    settings = DecodeSettings(
        language="en" if not model.is_multilingual else language,
        device=device,
        n_mels=model.dims.n_mels,
        fp16=device == "cuda",
        bf16=device == "cpu" and encoder_bf16 and cpu_has_bf16(),
        timestamps=timestamps,
        temperatures=temps,
        beams=beams,
        best_of=best_of,
    )
    # the prompt's tokens do not depend on the language (one vocabulary): made before it is known
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=settings.language)
    if prompt:
        settings = dataclasses.replace(settings, prompt=tuple(tokenizer.encode(" " + prompt.strip())))
    if settings.language is None and chunks:
        return LanguageGate(settings, model=model, samples=samples, chunks=chunks)
    return settings
