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
