"""The talk's key phrases: the terms a speaker keeps coming back to ("KV cache", "speculative decoding").

Candidates are runs of one to three words with no stop word, filler or generic spoken
word at either end, counted once per sentence they occur in. A phrase said in more
sentences, longer, or spelled like jargon (an acronym, a digit, a capital inside:
``KV``, ``int8``, ``H100``) scores higher; a shorter phrase inside a chosen longer one
is dropped when the longer one carries most of its uses. Each phrase keeps the
speaker's most common spelling, so a title built from them ("KV cache and attention
heads") says nothing the speaker did not say.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from ramble2post.structure.words import STOP

MIN_SENTENCES = 2  # a key phrase is said in at least this many sentences
MAX_WORDS = 3  # words per phrase
LENGTH_BONUS = 0.6  # score factor per extra word
JARGON_BONUS = 1.5  # acronyms, digits, inner capitals
RARITY_POWER = 8  # how hard common English words are pushed down (see rarity())
COMMON_RANK = 30_000  # BPE rank from which a word counts as rare (GPT-2's vocabulary has 50,257)
SUBJECT_BOOST = 1.0  # score factor added to a phrase the speaker names as the subject ("talk about X")
# "I want to talk about X", "today's topic is X": the words just after it name the subject
SUBJECT = re.compile(
    r"\b(?:(?:i|we)(?:'m| am|'re| are)? (?:want(?:ed)?|going|gonna|would like|'d like|will|'ll|wanna) (?:to )?"
    r"(?:talk|ramble|chat|tell you|think out loud) about|let's talk about) (?:today )?(?:is )?(?:the idea of )?"
    r"(?:the |a |an |this |some |how )?"
    r"((?:\S+\s*){1,4})"
    r"|\b(?:topic|subject) (?:today |for today )?is (?:the |a |an )?((?:\S+\s*){1,4})",
    re.IGNORECASE,
)
# a talk organised as an enumeration ("three layers ... the first layer ... the second layer ... the
# third layer") is about the thing enumerated, however common the word: "the first/second/third X"
# with at least ENUM_ORDINALS distinct ordinals, and the speaker counting them ("three layers")
ENUM_ORDINALS = 3
ORDINAL = re.compile(r"\bthe (first|second|third|fourth|fifth|sixth|last|final) ([a-z][a-z-]+)", re.IGNORECASE)
COUNTED = re.compile(
    r"\b((?:two|three|four|five|six|2|3|4|5|6) (?:different |main |key |separate )?([a-z][a-z-]+))\b", re.IGNORECASE
)
SUBSUME_SHARE = 0.5  # a longer phrase replaces a shorter one inside it holding this share of its uses
TITLE_PHRASES = 2  # key phrases joined into a fallback title
# words that carry no topic on their own in speech: never the start or end of a key phrase
GENERIC = STOP | set(
    """um uh yeah okay ok alright right well actually basically literally honestly really probably maybe
    anyway anyways whatever sorry hmm huh oh wow cool yep nope
    kind sort lot lots bit little thing things stuff something anything everything nothing someone way ways
    time times today people person guy guys part parts point points idea ideas question questions fact case cases
    example examples reason reasons problem problems number numbers story stories whole half end start side top
    make makes made take takes took use uses used using need needs needed run runs ran running say says said go goes
    went going get gets getting see sees saw look looks looking mean means meant think thinks thought know knows
    knew want wants wanted try tries tried find finds found give gives gave put puts come comes came work works
    working worked talk talking talked tell told let lets feel felt keep keeps kept start started call called
    good great big small bigger smaller large huge new old same different real basic simple easy hard pretty
    first second third next last one two three four five six seven eight nine ten many much more most less few
    every each another other others own sure true just even still also already always never often again
    eleven twelve twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion
    gonna wanna gotta i'm it's that's there's what's don't doesn't didn't isn't aren't can't won't you're
    we're they're i've you've we've i'd you'd i'll you'll let's here's""".split()
)
# comparatives and superlatives modify a noun ("best model", "better kernels") but are never one: they may start
# a key phrase, not end one (the bundled 1-minute sample's title was "Thoughts and better" until stop 39)
MODIFIERS = set("better best worse worst".split())
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’+.-]*[A-Za-z0-9+]|[A-Za-z0-9]")


