"""Roles are spans: a reason or a worked example often runs over several sentences.

A span starts at a seed sentence (one the role model rates likely for the role) and grows
over the sentences that carry it on: a following sentence joins when the role model rates
it close to the seed for the same role, or when it opens with a word that continues the
thought ("because", "so", "which", "and then") and is not itself the start of something else
(a question, housekeeping). A seed that opens by pointing back ("That's because", "So that
means") takes the sentence before it, which holds what it refers to. At most
``MAX_SPAN`` sentences and ``MAX_SPAN_WORDS`` words: an item is a passage, not a page.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

MAX_SPAN = 4  # sentences per item
# layer 1 states the point: 46 of the gold set's 59 labelled points are one sentence and 10 are two; a layer 1
# grown to 3-4 sentences (4 of 42 stored posts, all real speech) carried on into what came after the point
MAX_FOCUS_SPAN = 2
MAX_SPAN_WORDS = 90  # words per item (about 35 s of speech)
KEEP_RATIO = 0.6  # a neighbour joins when its probability for the role is >= this share of the seed's
CONTINUES = re.compile(
    r"^\W*(and (then|so|that|this|it|you|we)|so (that|you|we|it|the|if|then)|because|cause|'cause|which|that means"
    r"|meaning|then (you|we|it|the)|otherwise|plus|so basically|and basically|and if)\b",
    re.IGNORECASE,
)
POINTS_BACK = re.compile(r"^\W*(that's|that is|this is|which is|so that's|and that's) (why|because|how)\b", re.I)
STARTS_NEW = re.compile(r"^\W*(okay|ok|alright|anyway|now,|next|let me|let's move|moving on)\b", re.I)


@dataclasses.dataclass(frozen=True)
class Span:
    """Consecutive sentences (indices into the talk) proposed for one role."""

    role: str
    start: int  # index of the first sentence
    end: int  # index after the last sentence
    seed: int  # index of the sentence the role model rated
    seed_p: float  # the role model's probability for the seed

    @property
    def indices(self) -> range:
        return range(self.start, self.end)


def grow(
    seed: int,
    *,
    role: str,
    texts: Sequence[str],
    probs: Sequence[float],
    usable: Sequence[bool],
    taken: set[int] | frozenset[int] = frozenset(),
    connectives: bool = True,
    max_span: int = MAX_SPAN,
) -> Span:
    """The span around ``seed`` for ``role`` (see module docstring).

    seed: index of the seed sentence in ``texts``.
    texts: the talk's cleaned sentences, in order.
    probs: the role model's probability for ``role``, one per sentence.
    usable: sentences that may be shown at all (not questions, fragments or walls of words).
    taken: sentences already shown under another item: a span never overlaps them.
    connectives: let an opening "because", "so that"... carry the span on (off for layer 1: a
        "because" after the point starts its reason, not more of the point).
    max_span: sentences at most (layer 1: ``MAX_FOCUS_SPAN``).
    """

    def words(i: int) -> int:
        return len(texts[i].split())

    def joins(i: int) -> bool:
        if i in taken or not (0 <= i < len(texts)) or texts[i].rstrip().endswith("?") or STARTS_NEW.search(texts[i]):
            return False
        return probs[i] >= KEEP_RATIO * probs[seed] or (connectives and bool(CONTINUES.search(texts[i])))

    start, end = seed, seed + 1
    total = words(seed)
    if POINTS_BACK.search(texts[seed]) and seed > 0 and (seed - 1) not in taken and usable[seed - 1]:
        start -= 1
        total += words(start)
    while end - start < max_span and end < len(texts) and joins(end) and total + words(end) <= MAX_SPAN_WORDS:
        total += words(end)
        end += 1
    return Span(role=role, start=start, end=end, seed=seed, seed_p=probs[seed])


def candidates(
    *,
    role: str,
    texts: Sequence[str],
    probs: Sequence[float],
    usable: Sequence[bool],
    k: int,
    taken: set[int] | frozenset[int] = frozenset(),
) -> list[Span]:
    """The ``k`` likeliest non-overlapping spans for ``role``, seeds in order of the role model's probability.

    role, texts, probs, usable, taken: as for ``grow``.
    k: spans wanted.
    """
    order = sorted((i for i in range(len(texts)) if usable[i] and i not in taken), key=lambda i: -probs[i])
    out: list[Span] = []
    used = set(taken)
    for seed in order:
        if seed in used:
            continue
        span = grow(seed, role=role, texts=texts, probs=probs, usable=usable, taken=used)
        used.update(span.indices)
        out.append(span)
        if len(out) >= k:
            break
    return out


def propose(
    *,
    texts: Sequence[str],
    probs: Mapping[str, Sequence[float]],
    usable: Sequence[bool],
    focus_index: int,
    k: int,
) -> tuple[Span, list[Span]]:
    """Layer 1's span around ``focus_index``, and the pool of candidate spans for the other roles:
    the ``k`` likeliest for each role, without duplicates (a span proposed for one role is judged
    for every role: the role model often rates the right passage under the wrong heading).

    texts, usable: as for ``grow``.
    probs: role -> the role model's probability per sentence.
    focus_index: the sentence layer 1 starts from (``select`` chose it: it names the topic).
    k: candidate spans per role.
    """
    focus = grow(
        focus_index,
        role="focus",
        texts=texts,
        probs=probs["focus"],
        usable=usable,
        connectives=False,
        max_span=MAX_FOCUS_SPAN,
    )
    taken = set(focus.indices)
    pool: dict[tuple[int, int], Span] = {}
    for role in probs:
        if role == "focus":
            continue
        for span in candidates(role=role, texts=texts, probs=probs[role], usable=usable, k=k, taken=taken):
            pool.setdefault((span.start, span.end), span)
    return focus, sorted(pool.values(), key=lambda s: -s.seed_p)


def span_probability(span: Span, probs: Sequence[float]) -> float:
    """The role model's evidence for a span under one role: its likeliest sentence's probability."""
    return max(probs[i] for i in span.indices)
