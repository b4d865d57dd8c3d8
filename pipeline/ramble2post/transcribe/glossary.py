"""Jargon glossary: spell the user's domain terms right after decoding, and say where.

Whisper writes "KV cache" as "kv cash", "int8" as "int 8", "LoRA" as "Laura", "all-reduce" as
"all reduce". Each glossary term has its canonical spelling and optional variants (how
Whisper mishears it). A run of 1-4 words of a segment is replaced by the term when

1. **squashed** (lower case, letters and digits only) it equals the term's squashed
   spelling: "int 8", "kv-cache", "MI 300", "roof line", "llama cpp" (no variants needed), or
2. squashed it equals one of the term's variants: "kv cash", "Laura", "torch dot compile", or
3. **sounds alike** (``sounds_alike``): the term is said in three or more words ("torch dot
   compile", "llama dot cpp": a dot or hyphen in the spelling is said as a word) and the run has
   them all, one word apart, which sounds like the missing one (Metaphone codes at most one
   letter apart): "Torch, not compile". At least two of the heard words are the term's own and
   not function words, and the odd word is a plain lower-case word of 2+ sound letters, never an
   acronym or a number Whisper chose to write ("CPU cache" stays). A run said in two or more
   words may also be split by commas ("MLX, LM"), where Whisper heard a pause, unless a
   capitalised word follows it ("MLX, LM Studio" names two tools).

4. **a letter heard as its rhyme**: one word that spells a term with one letter swapped for a letter
   whose spoken name rhymes with it ("FB16", "fd16" -> FP16, "VF16" -> BF16, "FB8" -> FP8), the
   classic confusion sets of spoken letter names (the "E-set" b c d e g p t v z; a j k; f s x; m n;
   i y; q u). Only one term may fit, and the word must carry a digit ("FD8"), or be written in
   capitals where the same transcript also has the term itself ("TQA" for GQA, once "GQA" was heard
   right elsewhere): a capitalised word alone may be another acronym ("VQA").
5. **a count glued to a term**: Whisper writes "on one H100" as "1H100" and "eight H100s" as
   "8H100s": the number and the term are split ("1 H100"), where the rest is a term that starts with a
   letter.

Rules 1 and 2 join words only across spaces and hyphens (never across a comma or a full stop);
rule 3 also across commas, never across a full stop. The longest match wins, and a word that differs from an all-lower-case term only in its case is
left alone (a capital at the start of a sentence is kept). Every replacement is recorded
(original words, term, segment time) so that a reader can see and undo it.

User terms come from the config file (``glossary``: a list of terms, or a table
term -> list of variants) and are added to the built-in ones.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jellyfish

# canonical spelling -> variants seen from Whisper (base / tiny.en) on synthetic and real rambles.
# Plain spacing/hyphen/case differences need no variant (rule 1 above).
BUILTIN_TERMS: dict[str, tuple[str, ...]] = {
    "KV cache": ("kv cash", "kv cashe", "cavey cache", "kay vee cache"),
    "KV caches": ("kv cashes",),
    "int8": ("int eight",),  # not "in 8": "fits in 8 GB"
    "int4": ("int four",),
    "FP16": ("fp sixteen", "f p sixteen"),
    "BF16": ("bf sixteen", "b f sixteen", "bee f 16"),
    "FP8": ("fp eight", "f p eight"),
    "FP32": ("fp thirty two",),
    "LoRA": ("laura", "lora", "lorra"),
    "QLoRA": ("q laura", "cue laura", "q lora"),
    "HBM": ("h b m",),
    "SRAM": ("shram", "s ram"),
    "MLX": ("m l x",),
    "MLX-LM": ("mlx lm",),
    "tinygrad": ("tiny grad",),
    "llama.cpp": ("llama dot cpp", "llama c p p", "lama cpp", "llama cpp"),
    "vLLM": ("v llm", "v l l m", "vee llm"),
    "GQA": ("g q a",),
    "MQA": ("m q a",),
    "MoE": (),
    "tensor cores": ("tenser cores", "tensor course"),
    "roofline": ("roof line",),
    "MI300": ("mi three hundred", "m i 300"),
    "MI300X": ("mi 300 x",),
    "H100": ("h hundred",),
    "H200": (),
    "A100": (),
    "B200": (),
    "batching": (),
    "all-reduce": (),
    "all-reduces": (),
    "prefill": (),
    "NVLink": ("nv link", "envy link"),
    "torch.compile": ("torch dot compile",),
    "PyTorch": ("pie torch",),
    "softmax": (),
    # not FlashAttention: "flash attention" is as common a spelling, and a right one
    "GGUF": ("g g u f",),
    "CUDA": (),
    "GEMM": (),
    "TFLOPS": (),
    "quantization": ("quantination",),
}

MAX_WORDS = 4  # longest run of words joined into one term
_WORD = re.compile(r"\w+(?:[.'-]\w+)*")
_JOINERS = re.compile(r"[\s-]*")  # what may stand between the words of one match
_SPOKEN_JOINERS = re.compile(r"[\s,-]*")  # rule 3: Whisper writes a pause inside a term as a comma
# "a 100% utilization", "a 100 times faster", "A 100 tokens": the article and a number, not the A100 GPU
_UNIT_AFTER = re.compile(
    r"\s?(?:%|percent\b|times\b|x\b|fold\b|tokens?\b|seconds?\b|ms\b|milliseconds?\b|minutes?\b|hours?\b"
    r"|steps?\b|users?\b|requests?\b|people\b|bytes?\b|[kmgt]b\b|gigs?\b|gigabytes?\b|megabytes?\b|billion\b|million\b)",
    re.I,
)


def _article_and_number(text: str, run: Sequence[re.Match[str]]) -> bool:
    """True when ``run`` is the article "a" and a number ("a 100"), said as a quantity: lower case, or
    followed by a unit ("A 100 tokens"). Squashed, it spells a GPU ("A100"), which nobody said."""
    if len(run) != 2 or run[0].group().lower() != "a" or not run[1].group().isdigit():
        return False
    return run[0].group() == "a" or bool(_UNIT_AFTER.match(text, run[-1].end()))


# rule 4: letters whose spoken names rhyme (the "E-set" of speech recognition: bee, cee, dee, ...), so that one
# is heard for another; a word is corrected when swapping one letter within a set gives exactly one term
RHYMING_LETTERS = ("bcdegptvz", "ajk", "fsx", "mn", "iy", "qu")
_RHYME = {c: k for k, group in enumerate(RHYMING_LETTERS) for c in group}
# rule 5: a count written against a term ("8H100s"): the digits, the term's letters and digits, a plural "s"
_GLUED = re.compile(r"(\d+)([a-z][a-z0-9]*?)(s?)", re.I)

# rule 3's odd word may sound at most this many Metaphone letters away from the word it stands for
SOUND_DISTANCE = 1
# function words never count as the term's own heard words ("they all produce" is not all-reduce)
FUNCTION_WORDS = frozenset(
    "a an and are as at be but by do for from has have i in is it its me my no not of on or so "
    "that the them then there they this to up us was we were what when will with you all".split()
)


def squash(text: str) -> str:
    """Lower case, letters and digits only: "KV-cache" -> "kvcache", "llama.cpp" -> "llamacpp"."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


