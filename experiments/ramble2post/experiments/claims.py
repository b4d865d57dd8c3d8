"""Claims, not topics: which sentences of a ramble say something a measurement can confirm or refute.

A *claim* asserts an outcome about what an experiment measures: a figure ("two to three
times faster", "eighty gigabytes", "two percent worse"), a comparison or a direction
("noticeably dumber", "grows linearly", "more memory than the weights"), or a guarantee
("exactly the same output", "lossless", "nearly free"). A *mention* names the topic
("today I want to talk about speculative decoding", "so, batching?") and gets no quote.

Rules, no model: the cue families below are the grammar of outcomes, not any one
speaker's phrases; ``scripts/bench_claims.py`` scores them on ``tests/data/claims``
(calibration half to write them, held-out half to report). Each claim is typed
(speedup, throughput, quality, memory, growth, guarantee) and its figure parsed
(:func:`claimed_factor`), so an experiment can set the number it measured beside it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

_N = (
    r"(?:\d+(?:\.\d+)?|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    r"fifty|sixty|seventy|eighty|ninety|hundred|thousand|a few|several|couple(?: of)?)"
)
WORD_NUMBERS = {
    "a": 1.0,
    "one": 1.0,
    "two": 2.0,
    "three": 3.0,
    "four": 4.0,
    "five": 5.0,
    "six": 6.0,
    "seven": 7.0,
    "eight": 8.0,
    "nine": 9.0,
    "ten": 10.0,
    "eleven": 11.0,
    "twelve": 12.0,
    "fifteen": 15.0,
    "twenty": 20.0,
    "thirty": 30.0,
    "forty": 40.0,
    "fifty": 50.0,
    "hundred": 100.0,
}

# cue families: (kind, pattern). The first family that matches types the claim.
CUES: tuple[tuple[str, str], ...] = (
    (
        "guarantee",
        r"\b(?:exactly|precisely) the same\b|\bidentical\b|\bloss[\s-]?less\b|\btoken for token\b|\bbit[\s-]for[\s-]bit\b"
        r"|\bsame (?:output|tokens|answers?|text|result)s?\b|\bguarantee[sd]?\b|\bdoesn'?t change the output\b",
    ),
    (
        "speedup",
        rf"\b{_N}(?:\s*(?:to|or|-)\s*{_N})?[\s-]?(?:x|times|fold)\b(?!\s+(?:a|per|in|out|when|that|i|we|you)\b)"
        rf"|\b{_N}\s+(?:\w+\s+){{0,3}}instead of\s+{_N}\b|\b(?:double|twice|triple|quadruple)s? (?:the|your|as)\b"
        r"|\b(?:faster|slower|quicker|speed[\s-]?ups?|sped up|speeds? (?:it |things )?up|cheaper|twice as|half the time"
        r"|order of magnitude|for free|(?:nearly|almost|basically|practically|essentially) free|costs? (?:about |almost )?nothing"
        r"|no extra cost|pays? off|doesn'?t (?:help|pay)|(?:no|zero) speed[\s-]?up|not (?:any )?faster"
        r"|(?:costs?|takes?) (?:just |exactly )?as (?:much|long))\b",
    ),
    (
        "memory",
        r"\b(?:giga|mega|tera)bytes?\b|\bgigs?\b|\b\d+\s?(?:gb|mb|gib|mib|tb)\b|\b(?:fits?|fitting) (?:on|in|into)\b"
        r"|\b(?:more|less|fewer|half the|twice the|a fraction of the|tiny fraction of the) (?:memory|vram|ram|bytes|space)\b"
        r"|\b(?:shrinks?|shrank|halves|halved|quarter of the size|out of memory|oom|runs? out of (?:memory|room|space))\b"
        r"|\b(?:memory|footprint|vram) (?:drops?|falls?|goes? down|shrinks?|disappears?|is tiny)\b"
        r"|\b(?:almost|basically|nearly|all but) (?:disappears?|vanish(?:es)?|goes away)\b"
        r"|\bas much (?:memory|vram|ram|space) as\b",
    ),
    (
        "growth",
        r"\b(?:grows?|growing|grew|scales?|scaling|climbs?|balloons?|blows? up|explodes?|keeps? (?:growing|going up)"
        r"|go(?:es)? up with|went up with|times (?:the )?context|stays? (?:the same|constant|flat|fixed)|doesn'?t grow"
        r"|linear(?:ly)?|quadratic(?:ally)?|flattens? out|plateaus?|saturates?|fill(?:s|ed|ing)? (?:up|the))\b",
    ),
    (
        "quality",
        r"\b(?:worse|better|dumber|smarter|degrad\w*|falls? apart|(?:lose|loses|losing|lost) (?:\w+ )?(?:quality|accuracy|points?)"
        r"|hurts?|barely (?:moves?|changes?|hurts?|matters?|any)|(?:can'?t|couldn'?t|cannot) tell the difference"
        r"|no (?:quality |accuracy )?(?:loss|difference|drop)|(?:nearly|almost|basically|about) as (?:good|well)"
        r"|lags? behind|catches? up|(?:more|less) accurate|accuracy (?:drops?|goes)|perplexity (?:goes|went|rises?|barely)"
        r"|(?:solves?|gets?|got) (?:more|most|way more)|pass(?:es)? (?:more|most)"
        r"|beats?|outperforms?|match(?:es)?|on par|as good as|bump(?:s|ed)?|improv\w+|boost(?:s|ed)?"
        rf"|(?:within|by) (?:like |about |maybe )?{_N} (?:points?|percent)|{_N} points? (?:of|on|in|lower|higher|worse|better))\b",
    ),
    (
        "comparison",  # a generic outcome: the experiment decides what it compares
        r"\b(?:more|less|fewer|bigger|smaller|higher|lower|larger|longer|shorter)\b[^.?!]{0,40}?\bthan\b"
        rf"|\bfrom {_N}\b[^.?!]{{0,40}}?\bto {_N}\b|\b(?:drops?|dropped|went down|goes down|rises?|rose|jumps?|jumped)\b"
        rf"|\b(?:no|zero|not much|little|hardly any) (?:real )?(?:difference|change)\b|\bonly {_N} percent\b"
        rf"|\b{_N}\s+(?:seconds?|ms|milliseconds?|minutes?|hours?)\b",
    ),
    (
        "throughput",
        rf"\b{_N}[\s-]+(?:tokens?|tok)(?:\s+(?:a|per|/)\s*(?:second|sec|s))?\b|\b{_N}\s+(?:tera|peta)?(?:flops|flaps|tops)\b"
        rf"|\b{_N}\s+percent\b|\b\d+(?:\.\d+)?\s?%|\b(?:peak|utili[sz]ation|throughput) (?:is|of|goes|went|at)\b"
        r"|\b(?:memory|bandwidth|compute)[\s-]bound\b|\b(?:sit|sits|sitting) idle\b|\bcan'?t (?:use|feed)\b"
        r"|\b(?:big|biggest|huge|headline|really big) numbers?\b",
    ),
)
_COMPILED = tuple((kind, re.compile(p, re.IGNORECASE)) for kind, p in CUES)
# a mention, whatever else it holds: an announcement, a plan, a question with no figure
MENTION = re.compile(
    r"^\s*(?:(?:so|okay|ok|um|uh|and|right|now)[,\s]+)*(?:today\b|i (?:want|wanted|'?m going|am going) to (?:talk|explain|look|dig|get)"
    r"|let'?s (?:talk|look|start)|the (?:question|topic|thing i want)\b|i keep getting asked|people (?:keep )?ask(?:ing)?\b)",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A sentence of the ramble that an experiment can test."""

    text: str  # the sentence, cleaned for quoting
    kind: str  # speedup | throughput | quality | memory | growth | guarantee | comparison
    start: float = 0.0  # s
    end: float = 0.0  # s
    segment_id: int = -1
    cues: tuple[str, ...] = ()  # the words that made it a claim

    @property
    def factor(self) -> tuple[float, float] | None:
        """The claimed multiple, e.g. (2.0, 3.0) for "two to three times faster"."""
        return claimed_factor(self.text)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        """A claim stored in a result's JSON (unknown keys ignored)."""
        return cls(
            text=str(d.get("text", "")),
            kind=str(d.get("kind", "comparison")),
            start=float(d.get("start") or 0.0),
            end=float(d.get("end") or 0.0),
            segment_id=int(d.get("segment_id", -1)),
            cues=tuple(str(c) for c in d.get("cues") or ()),
        )


