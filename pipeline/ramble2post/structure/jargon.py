"""Misheard jargon spelled right from its context, in the sentences the post shows.

The transcription glossary (``transcribe.glossary``) fixes spellings that are wrong
everywhere ("kv cash"). Some mishearings are ordinary words that are wrong only in one
kind of talk: "keys and mail you" next to attention is "keys and values", but "mail" in a
ramble about email stays; "matching" in a ramble about throughput and batch sizes is
"batching". Each entry of ``MISHEARD`` names the misheard words, the term, and the context
words that must be said near it (within ``WINDOW`` sentences, at least ``need`` of them,
distinct). Deterministic; every change is recorded (sentence id, heard, written) so the
Human and Ramble views can show the verbatim words.

``MISHEARD`` is also the list of known mishearings the titles are tested against
(``misheard_terms``): a title must contain none of them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

WINDOW = 3  # sentences before and after whose words count as context


@dataclasses.dataclass(frozen=True)
class Misheard:
    heard: str  # regex of the misheard words (case-insensitive, whole words)
    term: str  # the right spelling
    context: str  # regex of words that make the reading certain
    need: int = 1  # distinct context words required
    guard: str = ""  # regex: no correction when this surrounds the match ("pattern matching")


_ATTN = r"attention|quer(?:y|ies)|tokens?|cache|transformer|heads?|softmax|keys"
_NUM = r"quantiz\w*|precision|fp16|bf16|fp8|fp32|float\w*|bits?|weights|int4|half"
_GPU = r"gpus?|cuda|kernels?|launch\w*|fus\w+|memory|bandwidth|hbm|tensor cores?|nvidia|warps?|threads?"
_SERVE = r"throughput|batch size|requests?|tokens? per second|decod\w*|serving|gpus?|latency|sequences?|weights"
MISHEARD: tuple[Misheard, ...] = (
    Misheard(
        r"keys and (?:mail|male|mails)(?: you)?",
        "keys and values",
        _ATTN,
        need=2,
        guard=r"e-?mails?|inbox|sent|send|post|letters?|office|address",
    ),
    Misheard(r"keys and valleys", "keys and values", _ATTN),
    Misheard(r"in ?tate|intate|inate|m8", "int8", _NUM),
    Misheard(r"int ?(?:eight|8)", "int8", _NUM),
    Misheard(r"f\.? ?b\.? ?16|fb ?sixteen", "FP16", _NUM),
    Misheard(r"b\.? ?f\.? ?sixteen|bf ?16", "BF16", _NUM),
    Misheard(
        r"(?:kb|kv|kay ?vee|cavey|cave) ?(?:cash|cache|cashe)", "KV cache", _ATTN + r"|decod\w*|memory|generat\w*"
    ),
    Misheard(r"matching", "batching", _SERVE, need=2, guard=r"pattern|string|regex|template|exact|fuzzy|key"),
    # an unseen serving ramble of stop 32 (a Scottish-English voice): "Continuous Marching" throughout
    Misheard(r"marching", "batching", _SERVE, need=2, guard=r"band|army|parade|soldiers?|orders|ants|troops"),
    Misheard(r"colonels?|kernal", "kernel", _GPU, need=2),
    Misheard(r"m ?ccl|an ccl|n ?ccl", "NCCL", r"all.?reduce|gpus?|nvlink|collectives?|gradients?|ranks?"),
    Misheard(r"(?:oil|soil|all) ?reduc(?:e|es|ing)", "all-reduce", r"nccl|gpus?|gradients?|nvlink|ranks?|collectives?"),
    # "CUDA drafts", "CUDA bluff" (an unseen ramble of stop 31); not "CUDA offers", which is also English
    Misheard(
        r"q-? ?graphs?|cuda ?graph|cuda (?:drafts?|bluffs?|grafts?|grass)",
        "CUDA graphs",
        r"kernels?|launch\w*|capture|replay|gpus?",
    ),
    Misheard(r"flash ?attention|flesh attention", "flash attention", _ATTN + r"|sram|tiles?|kernels?"),
    Misheard(r"speculative coding", "speculative decoding", r"draft|tokens?|guess\w*|verif\w*|accept\w*|model"),
    Misheard(r"laura|lorra", "LoRA", r"adapters?|rank|fine.?tun\w*|weights|low.rank|matri(?:x|ces)|base model"),
    Misheard(r"roof ?line", "roofline", r"flops|bandwidth|arithmetic intensity|compute|memory"),
    Misheard(r"tensor course", "tensor cores", _GPU + r"|matmul|flops"),
    # "memory that grows with every token" heard as "blows" (gold kv-cache): not "blows up", an idiom
    Misheard(r"blows", "grows", r"memory|cache|tokens?|linear\w*|sequences?|context", need=2, guard=r"up|fuse|mind"),
)
_COMPILED = [
    (m, re.compile(rf"\b(?:{m.heard})\b", re.IGNORECASE), re.compile(rf"\b(?:{m.context})\b", re.IGNORECASE))
    for m in MISHEARD
]


@dataclasses.dataclass(frozen=True)
class JargonFix:
    """One context correction: in sentence ``sentence`` the words ``heard`` became ``written``."""

    sentence: int
    heard: str
    written: str


def _context_words(texts: Sequence[str], k: int, pattern: re.Pattern[str]) -> set[str]:
    lo, hi = max(0, k - WINDOW), min(len(texts), k + WINDOW + 1)
    return {m.group(0).lower() for t in texts[lo:hi] for m in pattern.finditer(t)}


def _keep_case(heard: str, term: str, *, starts: bool) -> str:
    """A term that starts a sentence keeps the capital ("Matching" -> "Batching")."""
    if starts and heard[:1].isupper() and term[:1].islower():
        return term[:1].upper() + term[1:]
    return term


def fix_jargon(texts: Sequence[str], ids: Sequence[int] | None = None) -> tuple[list[str], list[JargonFix]]:
    """``texts`` (a talk's sentences, in order) with known mishearings spelled right where their
    context says so, and the changes made. ``ids``: the sentences' ids for the record."""
    out = list(texts)
    fixes: list[JargonFix] = []
    for k, text in enumerate(texts):
        new = text
        for m, heard, context in _COMPILED:
            if not heard.search(new):
                continue
            near = _context_words(texts, k, context) - {w.lower() for w in heard.findall(new)}
            if len(near) < m.need:
                continue

            def swap(match: re.Match[str], m: Misheard = m, k: int = k) -> str:
                around = match.string[max(0, match.start() - 20) : match.end() + 20]
                if m.guard and re.search(rf"\b(?:{m.guard})\b", around, re.IGNORECASE):
                    return match.group(0)
                written = _keep_case(match.group(0), m.term, starts=not match.string[: match.start()].strip(" \"'"))
                if written != match.group(0):
                    fixes.append(JargonFix(ids[k] if ids is not None else k, match.group(0), written))
                return written

            new = heard.sub(swap, new)
        out[k] = new
    return out, fixes


def misheard_terms(text: str) -> list[str]:
    """Known mishearings left in ``text`` (whatever the context): what a title must not contain."""
    found = []
    for m, heard, _ in _COMPILED:
        for match in heard.finditer(text):
            if match.group(0).lower() != m.term.lower() and not (
                m.guard and re.search(rf"\b(?:{m.guard})\b", text, re.IGNORECASE)
            ):
                found.append(match.group(0))
    return found
