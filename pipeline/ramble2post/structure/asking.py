"""Questions to the LLM over a shared transcript prefix: re-rank, title, tags, rewrites.

Every question is short and grammar-constrained, asked after the same numbered
transcript (or section of it), so llama.cpp reuses the prefix's KV cache. Answers are
only proposals: ``stage`` verifies each against the speaker's words.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from ramble2post.errors import LLMOutputError
from ramble2post.structure.clean import Sentence
from ramble2post.structure.llm import LLM
from ramble2post.structure.prompts import Prompt
from ramble2post.structure.roles import ROLES
from ramble2post.structure.select import Selection
from ramble2post.structure.server import ContextLengthError

MAX_TAGS = 4
REWRITE_WORDS = {"focus": 50, "reason": 40, "example": 45, "analogy": 35, "connections": 40, "tradeoffs": 40}
TOKENS_PER_WORD = 1.6  # generous: caps max_tokens of a rewrite
Item = dict[str, Any]


def lines(sents: list[Sentence]) -> str:
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


def parse(answer: str, key: str) -> Any:
    try:
        return json.loads(answer)[key]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise LLMOutputError(f"unparseable answer {answer[:80]!r}") from e


def keyword_tags(tag_list: dict[str, str], text: str) -> list[str]:
    low = text.lower()
    hits = []
    for tag, kws in tag_list.items():
        n = sum(low.count(k.strip().lower()) for k in kws.split(",") if k.strip())
        if n:
            hits.append((n, tag))
    return [t for _, t in sorted(hits, key=lambda x: (-x[0], x[1]))]


class Asker:
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
        # n_ctx -> new sections, set by the stage (a server may report a smaller context mid-run)
        self.resection: Callable[[int], list[list[Sentence]]] | None = None

    def over_budget(self) -> bool:
        return time.perf_counter() - self.t0 > self.budget_s

    def ask(self, step: str, sentence_id: int, question: str, schema: dict, max_tokens: int) -> str | None:
        prefix = self.context.render(sentences=lines(self.sections[self.where.get(sentence_id, 0)]))
        try:
            try:
                a = self.llm.ask(prefix=prefix, question=question, schema=schema, max_tokens=max_tokens)
            except ContextLengthError as e:
                if not (e.n_ctx and self.resection):
                    raise
                # the server's context is smaller than assumed: shorter sections, then once more
                self.sections = self.resection(e.n_ctx)
                self.where = {s.id: i for i, sec in enumerate(self.sections) for s in sec}
                self.log.append({"step": step, "resectioned": len(self.sections), "n_ctx": e.n_ctx})
                prefix = self.context.render(sentences=lines(self.sections[self.where.get(sentence_id, 0)]))
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


def rerank(
    asker: Asker,
    *,
    prompts: dict[str, Prompt],
    sel: Selection,
    chosen: dict[str, list[int]],
    by_id: dict[int, Sentence],
) -> list[dict[str, Any]]:
    """Let the model pick each filled role's first item among confident alternatives (``chosen`` is updated)."""
    roles_desc = prompts["structure_roles"].entries()
    log: list[dict[str, Any]] = []
    used = {sid for ids in chosen.values() for sid in ids}
    filled = [r for r in ROLES if chosen[r] and len(sel.candidates[r]) > 1]
    for role in sorted(filled, key=lambda r: asker.where.get(sel.candidates[r][0], 0)):
        cands = [c for c in sel.candidates[role] if c == chosen[role][0] or c not in used]
        if len(cands) < 2 or asker.over_budget():
            continue
        q = prompts["structure_rerank"].render(
            role=role,
            role_description=roles_desc.get(role, role),
            candidates="\n".join(f"[{c}] {by_id[c].text}" for c in cands),
        )
        schema = {"type": "object", "properties": {"best": {"type": "integer", "enum": cands}}, "required": ["best"]}
        ans = asker.ask(f"rerank:{role}", cands[0], q, schema, max_tokens=16)
        try:
            best = int(parse(ans, "best")) if ans else None
        except (LLMOutputError, ValueError):
            best = None
        log.append({"role": role, "candidates": cands, "picked": best})
        if best in cands and best != chosen[role][0]:
            used.discard(chosen[role][0])
            chosen[role][0] = best
            used.add(best)
    return log


def ask_title(asker: Asker, *, prompts: dict[str, Prompt], focus: str, sentence_id: int) -> str:
    """The model's title proposal ("" when it gave none)."""
    q = prompts["structure_title"].render(focus=focus)
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 90}}, "required": ["title"]}
    ans = asker.ask("title", sentence_id, q, schema, 40)
    try:
        return str(parse(ans, "title")) if ans else ""
    except LLMOutputError:
        return ""


def ask_tags(asker: Asker, *, prompts: dict[str, Prompt], focus: str, sentence_id: int) -> list[str]:
    """Tags the model picks from the closed list."""
    tag_list = prompts["structure_tags_list"].entries()
    q = prompts["structure_tags"].render(tags=", ".join(tag_list), focus=focus)
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "enum": list(tag_list)}, "maxItems": MAX_TAGS}
        },
        "required": ["tags"],
    }
    ans = asker.ask("tags", sentence_id, q, schema, 48)
    try:
        return [t for t in parse(ans, "tags") if t in tag_list] if ans else []
    except LLMOutputError:
        return []


def rewrite_items(
    asker: Asker, *, prompts: dict[str, Prompt], layers: dict[str, list[Item]], say: Callable[[str], None]
) -> None:
    """Ask for a brief rewrite of each one-sentence item, most important layer first (items updated in place).

    A passage of several sentences (a reason or a worked example shown whole) and a guess (a likely
    item the author checks) stay in the speaker's cleaned words, as the format asks.
    """
    roles_desc = prompts["structure_roles"].entries()
    todo = [(r, it) for r in ROLES for it in layers[r] if len(it["sentences"]) == 1 and it.get("tier") != "likely"]
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
