"""Where layer 1 starts: the speaker's own passage closest to the model's one-sentence reading of the point.

The role model (``roles``) rates a sentence as the point from cues ("the main thing is"),
centrality and whether it names the talk's key phrases. Real speakers rarely announce the
point: it is a plain claim said halfway through, between an anecdote and its numbers, and the
role model's likeliest sentence is often an aside that happens to name the topic ("Anyway, the
part that tripped me up is the hit rate"). A model that reads the whole talk knows what it is
about. So the structure model is asked once, "In one sentence, what is the speaker's main
point?" (``prompts/structure_point.txt``), and layer 1 starts at the complete statement whose
passage is closest to that answer (MiniLM cosine), the role model's point probability a small
prior. The answer is never shown: layer 1 stays the speaker's words.

Measured (docs/STRUCTURE_QUALITY.md, "Layer 1 from the model's reading of the point"): layer 1
right on 19 of 26 gold rambles with held-out role models (role model alone: 13), on 6 of 9
holdout rambles (3) and on 4 of 9 unseen ones (2); on topic 22, 9 and 6, about 10 s per talk with Qwen2.5-Coder-1.5B on
2 cores. The judge's per-passage P(point) does not separate points from other passages (13 of
26), so the model reads the talk, not the passages.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from ramble2post.structure.prompts import Prompt
from ramble2post.structure.spans import MAX_FOCUS_SPAN, grow
from ramble2post.structure.words import complete_statement

log = logging.getLogger(__name__)

SYSTEM = "You read transcripts of spoken technical talks and state their main point plainly."
# the models whose reading was measured to choose layer 1 better than the role model alone (its judge
# calibration's name); the three smaller packaged models add nothing as judges, and a served model's
# reading is unmeasured
POINT_READERS = ("qwen2.5-coder-1.5b",)
# how much the role model's point probability still counts beside the reading: score = cosine + PRIOR_WEIGHT *
# ln(p) over every complete statement. Until stop 32 the reading chose among the role model's six likeliest only,
# and a stated point the role model ranks low (no cue: "the thing you actually care about is reuse") was out of
# reach. Same readings, the cut -> this rule: gold (26) layer 1 right 19 -> 19 (real register 8 -> 9 of 13), on
# topic 20 -> 22; holdout (9) 6 -> 6, 9 -> 9; nine unseen rambles 4 -> 4, 5 -> 6. Weights 0-0.1 give the gold
# figures within one
PRIOR_WEIGHT = 0.05  # cosine per nat
EPS = 1e-4  # probabilities are clipped here before the log
TALK_WORDS = 900  # words of the talk the model reads (~1,200 tokens: ~10 s on 2 cores); longer talks are thinned
ANSWER_TOKENS = 48  # one sentence
# words above which the talk is not read: its thinned text would be half of it or less, and the reading
# costs ~12 s of prompt evaluation on 2 cores (~90 tokens/s) that a 13-min ramble's < 90-s run cannot
# spare (87 s without it on the machine in docs/STRUCTURE_QUALITY.md); the one long labelled ramble's
# layer 1 did not change with it. Every measured short ramble (319-860 words) is read.
LONG_TALK_WORDS = 1500


def thin(texts: Sequence[str], *, max_words: int = TALK_WORDS) -> list[str]:
    """The talk's sentences, every n-th one kept when it is longer than ``max_words`` (spread over
    the whole talk, so a point said near the end is still read)."""
    words = sum(len(t.split()) for t in texts)
    if words <= max_words:
        return list(texts)
    step = -(-words // max_words)
    return [t for k, t in enumerate(texts) if k % step == 0]


def worth_reading(texts: Sequence[str]) -> bool:
    """True when the talk is short enough to be read (``LONG_TALK_WORDS``)."""
    return sum(len(t.split()) for t in texts) <= LONG_TALK_WORDS


def split_prompt(prompt: Prompt, talk: str) -> tuple[str, str]:
    """(prefix, question): the rendered prompt split at its last blank line (the talk is the prefix)."""
    text = prompt.render(talk=talk).strip()
    prefix, sep, question = text.rpartition("\n\n")
    return (prefix, question) if sep else ("", text)


def point_statement(model: Any, *, texts: Sequence[str], prompt: Prompt) -> str | None:
    """The model's one-sentence reading of the talk's point, or None when it gives none.

    model: a local model with ``ask`` and ``set_system`` (``llm.LlamaCppLLM``).
    texts: the talk's cleaned sentences, in order.
    prompt: ``structure_point`` (its ``{talk}`` is filled with the thinned talk).
    """
    prefix, question = split_prompt(prompt, " ".join(thin(texts)))
    set_system = getattr(model, "set_system", None)
    previous = getattr(model, "_system", None)
    if callable(set_system):
        set_system(SYSTEM)
    try:
        answer = model.ask(prefix=prefix, question=question, max_tokens=ANSWER_TOKENS)
    finally:
        if callable(set_system) and previous is not None:
            set_system(previous)
    text = " ".join(answer.text.split())
    return text or None


def candidates(
    *, texts: Sequence[str], probs: Sequence[float], usable: Sequence[bool], also: int
) -> list[tuple[int, list[int]]]:
    """(seed, its passage's sentences) for every usable sentence whose passage (``spans.grow``) is all
    complete statements, likeliest point first by the role model (layer 1 is never a fragment; where none
    is, those with a complete first sentence, else any), plus ``also`` (the role model's own choice)."""

    def passage(i: int) -> list[int]:
        return list(  # the passage layer 1 would show: its first sentence and at most one more
            grow(
                i, role="focus", texts=texts, probs=probs, usable=usable, connectives=False, max_span=MAX_FOCUS_SPAN
            ).indices
        )

    ranked = sorted((i for i in range(len(probs)) if usable[i]), key=lambda i: -probs[i])
    whole = [i for i in ranked if all(complete_statement(texts[k]) for k in passage(i))]
    starts = [i for i in ranked if complete_statement(texts[i])]
    order = list(whole or starts or ranked)
    if also not in order:
        order.append(also)
    return [(i, passage(i)) for i in order]


def closest_start(
    reading: str,
    *,
    texts: Sequence[str],
    probs: Sequence[float],
    usable: Sequence[bool],
    fallback: int,
) -> int:
    """The sentence layer 1 starts at: among ``candidates``, the one whose passage is closest to
    ``reading`` (cosine of MiniLM embeddings), the role model's point probability a small prior
    (``PRIOR_WEIGHT``); ``fallback`` wins a tie.

    reading: the model's statement of the point (``point_statement``).
    texts, usable: the talk's cleaned sentences and which may be shown (as for ``spans.grow``).
    probs: the role model's point probability per sentence.
    fallback: the role model's own choice (``stage.layer1_start``).
    """
    from ramble2post.structure.embed import embed

    found = candidates(texts=texts, probs=probs, usable=usable, also=fallback)
    seeds = [seed for seed, _ in found]
    passages = [" ".join(texts[k] for k in sentences) for _, sentences in found]
    vecs = embed([reading, *passages])
    scores = [
        float(vecs[k + 1] @ vecs[0]) + PRIOR_WEIGHT * math.log(max(probs[seed], EPS)) for k, seed in enumerate(seeds)
    ]
    best = max(range(len(seeds)), key=lambda k: (scores[k], seeds[k] == fallback))
    log.debug("layer 1: %s (scores %s)", seeds[best], [round(s, 3) for s in scores])
    return seeds[best]