@dataclasses.dataclass(frozen=True)
class Keyphrase:
    text: str  # the speaker's most common spelling
    key: str  # lower-case form used for matching
    sentences: int  # sentences it is said in
    score: float
    subject: bool = False  # the speaker named it as the subject ("I want to talk about X")


@functools.lru_cache(maxsize=1)
def _bpe() -> Any:
    try:
        from whisper.tokenizer import get_encoding

        return get_encoding("gpt2")
    except Exception:  # noqa: BLE001 - no tokenizer: every word counts as rare
        return None


@functools.lru_cache(maxsize=4096)
def rarity(word: str) -> float:
    """0..1, how rare an English word is, from its GPT-2 BPE rank (merges were learnt most frequent first).

    A word that is one token early in the vocabulary is common ("because" 780 -> 0.65,
    "model" 2746 -> 0.77); a word split into pieces is rare or jargon ("speculative",
    "KV", "int8" -> 1.0). No corpus needed: whisper already ships the GPT-2 vocabulary.
    """
    enc = _bpe()
    if enc is None:
        return 1.0
    forms = [word] + ([word[:-1]] if word.endswith("s") else []) + ([word[:-2]] if word.endswith("es") else [])
    out = 1.0
    for form in forms:  # "guesses" is rarer in BPE than "guess": a plural is as common as its singular
        ids = enc.encode(" " + form)
        if len(ids) == 1:
            out = min(out, max(0.0, min(1.0, math.log(max(ids[0], 2)) / math.log(COMMON_RANK))))
    return out


def phrase_rarity(words: Sequence[str]) -> float:
    """Rarity of a phrase: its words' log-ranks add up (a compound of common words, such as
    "flash attention" or "mixture of experts", is as rare as their product), scaled so that
    a phrase of n words needs about n/2 extra common words' worth of rank to count as rare."""
    content = [w for w in words if w.lower() not in STOP]
    if len(content) <= 1:
        return max((rarity(w) for w in content or words), default=1.0)
    return min(1.0, sum(rarity(w) for w in content) / (1 + 0.5 * (len(content) - 1)))


def _words(sentence: str) -> list[str]:
    return [w.replace("’", "'").rstrip(".") for w in _WORD.findall(sentence)]


def _fold(word: str) -> str:
    """Lower case, light stemming: "Heads"/"head", "batching"/"batch", "parallelism"/"parallel",
    "caches"/"cache" are one key."""
    low = word.lower()
    if len(word) > 2 and word[:-1].isupper() and word.endswith("s"):  # GPUs -> gpu
        return low[:-1]
    if _jargon(word) or len(low) <= 4:
        return low
    for suffix in ("ism", "ing", "es", "s"):
        if low.endswith(suffix) and len(low) - len(suffix) >= 4 and not low.endswith(("ss", "us", "is")):
            low = low[: -len(suffix)]
            break
    # "cache"/"caches" and "stage"/"stages" fold alike ("cach", "stag"): a final e goes too
    return low[:-1] if low.endswith("e") and len(low) > 4 else low


def _jargon(word: str) -> bool:
    return any(c.isdigit() for c in word) or (len(word) > 1 and word.isupper()) or any(c.isupper() for c in word[1:])


def _content(word: str) -> bool:
    """A word that can start or end a key phrase: not generic, not a quantity ("40GB", "3x"; "int8" is fine)."""
    low = word.lower()
    return len(low) > 1 and low not in GENERIC and not low[0].isdigit()


def candidates(sentences: Sequence[str]) -> tuple[Counter[str], dict[str, Counter[str]], dict[str, bool]]:
    """Candidate phrases of a talk: sentences each is said in, its spellings, whether it looks like jargon."""
    df: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    jargon: dict[str, bool] = {}
    for sentence in sentences:
        ws = _words(sentence)
        seen: set[str] = set()
        for i in range(len(ws)):
            for n in range(1, MAX_WORDS + 1):
                gram = ws[i : i + n]
                # a number may end a phrase ("int 8", "H 100") but not start or be one
                last_ok = len(gram) == n and (
                    (_content(gram[-1]) and gram[-1].lower() not in MODIFIERS) or (n > 1 and gram[-1].isdigit())
                )
                if not last_ok or not _content(gram[0]):
                    continue
                if n > 1 and not all(re.search(r"[A-Za-z0-9]", w) for w in gram):
                    continue
                key = " ".join(_fold(w) for w in gram)
                spellings[key][" ".join(gram)] += 1
                jargon[key] = jargon.get(key, False) or any(_jargon(w) for w in gram)
                seen.add(key)
        df.update(seen)
    return df, spellings, jargon


