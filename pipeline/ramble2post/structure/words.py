"""Words of a sentence as verification counts them: tokens, stems, content words, stop words, units.

Shared by ``verify`` (the rules) and ``faithful`` (meaning flips, invented clauses), so neither
imports the other for these.
"""

from __future__ import annotations

import re

STOP = set(
    """a an the and or but so if then than that this these those there here it its it's is are was were
be been being am do does did doing have has had having i me my we our you your he she they them their his her
of in on at to for from by with about as into over under up down out off again further once just very really
not no nor only own same too can will would should could may might must shall what which who whom whose when
where why how all any both each few more most other some such also like gonna going get got kind sort thing
things stuff i'm you're we're they're it's that's there's don't can't won't isn't aren't i've i'd i'll""".split()
)
NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
    "half": 0.5,
    "double": 2,
    "twice": 2,
    "triple": 3,
    "dozen": 12,
}
UNITS = set(
    """% percent x gb gib mb mib kb tb tib gbps mbps ms us µs ns s sec secs second seconds minute minutes
hour hours w watt watts kw ghz mhz hz flops tflops gflops pflops tok/s tokens/s fps $ dollars dollar usd eur
bit bits byte bytes fp8 fp16 bf16 fp32 int8 int4 nm kilobyte kilobytes megabyte megabytes gigabyte gigabytes
terabyte terabytes petabyte petabytes kilobit kilobits megabit megabits gigabit gigabits terabit terabits
millisecond milliseconds microsecond microseconds nanosecond nanoseconds gigahertz megahertz teraflops petaflops
kilowatt kilowatts megawatt megawatts""".split()
)
_TOKEN = re.compile(r"\$|%|[A-Za-z][\w'’/.-]*[A-Za-z0-9]|[A-Za-z]|\d[\d,]*(?:\.\d+)?[a-zA-Z%]*")
_SENT = re.compile(r"(?<=[.!?])\s+")


def _stem(w: str) -> str:
    w = w[:-2] if w.endswith("'s") else w
    for suf in ("ingly", "ing", "edly", "ed", "es", "s", "ly"):
        if len(w) > len(suf) + (2 if suf == "s" else 3) and w.endswith(suf):
            return w[: -len(suf)]
    return w


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.replace("’", "'"))


def content_words(text: str) -> set[str]:
    return {_stem(t.lower()) for t in tokens(text) if t.lower() not in STOP and not t[0].isdigit() and len(t) > 1}


# ---------------------------------------------------------------- complete statements (layer 1)
COMPLETE_MIN_WORDS = 6  # words; a shorter "sentence" is a fragment or an aside
_FINITE = re.compile(
    r"\b(is|are|was|were|am|be|been|has|have|had|do|does|did|can|could|will|would|should|may|might|must|need|needs"
    r"|needed|gets?|got|makes?|made|takes?|took|goes|went|runs?|ran|uses?|used|keeps?|kept|lets|means?|meant"
    r"|wants?|gives?|gave|grows?|grew|fits?|helps?|works?|matters?|comes?|came|says?|said|thinks?|knows?|sees?|saw"
    r"|becomes?|became|costs?|moves?|reads?|loads?|stores?|computes?|calls?|wins?|spends?|saves?|tries|finds?|found"
    r"|shows?|hits?|stays?|pays?|depends?|happens?|happened|changes?|turns?|lives?|sits?|scales?|waits?|stalls?)\b"
    r"|\b\w+(?:n't|'s|'re|'ll|'ve|'d)\b|\b\w{3,}ed\b|\b(i|we|you|they|it|he|she)\s+\w+",
    re.IGNORECASE,
)
_DEPENDENT = re.compile(r"^\W*(because|which|whereas|although|though|whether|unless|like|than|as well as)\b", re.I)
_CONDITIONAL = re.compile(r"^\W*(if|when|while|once|whenever)\b", re.I)


_NOT_BEFORE_VERB = set(
    "the a an these those this that my our your their his her its of and or in on at to for from with by many more"
    " few all some most two three four five ten hundred thousand million billion".split()
)


def _verb_in_s(t: str) -> bool:
    """A word in -s after a word that cannot precede a plural noun ("bandwidth beats", not "the weights")."""
    toks = re.findall(r"[A-Za-z']+", t)
    return any(
        len(w) >= 4
        and w.lower().endswith("s")
        and not w.lower().endswith(("ss", "us", "is", "'s"))
        and toks[k - 1].lower() not in _NOT_BEFORE_VERB
        for k, w in enumerate(toks)
        if k > 0
    )


def complete_statement(text: str) -> bool:
    """True when ``text`` reads as a whole statement, not a fragment.

    A capitalised start, a full stop or exclamation at the end (a question states nothing),
    at least ``COMPLETE_MIN_WORDS`` words, a finite verb, and no dangling subordinate start
    ("Because the cache grows." / "Which is why."); a conditional start needs its main clause
    after a comma ("If you batch, the weights are read once.").
    """
    t = text.strip()
    if len(t.split()) < COMPLETE_MIN_WORDS or not t or not (t[0].isupper() or t[0].isdigit()):
        return False
    if t[-1] not in ".!" or _DEPENDENT.search(t):
        return False
    if _CONDITIONAL.search(t) and "," not in t:
        return False
    return bool(_FINITE.search(t)) or _verb_in_s(t)