def claim_cues(text: str) -> list[tuple[str, str]]:
    """(kind, matched words) for every cue family the sentence holds, in family order."""
    out = []
    for kind, rx in _COMPILED:
        m = rx.search(text)
        if m:
            out.append((kind, m.group(0)))
    return out


def is_claim(text: str) -> bool:
    """True when the sentence asserts a testable outcome, not only the topic."""
    cues = claim_cues(text)
    if not cues:
        return False
    if MENTION.search(text) and not any(k in ("speedup", "throughput", "memory") for k, _ in cues):
        return False
    if text.rstrip().endswith("?") and not re.search(r"\d|\bpercent\b|\btimes\b", text):
        return False  # a question asks; it does not claim
    return True


def classify(text: str) -> str | None:
    """The claim's kind, or None for a mention."""
    if not is_claim(text):
        return None
    return claim_cues(text)[0][0]


_FACTOR = re.compile(
    rf"\b({_N})(?:\s*(?:to|or|-)\s*({_N}))?( and a half)?[\s-]?(?:x|times|fold)\b(?!\s+(?:a|per|in|out|when|that|i|we|you)\b)"
    r"|\btwice\b|\bdouble[sd]?\b|(?<!\band a )\bhal(?:f|ves|ved)\b",
    re.IGNORECASE,
)