@dataclasses.dataclass(frozen=True)
class Glossary:
    """Canonical terms by the squashed spellings that map to them."""

    lookup: Mapping[str, str]  # squashed spelling or variant -> canonical term
    terms: tuple[str, ...] = ()  # canonical spellings
    # rule 3: (spoken words, squashed, canonical term) for each spelling said in 2+ words
    spoken: tuple[tuple[tuple[str, ...], str], ...] = ()
    # rule 3's candidates: a squashed word -> the spoken forms having it first or second (a match has one of
    # its first two words right: all but one word are), so that a position is checked against a few forms
    spoken_index: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    sounds_alike: bool = True  # rule 3 on (the benchmark turns it off to compare)
    # rule 4: a squashed word one rhyming letter away from exactly one term -> that term
    rhymes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(
        cls, *, terms: Mapping[str, Sequence[str]] | None = None, builtin: bool = True, sounds_alike: bool = True
    ) -> Glossary:
        """Built-in terms (unless ``builtin`` is False) plus ``terms`` (canonical -> variants).

        sounds_alike: also correct runs that sound like a term said in three or more words (rule 3).
        """
        lookup: dict[str, str] = {}
        spoken: dict[tuple[str, ...], str] = {}
        merged: dict[str, tuple[str, ...]] = dict(BUILTIN_TERMS) if builtin else {}
        for term, variants in (terms or {}).items():
            merged[term] = tuple(merged.get(term, ())) + tuple(variants)
        for term, variants in merged.items():
            for spelling in (term, *variants):
                key = squash(spelling)
                if key:
                    lookup[key] = term
                words = spoken_words(spelling)
                if len(words) >= 2:
                    spoken.setdefault(words, term)
        forms = tuple(spoken.items())
        index: dict[str, list[int]] = {}
        for k, (words, _) in enumerate(forms):
            for w in dict.fromkeys(words[:2]):
                index.setdefault(w, []).append(k)
        return cls(
            lookup=lookup,
            rhymes=_rhymes(merged, lookup) if sounds_alike else {},
            terms=tuple(merged),
            spoken=forms,
            spoken_index={w: tuple(ks) for w, ks in index.items()},
            sounds_alike=sounds_alike,
        )


