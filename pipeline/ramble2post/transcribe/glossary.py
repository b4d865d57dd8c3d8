"""Jargon glossary: spell the user's domain terms right after decoding, and say where.

Whisper writes "KV cache" as "kv cash", "int8" as "int 8", "LoRA" as "Laura", "all-reduce" as
"all reduce". Each glossary term has its canonical spelling and optional variants (how
Whisper mishears it). A run of 1-4 words of a segment is replaced by the term when

1. **squashed** (lower case, letters and digits only) it equals the term's squashed
   spelling: "int 8", "kv-cache", "MI 300", "roof line", "llama cpp" (no variants needed), or
2. squashed it equals one of the term's variants: "kv cash", "Laura", "torch dot compile".

Words are joined only across spaces and hyphens (never across a comma or a full stop), the
longest match wins, and a word that differs from an all-lower-case term only in its case is
left alone (a capital at the start of a sentence is kept). Every replacement is recorded
(original words, term, segment time) so that a reader can see and undo it.

User terms come from the config file (``glossary``: a list of terms, or a table
term -> list of variants) and are added to the built-in ones.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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


def squash(text: str) -> str:
    """Lower case, letters and digits only: "KV-cache" -> "kvcache", "llama.cpp" -> "llamacpp"."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


@dataclasses.dataclass(frozen=True)
class Glossary:
    """Canonical terms by the squashed spellings that map to them."""

    lookup: Mapping[str, str]  # squashed spelling or variant -> canonical term
    terms: tuple[str, ...] = ()  # canonical spellings

    @classmethod
    def build(cls, *, terms: Mapping[str, Sequence[str]] | None = None, builtin: bool = True) -> Glossary:
        """Built-in terms (unless ``builtin`` is False) plus ``terms`` (canonical -> variants)."""
        lookup: dict[str, str] = {}
        merged: dict[str, tuple[str, ...]] = dict(BUILTIN_TERMS) if builtin else {}
        for term, variants in (terms or {}).items():
            merged[term] = tuple(merged.get(term, ())) + tuple(variants)
        for term, variants in merged.items():
            for spelling in (term, *variants):
                key = squash(spelling)
                if key:
                    lookup[key] = term
        return cls(lookup=lookup, terms=tuple(merged))


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


def correct_text(text: str, glossary: Glossary) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with glossary terms spelled right, and the (original, term) pairs replaced."""
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
            if term is None:
                continue
            original = text[run[0].start() : run[-1].end()]
            if original == term or (term == term.lower() and original.lower() == term):
                hit = (n, None)  # already right (or only a sentence capital): keep, skip these words
            else:
                hit = (n, term)
            break
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
    for k, seg in enumerate(segments):
        text, done = correct_text(seg["text"], glossary)
        fixed.append({**seg, "text": text})
        for original, term in done:
            records.append(
                {"original": original, "corrected": term, "start": seg["start"], "end": seg["end"], "segment": k}
            )
    return fixed, records