MISHEARD_RATIO = 0.8  # difflib ratio above which two spellings of one word slot count as one word misheard


def merge_misheard(df: Counter[str], spellings: dict[str, Counter[str]]) -> None:
    """Fold phrases that differ in one word Whisper heard two ways ("prefix caching" / "prefix catching").

    Only multi-word phrases, so the words around the slot vouch for it; the more frequent spelling
    keeps the counts (in place).
    """
    import difflib

    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for key in df:
        words = key.split()
        if len(words) < 2:
            continue
        for i in range(len(words)):
            groups[(" ".join(words[:i] + ["*"] + words[i + 1 :]), i)].append(key)
    for (_, i), keys in groups.items():
        keys = sorted(keys, key=lambda k: -df[k])
        for a_idx, a in enumerate(keys):
            if a not in df:
                continue
            for b in keys[a_idx + 1 :]:
                if b in df and difflib.SequenceMatcher(None, a.split()[i], b.split()[i]).ratio() >= MISHEARD_RATIO:
                    df[a] += df.pop(b)
                    spellings[a].update(spellings.pop(b, Counter()))


@dataclasses.dataclass(frozen=True)
class DomainTerms:
    """In how many talks of the user's domain each phrase occurs (the gold set's transcripts).

    "GPU", "token" and "memory" come up in nearly every talk about AI systems: said often in
    one talk, they are still not what that talk is about. A phrase's specificity is its
    inverse document frequency over these talks, softened (square root) and 1 for phrases
    the domain has not seen.
    """

    talks: int
    df: dict[str, int]

    def specificity(self, key: str) -> float:
        if not self.talks:
            return 1.0
        idf = math.log((self.talks + 1) / (self.df.get(key, 0) + 1)) / math.log(self.talks + 1)
        return math.sqrt(max(idf, 0.0))


DOMAIN_FILE = "domain_terms.json"


@functools.lru_cache(maxsize=1)
def domain_terms() -> DomainTerms:
    """The shipped background counts (``scripts/build_domain_terms.py``); none when the file is absent."""
    import importlib.resources
    import json

    try:
        data = json.loads(
            importlib.resources.files("ramble2post.structure").joinpath(DOMAIN_FILE).read_text(encoding="utf-8")
        )
    except (FileNotFoundError, OSError, ValueError):
        return DomainTerms(0, {})
    return DomainTerms(int(data["talks"]), {str(k): int(v) for k, v in data["df"].items()})


def keyphrases(sentences: Sequence[str], *, top: int = 5) -> list[Keyphrase]:
    """The ``top`` key phrases of a talk, best first (fewer when the talk repeats little).

    A phrase the speaker names as the subject ("today I want to talk about X") is what
    the talk is about even when Whisper misheard some of its other mentions: it scores
    ``1 + SUBJECT_BOOST`` times more.
    """
    subject = " ".join(
        " " + " ".join(_fold(w) for w in _words(m.group(1) or m.group(2) or "")) + " "
        for sentence in sentences
        for m in SUBJECT.finditer(sentence)
    )
    df, spellings, jargon = candidates(sentences)
    merge_misheard(df, spellings)
    background = domain_terms()
    scored = []
    for key, count in df.items():
        if count < MIN_SENTENCES:
            continue
        n = key.count(" ") + 1
        words = _spelling(spellings[key]).split()
        rare = 1.0 if any(c.isdigit() for c in key) else phrase_rarity(words) ** RARITY_POWER
        score = count * rare * (1 + LENGTH_BONUS * (n - 1)) * (JARGON_BONUS if jargon[key] else 1.0)
        score *= 1 + SUBJECT_BOOST * _said(key, subject)
        score *= background.specificity(key)
        scored.append((score, key))
    scored.sort(key=lambda x: (-x[0], x[1]))
    chosen: list[Keyphrase] = []
    for score, key in scored:
        if any(_inside(key, c.key) or (_inside(c.key, key) and df[key] < SUBSUME_SHARE * c.sentences) for c in chosen):
            continue  # a piece of a chosen phrase, or a longer phrase whose shorter part was chosen
        # a longer phrase that carries most uses of a chosen shorter one replaces it
        for k, c in enumerate(chosen):
            if _inside(c.key, key) and df[key] >= SUBSUME_SHARE * c.sentences:
                chosen[k] = Keyphrase(
                    _spelling(spellings[key]), key, df[key], max(score, c.score), c.subject or _said(key, subject)
                )
                break
        else:
            chosen.append(Keyphrase(_spelling(spellings[key]), key, df[key], score, _said(key, subject)))
        if len(chosen) >= top:
            break
    structure = enumerated(sentences)
    if structure is not None:  # what the talk is organised around leads, like a named subject
        best = max((c.score for c in chosen), default=1.0)
        rest = [c for c in chosen if not (_inside(structure.key, c.key) or c.key == structure.key)]
        chosen = [dataclasses.replace(structure, score=best * (1 + SUBJECT_BOOST)), *rest][:top]
    return chosen


