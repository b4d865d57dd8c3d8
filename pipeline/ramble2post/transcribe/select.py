"""Two decodings of one recording, one transcript: per window, the text the model finds likelier.

``auto`` on a short recording decodes it with both engines (sequential: greedy, conditioned on
the previous text, real timestamps; batched: two beams per VAD window, windows independent).
Each has failures the other has not: the sequential loop can carry an invented sentence from
window to window ("you can get a new one" x 5, issue 26), the batched engine's windows have no
context. Neither is the better one on every clip (issue 26's short-clip set: each wins on some
clips by several WER points).

The batched engine's windows are the unit. The sequential words are cut where the batched
windows end, by aligning the two word streams (``cut_like``; its segments do not keep to the
windows, and a segment's words set against the wrong audio cost it ~50 nats). For each window
where the texts differ:

1. a text that loops (``guard.is_loop``), repeats a phrase of ``guard.PHRASE_WORDS``+ words
   ``guard.PHRASE_REPEATS``+ times more often than the other text does, or has letters in a script the
   other does not use (a sampled fallback's "ول Districts에요", ``guard.foreign_runs``) is out;
2. else both texts are scored by the same fp32 model on the window's audio, teacher-forced: the sum
   of their tokens' log-probabilities, end of text included (a dropped passage pays for an early end
   of text, an invented one for its unlikely tokens). A sum depends on the previous text it is
   scored after, and each choice of it favours one engine: no previous text favours the beam-searched
   batched text (it was decoded that way), the sequential text so far favours the sequential text.
   So each window is scored under three previous texts (``CONTEXTS``: none, the sequential engine's
   text so far, the batched engine's text so far) and the batched text is taken when the sum of its
   three leads is above ``TIE_NATS``; within it the two texts tie and the sequential one stays: the
   last bits of a sum change with the thread count (the order of a GEMM's additions), and a choice
   must not. (One previous text, the text chosen so far, left auto more than 1 WER point behind the
   better engine on 8 of 35 short clips, the three together on 6: docs/PERFORMANCE.md.)

Before the guard runs on either output, ``heard_by_both`` lists the phrases of 4+ words both engines
heard 3+ times in the same window: decoded independently (the batched windows have no previous text
to carry a loop on), two decoders agreeing on a repetition heard it in the audio. The guard does not
treat those as phrase loops; a repetition only one engine has is still flagged and replaced.

Cost: one encoder pass and six teacher-forced decoder passes per differing window (~1 s a window
for base on 2 cores), on top of both engines. Measured: docs/PERFORMANCE.md, issue 26.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ramble2post.transcribe import guard
from ramble2post.transcribe.audio import Signal
from ramble2post.transcribe.vad import Chunk

if TYPE_CHECKING:  # whisper (and torch under it) is imported when a model is loaded, not here
    from whisper.model import Whisper

MAX_TOKENS = 440  # text tokens scored per window (whisper's context is 448 with the start tokens)
# nats: two texts' sums closer than this are a tie, which keeps the sequential text. Far above the float32
# rounding of a sum of a few hundred tokens' log-probabilities, far below what one word changes (~1+ nats).
TIE_NATS = 0.05
# the previous texts a differing window's two texts are scored after; their leads are added (see module doc)
CONTEXTS = ("none", "sequential", "batched")


@dataclasses.dataclass(frozen=True)
class Choice:
    """What was chosen for one window, and why."""

    start: float  # s, the window
    end: float  # s
    chosen: str  # "sequential" | "batched" | "same"
    reason: str  # "same" | "loop" | "score"
    # per previous text of CONTEXTS (only "none" when pick's context=False): sum log-probability of (sequential, batched)
    scores: tuple[tuple[float, float], ...] = ()


def assign(segments: Sequence[dict[str, Any]], chunks: Sequence[Chunk]) -> list[list[int]]:
    """Indexes of ``segments`` per chunk: the chunk holding the segment's midpoint, else the nearest one."""
    out: list[list[int]] = [[] for _ in chunks]
    if not chunks:
        return out
    for i, s in enumerate(segments):
        mid = (float(s["start"]) + float(s["end"])) / 2
        dist = [0.0 if c.start <= mid <= c.end else min(abs(mid - c.start), abs(mid - c.end)) for c in chunks]
        out[int(np.argmin(dist))].append(i)
    return out


def _text(segments: Sequence[dict[str, Any]], idx: Sequence[int]) -> str:
    return " ".join(segments[i]["text"].strip() for i in idx).strip()