def _rhymes(terms: Iterable[str], lookup: Mapping[str, str]) -> dict[str, str]:
    """Rule 4's table: every one-letter swap within ``RHYMING_LETTERS`` of a one-word term written with a
    capital or a digit ("FP16", "GQA", "int8"; a plain word such as "batching" would turn "patching" into
    it), that is no spelling of its own; a swap two terms share is left out."""
    out: dict[str, str | None] = {}
    for term in terms:
        key = squash(term)
        if " " in term or term == term.lower() and not any(c.isdigit() for c in term):
            continue
        for k, c in enumerate(key):
            if c not in _RHYME:
                continue
            for d in RHYMING_LETTERS[_RHYME[c]]:
                swapped = key[:k] + d + key[k + 1 :]
                if d == c or swapped in lookup:
                    continue
                out[swapped] = term if out.get(swapped, term) == term else None
    return {k: v for k, v in out.items() if v is not None}


def _single_word(word: str, glossary: Glossary, heard: frozenset[str]) -> str | None:
    """Rules 4 and 5 on one word: what it should be written as, or None."""
    glued = _GLUED.fullmatch(word)
    if glued:  # "1H100" -> "1 H100", "8H100s" -> "8 H100s"
        term = glossary.lookup.get(squash(glued.group(2)))
        if term is not None and term[0].isalpha():
            return f"{glued.group(1)} {term}{glued.group(3)}"
    term = glossary.rhymes.get(squash(word))
    if term is None or squash(word[:-1]) in glossary.lookup and word[-1] in "sS":
        return None  # "MI300s" is the plural of MI300, not MI300X
    has_digit = any(c.isdigit() for c in word)
    if has_digit or (word.isupper() and len(word) >= 3 and term in heard):
        return term
    return None


def terms_heard(text: str, glossary: Glossary) -> frozenset[str]:
    """The glossary's terms written exactly (case included) somewhere in ``text``: rule 4's evidence."""
    return frozenset(t for t in glossary.terms if re.search(r"(?<![\w.-])" + re.escape(t) + r"(?![\w]|[.-]\w)", text))


def spoken_words(spelling: str) -> tuple[str, ...]:
    """How a spelling is said, word by word, squashed: "torch.compile" -> ("torch", "dot", "compile").

    A dot between letters is said "dot"; hyphens and spaces separate words ("MLX-LM" -> mlx, lm).
    """
    said = re.sub(r"(?<=[A-Za-z])\.(?=[A-Za-z])", " dot ", spelling)
    return tuple(w for w in (squash(x) for x in re.split(r"[\s-]+", said)) if w)


