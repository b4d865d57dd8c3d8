"""The structure stage: transcript JSON -> Post JSON in the three-layer format.

Hybrid and grounded, so that a tiny offline model cannot make the post dishonest
and a capable model makes it better:

1. clean the transcript deterministically into numbered sentences (``clean``);
2. choose the speaker's sentences for each role with cue phrases + embeddings
   (``select``) - this alone yields a complete, faithful post (``--llm none``);
3. ask the LLM short, grammar-constrained questions over a shared transcript
   prefix (KV cache reused): re-rank each role's top candidates, rewrite each
   item briefly, title (<= 12 words) and tags (closed list);
4. verify every model output against its sources (``verify``) and fall back to
   the speaker's words when it fails.

Cached by (transcript hash, model sha256, prompt versions and hashes, code version).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ramble2post.cache import StageCache, stable_key
from ramble2post.config import DEFAULT_LLM
from ramble2post.errors import InputError, LLMOutputError
from ramble2post.records import Transcript
from ramble2post.structure.clean import Sentence, clean_segments
from ramble2post.structure.llm import LLM, LLMInfo, load_llm, registered, resolve_gguf, sha256_of
from ramble2post.structure.prompts import Prompt, load_prompts, versions
from ramble2post.structure.select import ROLES, Selection, select_roles
from ramble2post.structure.titles import salient_title, sentence_case, speaker_title, trim_title
from ramble2post.structure.verify import (
    embedding_cosine,
    is_verbatim,
    lexical_overlap,
    merge_counts,
    problems,
    verify_items,
)

SCHEMA_VERSION = 1
STRUCTURE_VERSION = 3  # bump when the algorithm changes: part of the cache key
TITLE_FOCUS_MIN = 0.4  # share of a model title's content words that must come from layer 1
MAX_TAGS = 4
REWRITE_WORDS = {"focus": 50, "reason": 40, "example": 45, "analogy": 35, "connections": 40, "tradeoffs": 40}
TOKENS_PER_WORD = 1.6  # generous: caps max_tokens of a rewrite
SECTION_RESERVE = 1024  # tokens kept free in the context for a question and its answer
DESCRIPTION_CHARS = 200  # characters
FULL_CONTEXT_MAX_TOKENS = 2048  # tokens; longer transcripts use excerpts on CPU (prompt eval dominates)
LLM_BUDGET_S = 200.0  # s of LLM questions per transcript (keeps a post under 5 min on 2 cores)

Progress = Callable[[str], None]


# ---------------------------------------------------------------- schema
class Item(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(min_length=1)
    origin: str = Field(pattern="^(speaker|model)$")
    sources: list[int] = Field(min_length=1)
    verified: bool
    note: str | None = None


class Title(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(min_length=1)
    origin: str = Field(pattern="^(speaker|model)$")
    sources: list[int]


class Layers(BaseModel):
    focus: list[Item] = Field(min_length=1)
    reason: list[Item] = Field(min_length=1)
    example: list[Item] = Field(min_length=1)
    analogy: list[Item] = Field(min_length=1)
    connections: list[Item] = Field(min_length=1)
    tradeoffs: list[Item] = Field(min_length=1)


class SentenceRec(BaseModel):
    id: int
    text: str
    segments: list[int]
    start: float
    end: float


class Verification(BaseModel):
    model_config = ConfigDict(extra="allow")
    items: int
    passed: int
    repaired: int
    replaced: int
    flagged: int
    details: list[Any]


class Post(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    transcript_sha256: str
    audio_sha256: str
    title: Title
    description: str
    tags: list[str]
    layers: Layers
    sentences: list[SentenceRec]
    verification: Verification
    llm: dict[str, Any] | None
    prompts: dict[str, str]
    timing: dict[str, Any]


def validate_post(d: dict[str, Any]) -> Post:
    """Validate Post JSON: shape, non-empty layers, and every source segment id existing."""
    try:
        post = Post.model_validate(d)
    except ValidationError as e:
        raise InputError(f"post JSON is not valid: {e.error_count()} problems: {e.errors()[:3]}") from e
    seg_ids = {s for sent in post.sentences for s in sent.segments}
    bad = [
        (role, i) for role in ROLES for i, it in enumerate(getattr(post.layers, role)) if not set(it.sources) <= seg_ids
    ]
    if bad:
        raise InputError(f"post items cite unknown segments: {bad}")
    return post


# ---------------------------------------------------------------- helpers
def _model_key(spec: str) -> dict[str, str]:
    """Cheap identity of the model for the cache key (no weights loaded)."""
    if spec in ("none", "") or registered(spec) or spec.startswith("hf:"):
        return {"llm": spec}
    _name, path, _src, expected = resolve_gguf(spec)
    return {"llm": spec, "sha256": expected or sha256_of(path)}


def _lines(sents: list[Sentence]) -> str:
    return "\n".join(f"[{s.id}] {s.text}" for s in sents)


def make_sections(sentences: list[Sentence], *, count: Callable[[str], int], budget: int) -> list[list[Sentence]]:
    """Consecutive groups of sentences whose numbered lines fit ``budget`` tokens each."""
    sections: list[list[Sentence]] = [[]]
    used = 0
    for s in sentences:
        n = count(f"[{s.id}] {s.text}\n")
        if sections[-1] and used + n > budget:
            sections.append([])
            used = 0
        sections[-1].append(s)
        used += n
    return sections


def salvage_text(answer: str, key: str) -> str:
    """The string field of a JSON answer; if max_tokens cut it off, its complete sentences.

    A leading list marker ("1. ", "- ") is dropped: it is formatting, not content.
    """
    try:
        return re.sub(r"^\s*(\d+[.)]|[-*•])\s+", "", str(json.loads(answer)[key])).strip()
    except (json.JSONDecodeError, KeyError, TypeError):
        pass
    m = re.match(r'\s*\{\s*"' + re.escape(key) + r'"\s*:\s*"(.*)', answer, re.S)
    if not m:
        return ""
    body = m.group(1).replace('\\"', '"')
    cut = max(body.rfind(". "), body.rfind("! "), body.rfind("? "), body.rfind("."))
    return body[: cut + 1].strip() if cut > 0 else ""


def _parse(answer: str, key: str) -> Any:
    try:
        return json.loads(answer)[key]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise LLMOutputError(f"unparseable answer {answer[:80]!r}") from e


def _keyword_tags(tag_list: dict[str, str], text: str) -> list[str]:
    low = text.lower()
    hits = []
    for tag, kws in tag_list.items():
        n = sum(low.count(k.strip().lower()) for k in kws.split(",") if k.strip())
        if n:
            hits.append((n, tag))
    return [t for _, t in sorted(hits, key=lambda x: (-x[0], x[1]))]


# ---------------------------------------------------------------- stage
class _Asker:
    """Runs questions against one section prefix at a time and totals token timings."""

    def __init__(self, llm: LLM, context: Prompt, sections: list[list[Sentence]], budget_s: float):
        self.llm, self.context, self.sections = llm, context, sections
        self.t0, self.budget_s = time.perf_counter(), budget_s
        self.where = {s.id: i for i, sec in enumerate(sections) for s in sec}
        self.stats = {
            "questions": 0,
            "prompt_tokens": 0,
            "reused_tokens": 0,
            "gen_tokens": 0,
            "prompt_s": 0.0,
            "gen_s": 0.0,
            "failures": 0,
        }
        self.log: list[dict[str, Any]] = []

    def over_budget(self) -> bool:
        return time.perf_counter() - self.t0 > self.budget_s

    def ask(self, step: str, sentence_id: int, question: str, schema: dict, max_tokens: int) -> str | None:
        prefix = self.context.render(sentences=_lines(self.sections[self.where.get(sentence_id, 0)]))
        try:
            a = self.llm.ask(prefix=prefix, question=question, schema=schema, max_tokens=max_tokens)
        except (LLMOutputError, RuntimeError) as e:
            # RuntimeError: llama.cpp failed (e.g. llama_decode error). The item keeps the
            # speaker's words, like any answer that fails verification; the error is logged.
            self.stats["failures"] += 1
            self.log.append({"step": step, "error": str(e)})
            return None
        st = self.stats
        st["questions"] += 1
        st["prompt_tokens"] += a.prompt_tokens
        st["reused_tokens"] += a.reused_tokens
        st["gen_tokens"] += a.gen_tokens
        st["prompt_s"] += a.prompt_s
        st["gen_s"] += a.gen_s
        self.log.append({"step": step, "answer": a.text[:300]})
        return a.text


def structure_transcript(
    *,
    transcript: Transcript,
    llm: str | None,
    prompts_dir=None,
    progress: Progress | None = None,
    use_cache: bool = True,
    reuse_prefix: bool = True,
    llm_budget_s: float | None = None,
    context: str = "auto",
) -> dict[str, Any]:
    """Structure a transcript into Post JSON (see module docstring).

    ``llm="none"`` skips the LLM. ``llm_budget_s`` (default ``LLM_BUDGET_S``) bounds the
    time spent asking: questions left when it is spent are skipped and their items keep
    the speaker's words (re-rank, title and tags come first, then rewrites by layer).
    ``context`` is the shared prefix the questions are asked over: ``full`` (the whole
    transcript, in sections if longer than the context window), ``excerpts`` (only the
    candidate sentences) or ``auto`` (full on a GPU or up to ``FULL_CONTEXT_MAX_TOKENS``).
    """
    if context not in ("auto", "full", "excerpts"):
        raise InputError(f"unknown context mode {context!r}", hint="use auto, full or excerpts")
    llm_budget_s = LLM_BUDGET_S if llm_budget_s is None else llm_budget_s
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    spec = (llm or DEFAULT_LLM).strip()
    prompts = load_prompts(prompts_dir)
    t_dict = transcript.to_dict()
    transcript_sha = stable_key(t_dict)
    key = stable_key(
        {
            "transcript": transcript_sha,
            "model": _model_key(spec),
            "version": STRUCTURE_VERSION,
            "llm_budget_s": llm_budget_s,
            "context": context,
            "prompts": {n: [p.version, p.sha256] for n, p in prompts.items()},
        }
    )
    cache = StageCache("structure")
    if use_cache and (hit := cache.get(key)) is not None:
        say("structure: cached result")
        return hit
    if not transcript.segments:
        raise InputError("the transcript has no segments", hint="transcribe a non-silent recording first")

    say("structure: cleaning transcript")
    t0 = time.perf_counter()
    sentences = clean_segments(transcript.segments)
    if not sentences:
        raise InputError("the transcript has no words after cleaning")
    by_id = {s.id: s for s in sentences}
    t_clean = time.perf_counter() - t0

    say(f"structure: selecting roles among {len(sentences)} sentences (embeddings)")
    t0 = time.perf_counter()
    sel: Selection = select_roles(sentences)
    chosen = {r: list(v) for r, v in sel.chosen.items()}
    t_select = time.perf_counter() - t0

    roles_desc = prompts["structure_roles"].entries()
    tag_list = prompts["structure_tags_list"].entries()
    model: LLM | None = None
    asker: _Asker | None = None
    t_load = 0.0
    mode = None
    if spec != "none":
        say(f"structure: loading LLM {spec}")
        t0 = time.perf_counter()
        model = load_llm(spec, reuse_prefix=reuse_prefix, system=prompts["structure_system"].text.strip())
        t_load = time.perf_counter() - t0
        budget = model.n_ctx - SECTION_RESERVE - model.count_tokens(prompts["structure_context"].text)
        context_sents = sentences
        full_tokens = model.count_tokens(_lines(sentences))
        mode = context
        if mode == "auto":
            mode = (
                "full" if getattr(model, "gpu_offload", False) or full_tokens <= FULL_CONTEXT_MAX_TOKENS else "excerpts"
            )
        if mode == "excerpts":  # only the sentences the questions are about, in transcript order
            keep = {sid for ids in sel.candidates.values() for sid in ids} | {
                sid for ids in chosen.values() for sid in ids
            }
            context_sents = [s for s in sentences if s.id in keep]
        sections = make_sections(context_sents, count=model.count_tokens, budget=budget)
        say(
            f"structure: LLM context = {mode} ({len(context_sents)} of {len(sentences)} sentences, "
            f"{full_tokens} tokens in full)"
        )
        asker = _Asker(model, prompts["structure_context"], sections, llm_budget_s)
        if len(sections) > 1:
            say(f"structure: transcript longer than the context: {len(sections)} sections")

    rerank_log: list[dict[str, Any]] = []
    if asker:
        say("structure: re-ranking candidates per role")
        used = {sid for ids in chosen.values() for sid in ids}
        for role in sorted(ROLES, key=lambda r: asker.where.get(sel.candidates[r][0], 0)):
            cands = [c for c in sel.candidates[role] if c == chosen[role][0] or c not in used]
            if len(cands) < 2 or asker.over_budget():
                continue
            q = prompts["structure_rerank"].render(
                role=role,
                role_description=roles_desc.get(role, role),
                candidates="\n".join(f"[{c}] {by_id[c].text}" for c in cands),
            )
            schema = {
                "type": "object",
                "properties": {"best": {"type": "integer", "enum": cands}},
                "required": ["best"],
            }
            ans = asker.ask(f"rerank:{role}", cands[0], q, schema, max_tokens=16)
            try:
                best = int(_parse(ans, "best")) if ans else None
            except (LLMOutputError, ValueError):
                best = None
            rerank_log.append({"role": role, "candidates": cands, "picked": best})
            if best in cands and best != chosen[role][0]:
                used.discard(chosen[role][0])
                chosen[role][0] = best
                used.add(best)

    def item_for(sid: int) -> dict[str, Any]:
        s = by_id[sid]
        return {
            "text": s.text,
            "origin": "speaker",
            "sources": list(s.segments),
            "verified": True,
            "note": None,
            "sentences": [sid],
            "speaker_text": s.text,
        }

    layers = {r: [item_for(sid) for sid in chosen[r]] for r in ROLES}
    cos = embedding_cosine()
    focus_src = " ".join(it["speaker_text"] for it in layers["focus"])
    focus_best = max(chosen["focus"], key=lambda k: sel.scores["focus"][k])
    all_text = " ".join(s.text for s in sentences)
    focus_ids = [sid for it in layers["focus"] for sid in it["sentences"]]
    cut = salient_title([by_id[sid].text for sid in focus_ids], talk=all_text)
    title_sid = focus_ids[cut[1]] if cut else focus_best
    title = {
        "text": cut[0] if cut else speaker_title(by_id[focus_best].text),
        "origin": "speaker",
        "sources": list(by_id[title_sid].segments),
    }
    # tags the post's own sentences support (the whole talk if they support fewer than two)
    post_text = " ".join(it["speaker_text"] for r in ROLES for it in layers[r])
    tags = _keyword_tags(tag_list, post_text)
    tags = (tags if len(tags) >= 2 else _keyword_tags(tag_list, all_text))[:MAX_TAGS]
    blocks: list[dict[str, Any]] = []
    if asker:
        say("structure: title and tags")
        first = layers["focus"][0]["sentences"][0]
        q = prompts["structure_title"].render(focus=focus_src)
        ans = asker.ask(
            "title",
            first,
            q,
            {"type": "object", "properties": {"title": {"type": "string", "maxLength": 90}}, "required": ["title"]},
            40,
        )
        try:
            cand = trim_title(str(_parse(ans, "title"))) if ans else ""
        except LLMOutputError:
            cand = ""
        tb: dict[str, Any] = {"items": 1, "passed": 0, "repaired": 0, "replaced": 0, "flagged": 0, "details": []}
        # grounded in the whole (cleaned) talk, so a summary title may use words from any part
        # of it; no embedding cosine: a title is too short for a meaningful one
        why = problems(sentence_case(cand), all_text) if cand else ["empty"]
        focus_overlap = lexical_overlap(cand, focus_src) if cand else 0.0
        if cand and focus_overlap < TITLE_FOCUS_MIN:  # ...but it must name what layer 1 is about
            why.append(f"overlap with layer 1 {focus_overlap:.2f} < {TITLE_FOCUS_MIN}")
        if not why:
            title = {
                "text": cand,
                "origin": "speaker" if is_verbatim(cand, all_text) else "model",
                "sources": sorted({s for it in layers["focus"] for s in it["sources"]}),
            }
            tb["passed"] = 1
        else:
            tb["replaced"] = 1
            tb["details"].append({"item": "title", "result": "replaced", "reasons": why, "model_text": cand})
        blocks.append(tb)
        q = prompts["structure_tags"].render(tags=", ".join(tag_list), focus=focus_src)
        ans = asker.ask(
            "tags",
            first,
            q,
            {
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"type": "string", "enum": list(tag_list)}, "maxItems": MAX_TAGS}
                },
                "required": ["tags"],
            },
            48,
        )
        try:
            picked = [t for t in _parse(ans, "tags") if t in tag_list] if ans else []
        except LLMOutputError:
            picked = []
        grounded = set(tags)
        model_tags = [t for t in dict.fromkeys(picked) if t in grounded]  # closed list AND said
        tags = (model_tags + [t for t in tags if t not in model_tags])[:MAX_TAGS]

        todo = [(r, it) for r in ROLES for it in layers[r]]  # layer order: most important first
        say(f"structure: rewriting {len(todo)} items briefly")
        skipped = 0
        for role, it in todo:
            if asker.over_budget():
                skipped += 1
                continue
            n = REWRITE_WORDS[role]
            q = prompts["structure_rewrite"].render(
                role=role, role_description=roles_desc.get(role, role), source=it["speaker_text"], max_words=str(n)
            )
            # no maxLength: its nested grammar rules made sampling ~2.3x slower per token
            # (measured); max_tokens is the hard cap and salvage_text() keeps whole sentences
            schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
            ans = asker.ask(f"rewrite:{role}", it["sentences"][0], q, schema, int(n * TOKENS_PER_WORD) + 12)
            text = salvage_text(ans or "", "text")
            if text:
                it.update(text=text, origin="model")
        if skipped:
            asker.log.append({"step": "rewrite", "skipped": skipped, "reason": "LLM time budget spent"})
            say(f"structure: LLM time budget spent, {skipped} items keep the speaker's words")

    say("structure: verifying model output against the speaker's words")
    seg_ids = {s.id for s in transcript.segments}
    blocks = [
        verify_items(layers[r], segment_ids=seg_ids, speaker_text=lambda it: it["speaker_text"], cosine=cos, label=r)
        for r in ROLES
    ] + blocks
    verification = merge_counts(*blocks)
    desc = layers["focus"][0]["text"]
    if len(desc) > DESCRIPTION_CHARS:
        desc = desc[:DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    for r in ROLES:
        for it in layers[r]:
            it.pop("speaker_text", None)

    total = time.perf_counter() - t_start
    st = asker.stats if asker else {}
    evaluated = st.get("prompt_tokens", 0) - st.get("reused_tokens", 0)
    timing = {
        "total_s": round(total, 3),
        "clean_s": round(t_clean, 3),
        "select_s": round(t_select, 3),
        "llm_load_s": round(t_load, 3),
        "prompt_tok_per_s": round(evaluated / st["prompt_s"], 1) if st.get("prompt_s") else 0.0,
        "gen_tok_per_s": round(st["gen_tokens"] / st["gen_s"], 1) if st.get("gen_s") else 0.0,
        "questions": st.get("questions", 0),
        "prompt_tokens": st.get("prompt_tokens", 0),
        "prompt_tokens_evaluated": evaluated,
        "reused_tokens": st.get("reused_tokens", 0),
        "gen_tokens": st.get("gen_tokens", 0),
        "prompt_s": round(st.get("prompt_s", 0.0), 3),
        "gen_s": round(st.get("gen_s", 0.0), 3),
        "reuse_prefix": reuse_prefix,
        "sections": len(asker.sections) if asker else 0,
        "context": mode if asker else None,
        "n_threads": getattr(model, "n_threads", None),
        "gpu_offload": getattr(model, "gpu_offload", False),
    }
    info: LLMInfo | None = model.info if model else None
    post = {
        "schema_version": SCHEMA_VERSION,
        "transcript_sha256": transcript_sha,
        "audio_sha256": transcript.audio_sha256,
        "title": title,
        "description": desc,
        "tags": tags,
        "layers": layers,
        "sentences": [s.to_dict() for s in sentences],
        "verification": verification,
        "llm": (
            {
                "name": info.name,
                "path": info.path,
                "sha256": info.sha256,
                "quantization": info.quantization,
                "source": info.source,
                "chat": info.chat,
            }
            if info
            else None
        ),
        "prompts": versions(prompts),
        "timing": timing,
        "selection": {"candidates": sel.candidates, "rerank": rerank_log, "llm_log": asker.log if asker else []},
    }
    validate_post(post)
    if use_cache:
        cache.put(key, post)
    return post