def enumerated(sentences: Sequence[str]) -> Keyphrase | None:
    """The thing a talk enumerates as its structure ("three layers"), in the speaker's words, or None.

    Needs both: the parts named with ``ENUM_ORDINALS`` distinct ordinals ("the first layer",
    "the second layer", "the third layer") and the speaker counting them ("three layers").
    """
    ordinals: dict[str, set[str]] = defaultdict(set)
    counted: dict[str, Counter[str]] = defaultdict(Counter)
    for sentence in sentences:
        for m in ORDINAL.finditer(sentence):
            ordinals[_fold(m.group(2))].add(m.group(1).lower())
        for m in COUNTED.finditer(sentence):
            noun = m.group(2)
            if noun.lower().endswith("s") and noun.lower() not in GENERIC:
                counted[_fold(noun)][m.group(1)] += 1
    found = [key for key, ords in ordinals.items() if len(ords) >= ENUM_ORDINALS and counted.get(key)]
    if not found:
        return None
    key = max(found, key=lambda k: (len(ordinals[k]), sum(counted[k].values())))
    uses = sum(1 for s in sentences if f" {key} " in " " + " ".join(_fold(w) for w in _words(s)) + " ")
    return Keyphrase(_spelling(counted[key]).lower(), key, uses, 0.0, subject=True)


def _said(key: str, text: str) -> bool:
    return f" {key} " in text


def topic_phrases(phrases: Sequence[Keyphrase], top: int = 2) -> list[Keyphrase]:
    """What layer 1 and the title must name: the phrases named as the subject, else the ``top`` best."""
    return [p for p in phrases if p.subject] or list(phrases[:top])


def _inside(short: str, long: str) -> bool:
    return short != long and f" {short} " in f" {long} "


def _spelling(forms: Counter[str]) -> str:
    return forms.most_common(1)[0][0]


def names_phrase(text: str, phrases: Sequence[Keyphrase], *, misheard: bool = False) -> bool:
    """True when ``text`` contains one of ``phrases`` as whole words.

    misheard: also when a multi-word phrase is there with one word spelled as Whisper misheard
    it (difflib ratio >= MISHEARD_RATIO): a model writes "prefix caching" where the talk's
    key phrase is "prefix catching".
    """
    folded = [_fold(w) for w in _words(text)]
    flat = " " + " ".join(folded) + " "
    if any(f" {p.key} " in flat for p in phrases):
        return True
    if not misheard:
        return False
    import difflib

    for p in phrases:
        key = p.key.split()
        if len(key) < 2:
            continue
        for i in range(len(folded) - len(key) + 1):
            window = folded[i : i + len(key)]
            off = [k for k, (a, b) in enumerate(zip(key, window)) if a != b]
            if len(off) == 1 and difflib.SequenceMatcher(None, key[off[0]], window[off[0]]).ratio() >= MISHEARD_RATIO:
                return True
    return False


def _title_words(text: str) -> set[str]:
    return {_fold(w) for w in re.split(r"[\s./_-]+", text.lower()) if w}


def keyphrase_title(phrases: Sequence[Keyphrase]) -> str | None:
    """A title from the top key phrases in the speaker's spelling: "KV cache and attention heads"."""
    if not phrases:
        return None
    parts = [phrases[0].text]
    for p in phrases[1:]:
        if len(parts) >= TITLE_PHRASES:
            break
        # words split at dots and hyphens too: "torch.compile" repeats "compile" ("Compile and torch.compile" was
        # the title of an unseen ramble at stop 39)
        if not _title_words(p.key) & _title_words(" ".join(parts)):
            parts.append(p.text)
    title = " and ".join(parts)
    return title[:1].upper() + title[1:]