@functools.lru_cache(maxsize=4096)
def _sound(word: str) -> str:
    """Metaphone code of a squashed word ("compile" -> "KMPL"); digits have none."""
    return jellyfish.metaphone(word) if word.isalpha() else ""


def _sounds_like(heard: str, said: str) -> bool:
    """Rule 3's odd word: a plain lower-case word whose Metaphone code is within SOUND_DISTANCE of ``said``'s."""
    if not heard.isalpha() or heard != heard.lower():  # "CPU", "M1", "H100": Whisper chose to write them
        return False
    a, b = _sound(heard), _sound(said)
    return min(len(a), len(b)) >= 2 and jellyfish.levenshtein_distance(a, b) <= SOUND_DISTANCE


def _spoken_match(text: str, words: Sequence[re.Match[str]], i: int, glossary: Glossary) -> tuple[int, str] | None:
    """Rule 3 at word ``i``: (number of words, term) of the longest spoken form heard there, or None."""
    best: tuple[int, str] | None = None
    near = {squash(w.group()) for w in words[i : i + 2]}
    candidates = sorted({k for w in near for k in glossary.spoken_index.get(w, ())})
    for form, term in (glossary.spoken[k] for k in candidates):
        n = len(form)
        if i + n > len(words) or (best is not None and n <= best[0]):
            continue
        run = words[i : i + n]
        if any(not _SPOKEN_JOINERS.fullmatch(text[a.end() : b.start()]) for a, b in zip(run, run[1:])):
            continue
        nxt = words[i + n] if i + n < len(words) else None
        if nxt is not None and nxt.group()[0].isupper() and not text[run[-1].end() : nxt.start()].strip():
            continue  # the last word starts a longer name: "MLX, LM Studio"
        heard = [w.group() for w in run]
        same = [squash(h) == f for h, f in zip(heard, form)]
        if all(same):  # every word heard, split by a comma: "MLX, LM"
            best = (n, term)
            continue
        odd = [k for k, s in enumerate(same) if not s]
        own = [f for f, s in zip(form, same) if s and f not in FUNCTION_WORDS and len(f) > 1]
        if n >= 3 and len(odd) == 1 and len(own) >= 2 and _sounds_like(heard[odd[0]], form[odd[0]]):
            best = (n, term)
    return best


# Terms left out of the initial prompt: plurals and sub-models of a listed term (one spelling per term)
PROMPT_SKIP = frozenset({"KV caches", "all-reduces", "MI300", "MLX-LM"})
PROMPT_LEAD = "A talk about GPUs and LLM inference: "  # wording chosen on 4 gold rambles (docs/PERFORMANCE.md)


def jargon_prompt(extra: Sequence[str] = (), *, builtin: bool = True) -> str:
    """Whisper's initial prompt that biases the decoder toward the domain's terms: the built-in terms (less
    ``PROMPT_SKIP``) and ``extra`` (the user's glossary terms) in one sentence, ~100 tokens for the built-in
    ones ("A talk about GPUs and LLM inference: KV cache, int8, ... and quantization.")."""
    terms = [t for t in BUILTIN_TERMS if t not in PROMPT_SKIP] if builtin else []
    terms += [t for t in extra if t not in terms]
    if not terms:
        return ""
    listed = ", ".join(terms[:-1]) + f" and {terms[-1]}" if len(terms) > 1 else terms[0]
    return PROMPT_LEAD + listed + "."