def _number(word: str) -> float | None:
    w = word.lower().strip()
    try:
        return float(w)
    except ValueError:
        return WORD_NUMBERS.get(w)


def claimed_factor(text: str) -> tuple[float, float] | None:
    """(low, high) of a claimed multiple: "2 to 3 times" -> (2, 3), "ten x" -> (10, 10), "twice" -> (2, 2),
    "half" -> (0.5, 0.5); None when the sentence states no multiple."""
    m = _FACTOR.search(text)
    if not m:
        return None
    word = m.group(0).lower()
    if word.startswith("twice") or word.startswith("double"):
        return (2.0, 2.0)
    if word.startswith("hal"):
        return (0.5, 0.5)
    lo = _number(m.group(1))
    hi = _number(m.group(2)) if m.group(2) else lo
    if lo is None or hi is None:
        return None
    if m.group(3):  # "two and a half times": the half belongs to the last number said
        hi += 0.5
        lo = lo if m.group(2) else hi
    return (min(lo, hi), max(lo, hi))


def find_claims(segments: Sequence[Any], *, near: Sequence[int] = (), window: int = 2) -> list[Claim]:
    """Claims among ``segments`` (objects with id, start, end, text): the ones at or within ``window``
    segments of the ids in ``near`` (the experiment's detection evidence), or all when ``near`` is empty."""
    from ramble2post.structure.clean import clean_text
    from ramble2post.structure.jargon import fix_jargon

    def clean_sentence(sentence: str) -> str:  # fillers and restarts out, the field's jargon spelled right
        fixed, _fixes = fix_jargon([clean_text(sentence) or sentence])
        return fixed[0]

    ids = [int(s.id) for s in segments]
    keep = set(ids)
    if near:
        pos = {sid: i for i, sid in enumerate(ids)}
        keep = {
            ids[j] for n in near if n in pos for j in range(max(0, pos[n] - window), min(len(ids), pos[n] + window + 1))
        }
    out = []
    for s in segments:
        if int(s.id) not in keep:
            continue
        for sentence in _sentences(str(s.text)):
            kind = classify(sentence)
            if kind:
                out.append(
                    Claim(
                        text=clean_sentence(sentence),
                        kind=kind,
                        start=float(s.start),
                        end=float(s.end),
                        segment_id=int(s.id),
                        cues=tuple(c for _k, c in claim_cues(sentence)),
                    )
                )
    return out


CLAIM_REACH = 3  # segments from the detection evidence searched for claims: the sentence that names the subject,
# or one of the next few ("it grows linearly" after "the KV cache"); six segments (~1 min of speech) quoted
# sentences about other subjects of the same ramble (docs/EXPERIMENTS.md, "Whose claim is it?")


def _distance(at: int, anchors: Sequence[int]) -> int:
    """Segments from ``at`` back to the nearest anchor at or before it, or forward to one after it; a
    sentence after the subject is named is one step closer than one before it (speakers name, then claim)."""
    best = 10**6
    for a in anchors:
        best = min(best, 2 * (at - a) if at >= a else 2 * (a - at) + 1)
    return best


def claims_near(
    segments: Sequence[Any],
    *,
    evidence: Sequence[int],
    rivals: Sequence[Sequence[int]] = (),
    reach: int = CLAIM_REACH,
) -> list[tuple[Claim, int]]:
    """(claim, distance) for the claims said about one experiment's subject: within ``reach`` segments of
    ``evidence`` (segment ids whose own words detected it) and no farther from it than from any of
    ``rivals`` (the other experiments' evidence in the same ramble: a ramble that moves from speculative
    decoding to batching has each claim under its own subject). Distance: ``_distance`` in segments."""
    pos = {int(s.id): i for i, s in enumerate(segments)}
    anchors = sorted({pos[n] for n in evidence if n in pos})
    if not anchors:
        return []
    others = [o for o in ([pos[n] for n in r if n in pos] for r in rivals) if o]
    out = []
    for c in find_claims(segments, near=[int(segments[a].id) for a in anchors], window=reach):
        here = pos.get(c.segment_id)
        if here is None:
            continue
        d = _distance(here, anchors)
        if all(d <= _distance(here, o) for o in others):
            out.append((c, d))
    return out


def _sentences(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"(?<=[.!?])\s+", text) if p.strip()]