def disqualified(text: str, other: str) -> bool:
    """Whether ``text`` loops, repeats a long phrase more often than ``other`` does, or has a run of letters
    in a script ``other`` does not use (``guard.foreign_runs``; see module doc)."""
    if guard.is_loop(text) or guard.foreign_runs(text, guard.expected_scripts([other])):
        return True
    mine = guard.repeated_phrases(guard.words_of(text))
    theirs = guard.repeated_phrases(guard.words_of(other), min_count=1)
    return any(count > theirs.get(phrase, 0) for phrase, count in mine.items())


def heard_by_both(
    sequential: Sequence[dict[str, Any]], batched: Sequence[dict[str, Any]], chunks: Sequence[Chunk]
) -> frozenset[str]:
    """Phrases of ``guard.PHRASE_WORDS`` words that both engines say ``guard.PHRASE_REPEATS``+ times in one
    window of ``chunks`` (the sequential words cut like the batched windows, ``cut_like``): said, not
    invented (see module doc). Lower-case words joined by one space, as ``guard.repeated_phrases`` gives them.
    """
    bat_idx = assign(batched, chunks)
    bat_words = [guard.words_of(_text(batched, idx)) for idx in bat_idx]
    seq_words = guard.words_of(" ".join(s["text"] for s in sequential))
    out: set[str] = set()
    for seq_piece, bat_piece in zip(cut_like(seq_words, bat_words), bat_words):
        out |= guard.repeated_phrases(seq_piece).keys() & guard.repeated_phrases(bat_piece).keys()
    return frozenset(out)


def text_logprobs(
    model: Whisper, audio: np.ndarray, texts: Sequence[str], *, language: str | None, prompt: str = ""
) -> list[float]:
    """Sum log-probability of each of ``texts`` (tokens and end of text) given ``audio`` (<= 30 s, 16 kHz),
    teacher-forced through ``model`` (openai-whisper) without timestamps, after ``prompt`` as previous text."""
    return text_logprobs_after(model, audio, texts, language=language, prompts=[prompt])[0]


def text_logprobs_after(
    model: Whisper, audio: np.ndarray, texts: Sequence[str], *, language: str | None, prompts: Sequence[str]
) -> list[list[float]]:
    """``text_logprobs`` of ``texts`` after each of ``prompts`` (one list per prompt; "" = no previous
    text), from one encoder pass."""
    import torch
    import whisper
    from whisper.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language=language or "en", task="transcribe"
    )
    param = next(model.parameters())
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio.astype(np.float32)), model.dims.n_mels)
    out = []
    with torch.inference_mode():
        features = model.embed_audio(mel[None].to(param.device, param.dtype))
        bodies = [tokenizer.encode(" " + text.strip())[:MAX_TOKENS] if text.strip() else [] for text in texts]
        sot = list(tokenizer.sot_sequence_including_notimestamps)
        # the previous text gets what the longest text leaves of the decoder's context (448 tokens with the start
        # and end tokens): a 30 s window that loops can run to 440 tokens, and 223 of prompt on top of it
        # overflowed whisper's positional embedding (a crash seen on an unseen ramble at stop 31)
        # (the decoder reads start + text: the end token is only a target; where the old code fit, nothing changes)
        room = model.dims.n_text_ctx - len(sot) - 1 - max((len(b) for b in bodies), default=0)
        for prompt in prompts:
            start = list(sot)
            keep = min(223, room)
            if (
                prompt.strip() and keep > 0
            ):  # previous text, as whisper's sequential loop gives it (its last 223 tokens)
                start = [tokenizer.sot_prev] + tokenizer.encode(" " + prompt.strip())[-keep:] + start
            sums = []
            for body in bodies:
                body = body[: model.dims.n_text_ctx - len(start)]
                tokens = torch.tensor([start + body + [tokenizer.eot]], device=param.device)
                logits = model.logits(tokens[:, :-1], features).float()
                logp = torch.log_softmax(logits[0, len(start) - 1 :], dim=-1)
                target = tokens[0, len(start) :]
                sums.append(float(logp.gather(1, target[:, None]).sum()))
            out.append(sums)
    return out