def user_terms(value: Any) -> dict[str, tuple[str, ...]]:
    """The config file's ``glossary``: a list of terms, or a table term -> variants (or one variant)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {value: ()}
    if isinstance(value, Mapping):
        return {str(k): (v,) if isinstance(v, str) else tuple(str(x) for x in v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return {str(t): () for t in value}
    raise TypeError(f"glossary must be a list of terms or a table term -> variants, not {type(value).__name__}")


def glossary_setting(conf: Any) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """``TranscribeOptions.glossary`` from the settings: None when ``use_glossary`` is false.

    conf: ``ramble2post.config.Settings`` (its ``glossary`` and ``use_glossary`` keys).
    """
    from ramble2post.errors import InputError

    if not getattr(conf, "use_glossary", True):
        return None
    try:
        return tuple(user_terms(getattr(conf, "glossary", None)).items())
    except TypeError as e:
        raise InputError(f"config file: {e}", hint='glossary = ["Groq"] or [glossary] Groq = ["grok"]') from e


def prompt_setting(conf: Any) -> str | None:
    """``TranscribeOptions.prompt`` from the settings: the jargon prompt (built-in terms and the user's glossary
    terms) when ``jargon_prompt`` is on, else None.

    conf: ``ramble2post.config.Settings`` (its ``jargon_prompt``, ``glossary`` and ``use_glossary`` keys).
    """
    if not getattr(conf, "jargon_prompt", False):
        return None
    user = glossary_setting(conf) or ()
    return jargon_prompt([term for term, _ in user]) or None


def correct_text(
    text: str, glossary: Glossary, *, heard: frozenset[str] = frozenset()
) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with glossary terms spelled right, and the (original, term) pairs replaced.

    heard: terms written right elsewhere in the same transcript (``terms_heard``): rule 4 may then also
        correct a capitalised word without a digit to one of them.
    """
    words = list(_WORD.finditer(text))
    out: list[str] = []
    done: list[tuple[str, str]] = []
    pos = 0
    i = 0
    while i < len(words):
        hit: tuple[int, str | None] | None = None
        for n in range(min(MAX_WORDS, len(words) - i), 0, -1):
            run = words[i : i + n]
            if any(not _JOINERS.fullmatch(text[a.end() : b.start()]) for a, b in zip(run, run[1:])):
                continue
            term = glossary.lookup.get(squash("".join(w.group() for w in run)))
            if term is None or _article_and_number(text, run):
                continue
            original = text[run[0].start() : run[-1].end()]
            if original == term or (term == term.lower() and original.lower() == term):
                hit = (n, None)  # already right (or only a sentence capital): keep, skip these words
            else:
                hit = (n, term)
            break
        found = _spoken_match(text, words, i, glossary) if glossary.sounds_alike else None
        if found is not None and (hit is None or found[0] > hit[0]):  # the longest match wins
            n, term = found
            hit = (n, None if text[words[i].start() : words[i + n - 1].end()] == term else term)
        if hit is None and glossary.rhymes:  # rules 4 and 5: one word
            fixed = _single_word(words[i].group(), glossary, heard)
            if fixed is not None:
                hit = (1, fixed)
        if hit is None:
            i += 1
            continue
        n, term = hit
        run = words[i : i + n]
        if term is not None:
            original = text[run[0].start() : run[-1].end()]
            out.append(text[pos : run[0].start()])
            out.append(term)
            pos = run[-1].end()
            done.append((original, term))
        i += n
    out.append(text[pos:])
    return "".join(out), done


def term_counts(text: str, terms: Sequence[str]) -> dict[str, int]:
    """Occurrences of each term in ``text``: case-insensitive, whole words ("KV cache" in "kv cache,")."""
    low = text.lower()
    return {t: len(re.findall(r"(?<![\w.-])" + re.escape(t.lower()) + r"(?![\w]|[.-]\w)", low)) for t in terms}


def correct_segments(
    segments: Sequence[dict[str, Any]], glossary: Glossary
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Segments with terms corrected, and one record per correction (original, corrected, start, end, segment)."""
    fixed: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    heard = terms_heard(" ".join(str(seg["text"]) for seg in segments), glossary)
    for k, seg in enumerate(segments):
        text, done = correct_text(seg["text"], glossary, heard=heard)
        fixed.append({**seg, "text": text})
        for original, term in done:
            records.append(
                {"original": original, "corrected": term, "start": seg["start"], "end": seg["end"], "segment": k}
            )
    return fixed, records
