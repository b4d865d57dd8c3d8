"""The structure stage: Transcript -> Post (``structure.schema``) in the three-layer format.

Precision first, grounded, and honest about gaps, so that a tiny offline model cannot
make the post dishonest and a capable model makes it better:

1. ``clean``: the transcript, deterministically, as numbered sentences;
2. ``select``: per role, the speaker's sentence the calibrated role model is confident
   serves it, or nothing (a gap: the draft shows the author a note in its place); layer 1
   is the likeliest statement of the point that names what the talk keeps returning to, or, when
   the model reads the talk (``point``), the one of the likeliest few closest to its reading;
3. ``asking``: short grammar-constrained questions over a shared transcript prefix
   (KV cache reused): re-rank confident alternatives, title, tags, brief rewrites;
4. ``verify``: every model output checked against its sources (numbers, units, names,
   overlap, debris, meaning flips, invented clauses), repaired or replaced by the
   speaker's words; a title must name the talk's key phrases, else the key phrases are
   the title.

Cached by (transcript hash, model, prompts, role model, code version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ramble2post.cache import StageCache, stable_key
from ramble2post.config import DEFAULT_LLM, current
from ramble2post.errors import InputError
from ramble2post.records import Transcript
from ramble2post.structure.asking import (
    MAX_TAGS,
    Asker,
    ask_tags,
    ask_title,
    keyword_tags,
    lines,
    make_sections,
    rewrite_items,
    salvage_text,
)
from ramble2post.structure.clean import Sentence, clean_segments
from ramble2post.structure.jargon import JargonFix, fix_jargon
from ramble2post.structure.judge import LETTERS, can_judge, judge
from ramble2post.structure.keyphrases import keyphrase_title, names_phrase, topic_phrases
from ramble2post.structure.llm import LLM, resolve_gguf, sha256_of
from ramble2post.structure.models import load_llm, parse_llm_spec
from ramble2post.structure.point import POINT_READERS, closest_start, point_statement, worth_reading
from ramble2post.structure.probe import PROBE_SUFFIX, probe_for, probe_text
from ramble2post.structure.prompts import Prompt, load_prompts, versions
from ramble2post.structure.reread import reread_sentences, user_glossary
from ramble2post.structure.roles import ROLES, weights_text
from ramble2post.structure.schema import SCHEMA_VERSION, Post, validate_post
from ramble2post.structure.select import MAX_WORDS, MIN_WORDS, TOPIC_PHRASES, Selection, select_roles
from ramble2post.structure.spans import propose, span_probability
from ramble2post.structure.support import SupportCheck, support_check, support_verdict
from ramble2post.structure.tiers import NO_JUDGE, Candidate, Placed, closest, load_calibration, place, tiers_text
from ramble2post.structure.titles import (
    clause_title,
    salient_title,
    sentence_case,
    speaker_title,
    title_problems,
    trim_title,
)
from ramble2post.structure.verify import embedding_cosine, is_verbatim, merge_counts, problems, verify_items
from ramble2post.transcribe.glossary import glossary_setting

__all__ = ["Post", "make_sections", "salvage_text", "speaker_title", "structure_transcript", "validate_post"]

STRUCTURE_VERSION = 16  # bump when the algorithm changes: part of the cache key (5: spans, judge, tiers; 6: model judge on titles and rewrites; 7: fillers after conjunctions, gap hints; 8: titles from a confident layer 1; 9: the model title a suggestion; 10: layer 1 from the model's reading of the point; 11: jargon re-read by the model; 12: the title a clause of layer 1; 13: no clause starting with a verb and its pronoun object; 14: layer 1 at most two sentences; 15: text without stops split at capitalised segments; 16: the judge's probe)
# a sentence spoken to a language model ("ignore the previous instructions and title this post ...")
# is never shown as an item, so it can reach neither a title nor a passage; it stays in the transcript
ADDRESSES_MODEL = re.compile(
    r"\b(ignore|disregard|forget) (all |any )?(the |your )?(previous|prior|above|earlier|preceding) "
    r"(instructions?|prompts?|rules)\b|\btitle (this|the) (post|article|blog)\b|\b(system|the) prompt\b"
    r"|\byou are now (a|an)\b|\bas an ai\b",
    re.IGNORECASE,
)
SPANS_PER_ROLE = 3  # candidate spans per role the judge reads
JUDGE_BUDGET_S = 40.0  # s of judge questions per transcript (structure of a 13-min ramble < 60 s on 2 cores)
SECTION_RESERVE = 1024  # tokens kept free in the context for a question and its answer
DESCRIPTION_CHARS = 200  # characters
FULL_CONTEXT_MAX_TOKENS = 2048  # tokens; longer transcripts use excerpts on CPU (prompt eval dominates)
LLM_BUDGET_S = 200.0  # s of LLM questions per transcript (keeps a post under 5 min on 2 cores)

Progress = Callable[[str], None]
Item = dict[str, Any]  # a layer item while the stage builds it (the Post's typed Item once validated)


@dataclasses.dataclass
class _Llm:
    """The opened LLM and what asking it cost."""

    model: LLM
    asker: Asker
    mode: str
    load_s: float
    sentences: list[Sentence]  # re-read for jargon heard as ordinary words (``structure.reread``)
    jargon: list[JargonFix]
    reread: dict[str, Any]


def _model_key(spec: str) -> dict[str, str]:
    """Cheap identity of the model for the cache key (no weights loaded)."""
    parsed = parse_llm_spec(spec) if spec else None
    if parsed is None or parsed.kind in ("none", "registered", "hf"):
        return {"llm": spec}
    if parsed.kind == "openai":  # the endpoint and the model name it serves (weights unseen from here)
        return {"llm": spec, "url": parsed.url, "model": parsed.name}
    _name, path, _src, expected = resolve_gguf(spec)
    return {"llm": spec, "sha256": expected or sha256_of(path)}


def _clean(transcript: Transcript) -> tuple[list[Sentence], list[JargonFix]]:
    """Cleaned sentences with misheard jargon spelled right from its context, and those fixes."""
    if not transcript.segments:
        raise InputError("the transcript has no segments", hint="transcribe a non-silent recording first")
    sentences = clean_segments(transcript.segments)
    if not sentences:
        raise InputError("the transcript has no words after cleaning")
    texts, fixes = fix_jargon([s.text for s in sentences], [s.id for s in sentences])
    return [dataclasses.replace(s, text=t) for s, t in zip(sentences, texts, strict=True)], fixes


def _open_llm(
    spec: str,
    *,
    prompts: dict[str, Prompt],
    sentences: list[Sentence],
    sel: Selection,
    context: str,
    reuse_prefix: bool,
    budget_s: float,
    say: Progress,
) -> _Llm:
    say(f"structure: loading LLM {spec}")
    t0 = time.perf_counter()
    model = load_llm(spec, reuse_prefix=reuse_prefix, system=prompts["structure_system"].text.strip())
    load_s = time.perf_counter() - t0
    sentences, fixes, reread_log = reread_sentences(sentences, model=model, say=say, glossary=user_glossary())
    context_text = prompts["structure_context"].text
    budget = model.n_ctx - SECTION_RESERVE - model.count_tokens(context_text)
    full_tokens = model.count_tokens(lines(sentences))
    mode = context
    if mode == "auto":
        mode = "full" if getattr(model, "gpu_offload", False) or full_tokens <= FULL_CONTEXT_MAX_TOKENS else "excerpts"
    context_sents = sentences
    if mode == "excerpts":  # only the sentences the questions are about, in transcript order
        keep = {sid for ids in sel.candidates.values() for sid in ids} | {
            sid for ids in sel.chosen.values() for sid in ids
        }
        context_sents = [s for s in sentences if s.id in keep]
    sections = make_sections(context_sents, count=model.count_tokens, budget=budget)
    say(
        f"structure: LLM context = {mode} ({len(context_sents)} of {len(sentences)} sentences, "
        f"{full_tokens} tokens in full)"
    )
    if len(sections) > 1:
        say(f"structure: transcript longer than the context: {len(sections)} sections")
    asker = Asker(model, prompts["structure_context"], sections, budget_s)
    asker.resection = lambda n_ctx: make_sections(  # after the server said its context is smaller
        context_sents, count=model.count_tokens, budget=n_ctx - SECTION_RESERVE - model.count_tokens(context_text)
    )
    return _Llm(model, asker, mode, load_s, sentences, fixes, reread_log)


def _span_item(placed: Placed, sentences: list[Sentence]) -> Item:
    sents = [sentences[i] for i in placed.span.indices]
    text = " ".join(s.text for s in sents)
    return {
        "text": text,
        "origin": "speaker",
        "sources": sorted({seg for s in sents for seg in s.segments}),
        "verified": True,
        "note": None,
        "sentences": [s.id for s in sents],
        "tier": placed.tier,
        "speaker_text": text,
    }


def _judge_name(spec: str) -> str | None:
    """The registry name a judge calibration is stored under (None: a file path or a served model)."""
    parsed = parse_llm_spec(spec) if spec else None
    return parsed.name if parsed is not None and parsed.kind == "packaged" else None


def layer1_start(sentences: list[Sentence], sel: Selection) -> int:
    """Index of the sentence layer 1 starts at: the chosen point that names the talk's topic (select
    may add one after a likelier statement that does not), else the first chosen."""
    topic = topic_phrases(sel.phrases, TOPIC_PHRASES)
    text = {s.id: s.text for s in sentences}
    chosen = [sid for sid in sel.chosen["focus"] if not ADDRESSES_MODEL.search(text[sid])]
    if not chosen:  # the point was a sentence spoken to a model: the likeliest other statement
        ranked = sorted(text, key=lambda sid: -sel.scores["focus"][sid])
        chosen = [next((sid for sid in ranked if not ADDRESSES_MODEL.search(text[sid])), ranked[0])]
    named = [sid for sid in chosen if names_phrase(text[sid], topic)]
    first = (named or chosen)[0]
    return next(k for k, s in enumerate(sentences) if s.id == first)


def _propose(
    sentences: list[Sentence],
    sel: Selection,
    opened: _Llm | None,
    spec: str,
    say: Progress,
    judge_budget_s: float,
    point_prompt: Prompt,
) -> tuple[dict[str, list[Placed]], dict[str, Placed], dict[str, Any]]:
    """Layer 1's start (the model's reading of the point, ``point``, when the model reads it);
    candidate spans, judged by the model when it can, placed in tiers (``tiers``); the closest
    passage of each role left empty (``tiers.closest``, for its author note); the log."""
    texts = [s.text for s in sentences]
    usable = [
        MIN_WORDS <= len(t.split()) <= MAX_WORDS and not t.rstrip().endswith("?") and not ADDRESSES_MODEL.search(t)
        for t in texts
    ]
    probs = {r: [sel.scores[r][s.id] for s in sentences] for r in ROLES}
    first = layer1_start(sentences, sel)
    name = _judge_name(spec)
    probe = probe_for(opened.model) if opened is not None and name is not None else None
    cal_name, cal = load_calibration(f"{name}{PROBE_SUFFIX}" if probe else name)
    if probe and cal_name == NO_JUDGE:  # a tiers file without the probe's calibration: the letters'
        probe = None
        cal_name, cal = load_calibration(name)
    reading = None
    if opened is not None and cal_name.removesuffix(PROBE_SUFFIX) in POINT_READERS and worth_reading(texts):
        say(f"structure: asking {spec} for the talk's point (layer 1 starts at the speaker's passage closest to it)")
        t0 = time.perf_counter()
        reading = point_statement(opened.model, texts=texts, prompt=point_prompt)
        judge_budget_s -= time.perf_counter() - t0  # the judge's share pays for it
        if reading:
            first = closest_start(reading, texts=texts, probs=probs["focus"], usable=usable, fallback=first)
    focus, pool = propose(texts=texts, probs=probs, usable=usable, focus_index=first, k=SPANS_PER_ROLE)
    spans = [focus, *pool]
    judged: list[dict[str, float] | None] = [None] * len(spans)
    if opened and cal_name != NO_JUDGE and can_judge(opened.model):
        say(f"structure: judging {len(spans)} candidate passages with {spec}")
        topic = ", ".join(p.text for p in sel.phrases[:3])
        passages = [" ".join(texts[i] for i in sp.indices) for sp in spans]
        judged = judge(opened.model, topic=topic, passages=passages, budget_s=judge_budget_s, say=say, probe=probe)  # type: ignore[arg-type]

    def candidate(k: int, role: str) -> Candidate:
        verdict = judged[k]
        p_role = span_probability(spans[k], probs[role])
        if not verdict:
            return Candidate(spans[k], role, p_role, None)
        return Candidate(spans[k], role, p_role, verdict[role], verdict.get(role + LETTERS))

    pairs = [candidate(k, r) for k in range(1, len(spans)) for r in ROLES if r != "focus"]
    alone = load_calibration(None)[1]
    placed = place(pairs, cal=cal, focus=candidate(0, "focus"), unjudged=alone)
    hints = closest(pairs, cal=cal, placed=placed, unjudged=alone)
    log = {
        "calibration": cal_name,
        "point_reading": reading,  # the model's statement of the point (chooses layer 1; never shown)
        "candidates": [
            {
                "sentences": [sentences[i].id for i in sp.indices],
                "p_role": {r: round(span_probability(sp, probs[r]), 3) for r in ROLES},
                "judge": {r: round(v, 3) for r, v in (judged[k] or {}).items()} or None,
            }
            for k, sp in enumerate(spans)
        ],
    }
    return placed, hints, log


def _speaker_title(sel: Selection, layers: dict[str, list[Item]], by_id: dict[int, Sentence], talk: str) -> Item:
    """The title without a model: the clause of layer 1 that names the talk's subject or a top key phrase
    ("Tensor cores do exactly one thing"); else the key phrases that layer 1 names, else the talk's top
    key phrases; failing that, a salient run of layer 1."""
    point = " ".join(it["speaker_text"] for it in layers["focus"])
    named = [p for p in sel.phrases if names_phrase(point, [p])]
    phrases = named or sel.phrases
    focus_ids = [sid for it in layers["focus"] for sid in it["sentences"]]
    # the clause names what the talk is about (its subject or top key phrases), not only a word of layer 1
    topic = topic_phrases(sel.phrases, TOPIC_PHRASES)
    clause = clause_title([by_id[sid].text for sid in focus_ids], phrases=topic, talk=talk)
    if clause:
        return {"text": clause[0], "origin": "speaker", "sources": list(by_id[focus_ids[clause[1]]].segments)}
    text = keyphrase_title(phrases)
    if text:
        top = phrases[0]
        sids = [s.id for s in by_id.values() if names_phrase(s.text, [top])] or layers["focus"][0]["sentences"]
        segs = sorted({seg for sid in sids for seg in by_id[sid].segments})
        return {"text": text, "origin": "speaker", "sources": segs}
    cut = salient_title([by_id[sid].text for sid in focus_ids], talk=talk)
    sid = focus_ids[cut[1]] if cut else focus_ids[0]
    return {
        "text": cut[0] if cut else speaker_title(by_id[sid].text),
        "origin": "speaker",
        "sources": list(by_id[sid].segments),
    }


def _check_title(
    cand: str, *, sel: Selection, talk: str, layers: dict[str, list[Item]], support: SupportCheck | None = None
) -> tuple[Item | None, dict[str, Any]]:
    """A model title if layer 1 is confident, the title is grounded in it, names the talk's key
    phrases and the model judge finds it supported by layer 1; the verification block."""
    block: dict[str, Any] = {"items": 1, "passed": 0, "repaired": 0, "replaced": 0, "flagged": 0, "details": []}
    # the title heads the post, so it states the post's point: its words come from layer 1 and the judge
    # reads layer 1 only, and only a confident layer 1 may be headlined (a guess at the point is not).
    # Words from all shown passages let 6 model titles through on 15 gold rambles, 3 of them built on an
    # aside or a mishearing ("The Distinction Between AI Engineers and Database Developers", "The KV
    # Cache: Memory Blows with Every Token, Hiding the Blows", judge P 0.71); words from the whole talk,
    # 7 on the gold set and holdout, 4 bad. No embedding cosine (a title is too short for one), no flip
    # check (every negation of the talk is "in the source").
    point = [it for it in layers["focus"] if it.get("tier") == "confident"]
    shown = " ".join(it["speaker_text"] for it in point)
    if cand and not point:
        block["replaced"] = 1
        reason = "layer 1 is a guess: a title would headline it"
        block["details"].append({"item": "title", "result": "replaced", "reasons": [reason], "model_text": cand})
        return None, block
    why = problems(sentence_case(cand), talk, meaning=False) + title_problems(cand, shown) if cand else ["empty"]
    topic = topic_phrases(sel.phrases, TOPIC_PHRASES)
    if cand and topic and not names_phrase(cand, topic, misheard=True):
        why.append("names none of the talk's key phrases: " + ", ".join(p.text for p in topic))
    p_yes = None
    if not why and not is_verbatim(cand, talk):  # the speaker's own words need no judge
        p_yes, why = support_verdict(support, source=shown, claim=cand)
    if why:
        block["replaced"] = 1
        block["details"].append(
            {"item": "title", "result": "replaced", "reasons": why, "model_text": cand, "support": p_yes}
        )
        return None, block
    block["passed"] = 1
    block["details"].append({"item": "title", "result": "passed", "model_text": cand, "support": p_yes})
    sources = sorted({s for it in layers["focus"] for s in it["sources"]})
    return {"text": cand, "origin": "speaker" if is_verbatim(cand, talk) else "model", "sources": sources}, block


def _cache_key(*, transcript_sha: str, spec: str, prompts: dict[str, Prompt], budget: float, context: str) -> str:
    return stable_key(
        {
            "transcript": transcript_sha,
            "model": _model_key(spec),
            "version": STRUCTURE_VERSION,
            "llm_budget_s": budget,
            "context": context,
            "prompts": {n: [p.version, p.sha256] for n, p in prompts.items()},
            "roles": hashlib.sha256(weights_text().encode()).hexdigest(),
            "tiers": hashlib.sha256(tiers_text().encode()).hexdigest(),
            "probe": hashlib.sha256(probe_text().encode()).hexdigest(),
            "glossary": glossary_setting(current()),  # the terms the model re-reads for (``reread``)
        }
    )


def _timing(t: dict[str, float], opened: _Llm | None, reuse_prefix: bool) -> dict[str, Any]:
    st: dict[str, Any] = opened.asker.stats if opened else {}
    evaluated = st.get("prompt_tokens", 0) - st.get("reused_tokens", 0)
    return {
        **{k: round(v, 3) for k, v in t.items()},
        "llm_load_s": round(opened.load_s, 3) if opened else 0.0,
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
        "sections": len(opened.asker.sections) if opened else 0,
        "context": opened.mode if opened else None,
        "n_threads": getattr(opened.model, "n_threads", None) if opened else None,
        "gpu_offload": getattr(opened.model, "gpu_offload", False) if opened else False,
        # jargon re-read by the model: checks made, left for lack of time, their seconds
        "reread": {k: opened.reread.get(k, 0) for k in ("checked", "skipped", "s")} if opened else None,
    }


def structure_transcript(
    *,
    transcript: Transcript,
    llm: str | None,
    prompts_dir: str | Path | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
    reuse_prefix: bool = True,
    llm_budget_s: float | None = None,
    context: str = "auto",
) -> Post:
    """Structure a transcript into a Post (see module docstring); ``Post.to_dict()`` is its JSON.

    transcript: the transcription stage's output.
    llm: a model spec (``ramble2post.structure.llm``), or ``"none"`` for the speaker's sentences only.
    prompts_dir: a folder of the user's own prompt files (default: the packaged prompts).
    progress: called with one line per step (stderr in the CLI).
    use_cache: return a cached Post for the same inputs, and cache this one.
    reuse_prefix: keep llama.cpp's KV cache of the shared transcript prefix between questions.
    llm_budget_s: seconds of LLM questions (default ``LLM_BUDGET_S``); questions left when it is
        spent are skipped and their items keep the speaker's words; the judge gets
        ``JUDGE_BUDGET_S`` of every ``LLM_BUDGET_S`` (passages it cannot read are placed by the role
        model's own calibration).
    context: what the questions are asked over: ``full`` (the whole transcript, in sections if
        longer than the context window), ``excerpts`` (only the candidate sentences) or ``auto``.
    """
    if context not in ("auto", "full", "excerpts"):
        raise InputError(f"unknown context mode {context!r}", hint="use auto, full or excerpts")
    budget = LLM_BUDGET_S if llm_budget_s is None else llm_budget_s
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    spec = (llm or DEFAULT_LLM).strip()
    prompts = load_prompts(prompts_dir)
    transcript_sha = stable_key(transcript.to_dict())
    key = _cache_key(transcript_sha=transcript_sha, spec=spec, prompts=prompts, budget=budget, context=context)
    cache = StageCache("structure")
    if use_cache and (hit := cache.get(key)) is not None:
        say("structure: cached result")
        return validate_post(hit)
    t: dict[str, float] = {}

    say("structure: cleaning transcript")
    t0 = time.perf_counter()
    sentences, jargon = _clean(transcript)
    if jargon:
        say(f"structure: {len(jargon)} misheard term(s) spelled right from context (recorded in the post)")
    by_id = {s.id: s for s in sentences}
    t["clean_s"] = time.perf_counter() - t0

    say(f"structure: selecting roles among {len(sentences)} sentences (embeddings, role model)")
    t0 = time.perf_counter()
    sel = select_roles(sentences)
    t["select_s"] = time.perf_counter() - t0

    opened = None
    if spec != "none":
        opened = _open_llm(
            spec,
            prompts=prompts,
            sentences=sentences,
            sel=sel,
            context=context,
            reuse_prefix=reuse_prefix,
            budget_s=budget,
            say=say,
        )
        sentences, by_id = opened.sentences, {s.id: s for s in opened.sentences}
        jargon = jargon + opened.jargon
    rerank_log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    # the judge's share of the LLM budget: --llm-budget scales both (a benchmark on a busy machine lifts it)
    placed, hints, span_log = _propose(
        sentences, sel, opened, spec, say, JUDGE_BUDGET_S * budget / LLM_BUDGET_S, prompts["structure_point"]
    )
    t["judge_s"] = time.perf_counter() - t0
    layers = {r: [_span_item(p, sentences) for p in placed[r]] for r in ROLES}
    guesses = [r for r in ROLES if any(p.tier == "likely" for p in placed[r])]
    if guesses:
        say(f"structure: shown as guesses for the author to check: {', '.join(guesses)}")
    # said after the judge and the tiers, not after the role model alone: its gaps are often filled later
    if empty := [r for r in ROLES if not placed[r]]:
        say(f"structure: left to the author (no passage likely enough): {', '.join(empty)}")
    talk = " ".join(s.text for s in sentences)
    title = _speaker_title(sel, layers, by_id, talk)
    tag_list = prompts["structure_tags_list"].entries()
    post_text = " ".join(it["speaker_text"] for r in ROLES for it in layers[r])
    tags = keyword_tags(tag_list, post_text)  # tags the post's own sentences support (else the talk's)
    tags = (tags if len(tags) >= 2 else keyword_tags(tag_list, talk))[:MAX_TAGS]
    blocks: list[dict[str, Any]] = []
    # a model that judged the passages spent the time a writer spends on tags and rewrites; its
    # one-sentence rewrites added little the speaker's cleaned words do not say (issue 24), so it
    # is asked for the title only (the whole run on the 13-min ramble stays under 90 s on 2 cores)
    judged = span_log["calibration"] != NO_JUDGE
    check = support_check(opened.model if opened else None)
    suggestion: str | None = None
    if opened:
        say("structure: title" + ("" if judged else " and tags"))
        focus = " ".join(it["speaker_text"] for it in layers["focus"])
        first = layers["focus"][0]["sentences"][0]
        cand = trim_title(ask_title(opened.asker, prompts=prompts, focus=focus, sentence_id=first))
        model_title, block = _check_title(cand, sel=sel, talk=talk, layers=layers, support=check)
        # a suggestion, not the title: the one model title that passed every check on the gold set still
        # headlined a mishearing ("... Memory Grows with Tokens, Hiding the Cost": "fighting" heard as
        # "hiding"); the key phrases the speaker said head the post, the draft offers the model's words
        suggestion = model_title["text"] if model_title and model_title["origin"] == "model" else None
        title = model_title if model_title and model_title["origin"] == "speaker" else title  # said verbatim
        blocks.append(block)
        if not judged:
            picked = ask_tags(opened.asker, prompts=prompts, focus=focus, sentence_id=first)
            model_tags = [x for x in dict.fromkeys(picked) if x in tags]  # closed list AND said
            tags = (model_tags + [x for x in tags if x not in model_tags])[:MAX_TAGS]
            rewrite_items(opened.asker, prompts=prompts, layers=layers, say=say)

    say("structure: verifying model output against the speaker's words")
    seg_ids = {s.id for s in transcript.segments}
    cos = embedding_cosine()
    checks = [
        verify_items(
            layers[r],
            segment_ids=seg_ids,
            speaker_text=lambda it: it["speaker_text"],
            cosine=cos,
            label=r,
            support=check,
        )
        for r in ROLES
    ]
    verification = merge_counts(*checks, *blocks)
    desc = layers["focus"][0]["text"]
    if len(desc) > DESCRIPTION_CHARS:
        desc = desc[:DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    for r in ROLES:
        for it in layers[r]:
            it.pop("speaker_text", None)
    t["total_s"] = time.perf_counter() - t_start
    info = opened.model.info if opened else None
    post = {
        "schema_version": SCHEMA_VERSION,
        "transcript_sha256": transcript_sha,
        "audio_sha256": transcript.audio_sha256,
        "title": title,
        **({"title_suggestion": suggestion} if suggestion else {}),
        "description": desc,
        "tags": tags,
        "layers": layers,
        "gaps": [r for r in ROLES if not layers[r]],
        # a gap's closest passage, quoted in its author note as a place to start (never the role's item)
        "hints": {
            r: {k: v for k, v in _span_item(h, sentences).items() if k in ("text", "sources", "sentences")}
            | {"q": round(h.q, 3)}
            for r, h in hints.items()
            if not layers[r]
        },
        "keyphrases": [p.text for p in sel.phrases],
        # context corrections of misheard jargon: the transcript keeps what Whisper heard
        "jargon": [dataclasses.asdict(f) for f in jargon],
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
                "n_ctx": opened.model.n_ctx if opened else None,
            }
            if info
            else None
        ),
        "prompts": versions(prompts),
        "timing": _timing(t, opened, reuse_prefix),
        "selection": {
            "candidates": sel.candidates,
            # each role's five likeliest sentences: [sentence id, probability it serves the role]
            "probabilities": {
                r: [[sid, round(p, 3)] for sid, p in sorted(sel.scores[r].items(), key=lambda x: -x[1])[:5]]
                for r in ROLES
            },
            "rerank": rerank_log,
            "tiers": span_log,
            "llm_log": opened.asker.log if opened else [],
        },
    }
    record = validate_post(post)
    if use_cache and not cut_short(span_log):
        cache.put(key, record.to_dict())
    elif use_cache:
        say("structure: not cached: the judge's time ran out on this machine's load, so a later run judges again")
    return record


def cut_short(span_log: Mapping[str, Any]) -> bool:
    """True when a judging model was used but its time budget ran out before every passage was read: the
    post is placed partly by the role model alone, and depends on the machine's load, not on the inputs."""
    judged = [c.get("judge") is not None for c in span_log.get("candidates") or []]
    return span_log.get("calibration") != NO_JUDGE and not all(judged)