def cut_like(words: Sequence[str], pieces: Sequence[Sequence[str]]) -> list[list[str]]:
    """``words`` cut where ``pieces`` (the other engine's words, per window) are cut, after aligning the two
    word streams (``difflib``, case and punctuation ignored); a cut inside a stretch that differs falls at
    the same share of it."""
    import difflib

    def key(w: str) -> str:
        return re.sub(r"[^\w']", "", w.lower())

    other = [w for piece in pieces for w in piece]
    blocks = difflib.SequenceMatcher(
        None, [key(w) for w in words], [key(w) for w in other], autojunk=False
    ).get_matching_blocks()
    anchors = [(0, 0)]  # (position in words, position in other), increasing
    for i, j, n in blocks:
        anchors += [(i, j), (i + n, j + n)]
    anchors.append((len(words), len(other)))
    cuts, j = [0], 0
    for piece in pieces[:-1]:
        j += len(piece)
        (i0, j0), (i1, j1) = (
            max((x for x in anchors if x[1] <= j), key=lambda x: (x[1], x[0])),
            min((x for x in anchors if x[1] >= j), key=lambda x: (x[1], x[0])),
        )
        i = i0 if j1 == j0 else i0 + round((j - j0) * (i1 - i0) / (j1 - j0))
        cuts.append(max(cuts[-1], min(i, len(words))))
    cuts.append(len(words))
    return [list(words[a:b]) for a, b in zip(cuts, cuts[1:])]


def pick(
    *,
    model: Whisper,
    samples: Signal,
    chunks: Sequence[Chunk],
    sequential: Sequence[dict[str, Any]],
    batched: Sequence[dict[str, Any]],
    language: str | None,
    context: bool = True,
    margin: float = 0.0,
) -> tuple[list[dict[str, Any]], list[Choice]]:
    """Per window of ``chunks``, the text of the engine that wins (see module doc).

    model: the fp32 openai-whisper model that scores both texts.
    samples: the whole file, 16 kHz mono float32.
    chunks: the batched engine's windows; sequential, batched: each engine's segments (dicts with
        start, end, text), in time order. The sequential words are cut where the batched windows
        end (``cut_like``): its segments do not keep to the windows.
    context: score under the three previous texts of ``CONTEXTS`` and add the leads; False: no previous text only.
    margin: nats the batched text must lead by, per previous text.
    Returns the chosen segments in time order (a window's sequential text as sentences spread over
    it, like the batched engine's), and one ``Choice`` per window.
    """
    from ramble2post.transcribe.batched import window_audio
    from ramble2post.transcribe.segments import sentence_times
    from ramble2post.transcribe.wer import normalize

    bat_idx = assign(batched, chunks)
    seq_words = " ".join(s["text"].strip() for s in sequential).split()
    seq_pieces = cut_like(seq_words, [_text(batched, idx).split() for idx in bat_idx])
    chosen: list[dict[str, Any]] = []
    choices: list[Choice] = []
    said_seq = said_bat = ""  # each engine's text so far: two of the previous texts a window is scored after
    for chunk, words, bi in zip(chunks, seq_pieces, bat_idx):
        a, b = " ".join(words), _text(batched, bi)
        take_seq, reason = False, "same"
        scores: tuple[tuple[float, float], ...] = ()
        if normalize(a) != normalize(b):
            out_a, out_b = disqualified(a, b), disqualified(b, a)
            if out_a != out_b:
                take_seq, reason = out_b, "loop"
            else:
                prompts = ["", said_seq, said_bat] if context else [""]
                sums = text_logprobs_after(
                    model, window_audio(samples, chunk), [a, b], language=language, prompts=prompts
                )
                # a tie (within TIE_NATS) keeps the sequential text, whatever the last bits of the sums
                lead = sum(sb - (sa + margin) for sa, sb in sums)
                take_seq, reason = lead <= TIE_NATS, "score"
                scores = tuple((round(sa, 2), round(sb, 2)) for sa, sb in sums)
        name = "same" if reason == "same" else "sequential" if take_seq else "batched"
        choices.append(Choice(chunk.start, chunk.end, name, reason, scores))
        if take_seq:
            chosen += [
                {"start": x, "end": y, "text": " " + t, "avg_logprob": 0.0, "no_speech_prob": 0.0}
                for x, y, t in sentence_times(a, chunk)
            ]
        else:
            chosen += [batched[i] for i in bi]
        said_seq, said_bat = (said_seq + " " + a).strip(), (said_bat + " " + b).strip()
    chosen.sort(key=lambda s: (float(s["start"]), float(s["end"])))
    return chosen, choices
