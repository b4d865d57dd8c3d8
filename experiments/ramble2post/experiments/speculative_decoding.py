"""``speculative-decoding``: "3x faster with no loss of quality", measured on this machine.

A drafter proposes the next few tokens; the target model checks them all in one
forward pass and keeps the ones it would have produced itself. Greedy output is
therefore identical to plain greedy decoding (the "lossless" half of the claim),
and the speed-up depends on how many drafted tokens are accepted per step.

Two drafters, on two kinds of text:

* **prompt lookup** (llama.cpp n-gram lookup, ``LlamaPromptLookupDecoding``):
  free to compute, and it can only propose tokens already in the context;
* **draft model**: a lower-bit copy of the same GGUF (re-quantized here with
  ``llama_model_quantize``), so the vocabulary matches token for token. No
  two GGUFs the project ships share a tokenizer (SmolLM2: 49152 tokens,
  Gemma 3: 262144), so a self-speculative copy is the only offline pairing.

* **rewrite**: the model rewrites a transcript passage, so its output copies
  its input — where drafting can work, and the structure stage's rewrites;
* **free**: the model writes new text — where lookup has nothing to copy.

Per setting: acceptance rate, accepted tokens per step, decode tokens/s with and
without, speed-up, and whether the tokens are identical to plain greedy decoding.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ramble2post.errors import ExperimentError
from ramble2post.experiments.base import (
    Context,
    Experiment,
    ModelUsed,
    Param,
    ReaderTable,
    Result,
    Trigger,
    register,
)
from ramble2post.experiments.batching import int_list, str_list
from ramble2post.experiments.decode_bench import timing_plan

SOURCE = (
    "So the thing about the format is that every post has three layers. The first layer is the one line that says "
    "what the whole thing is about. The second layer is a handful of points that hold it up, and the third layer is "
    "the detail, the numbers and the stories, for the people who want to dig in. And the reason I like it is that a "
    "reader can stop at any layer and still walk away with something."
)
PROMPTS = {
    "rewrite": "Rewrite this passage from a spoken ramble as clean written prose. Keep the speaker's words.\n\n"
    + SOURCE,
    "free": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
}
COLUMNS = (
    "text",
    "method",
    "draft_tokens",
    "steps",
    "acceptance_pct",
    "accepted_per_step",
    "tokens_per_step",
    "tokens_per_s",
    "baseline_tokens_per_s",
    "speedup",
    "end_to_end_speedup",
    "identical",
    "gen_tokens",
    "forward_ms",
    "forward_cost_vs_1",
)
UNITS = {
    "draft_tokens": "tokens proposed per step (max)",
    "steps": "verification steps (target forward passes)",
    "acceptance_pct": "% of drafted tokens accepted",
    "accepted_per_step": "drafted tokens accepted per step",
    "tokens_per_step": "tokens generated per target forward pass",
    "tokens_per_s": "tokens/s (decode, after the first token)",
    "baseline_tokens_per_s": "tokens/s (plain greedy decode)",
    "speedup": "x plain decode",
    "end_to_end_speedup": "x plain (prefill + decode)",
    "identical": "same tokens as plain greedy",
    "gen_tokens": "tokens",
    "forward_ms": "ms per target forward pass (verify rows)",
    "forward_cost_vs_1": "x the time of a one-token forward pass",
}
VERIFY_SIZES = (1, 2, 3, 5, 11)  # tokens per forward pass timed for the verify-cost rows
VERIFY_CONTEXT = 256  # tokens already in the cache when the verify cost is timed

TRIGGERS = (
    Trigger(
        r"\bspeculat\w*[\s-](?:of[\s-])?(?:de[\s-]?cod\w*|sampling|execution|drafts?)\b"
        r"|\bspec\w*[\s-]de[\s-]?coding\b|\bspect(?:acular|ral|ator)[\s-]decoding\b",
        1.0,
        "speculative decoding",
    ),
    Trigger(r"\bdraft[\s-](?:model|tokens?|head)s?\b|\bmedusa\b|\beagle[\s-]?\d?\b", 1.0, "draft model"),
    Trigger(
        r"\bprompt[\s-]look[\s-]?up\b|\b(?:n|en|an)[\s-]?gram[\s-](?:look[\s-]?up|drafting|speculation)\b",
        1.0,
        "prompt lookup",
    ),
    Trigger(r"\bdrafters?\b", 0.75, "drafter"),
    Trigger(r"\bspeculat\w*\b", 0.5, "speculation"),
    Trigger(
        r"\b(?:lossless|no loss (?:of|in) quality|without (?:any )?(?:loss|losing)|identical output|"
        r"(?:accept|acceptance)[\s-](?:rate|ed tokens)|verif\w* (?:the )?tokens?|instant\w*)\b",
        0.25,
        "lossless / acceptance",
        context=True,
    ),
    Trigger(r"\b\w+ times faster\b|\b\d+(?:\.\d+)?\s?x faster\b", 0.25, "x faster", context=True),
)


@dataclasses.dataclass(frozen=True)
class Run:
    """One greedy generation: its tokens and times."""

    tokens: tuple[int, ...]  # generated tokens
    first_s: float  # prefill + first token (s)
    total_s: float  # whole generation (s)
    steps: int = 0
    drafted: int = 0
    accepted: int = 0

    @property
    def decode_tps(self) -> float:
        """Tokens/s after the first token (the decode phase)."""
        n = len(self.tokens) - 1
        return n / (self.total_s - self.first_s) if n > 0 and self.total_s > self.first_s else float("nan")


@register
class SpeculativeDecoding(Experiment):
    name = "speculative-decoding"
    version = "1"
    claim = "Speculative decoding makes generation several times faster with identical (lossless) greedy output."
    triggers = TRIGGERS
    descriptions = (
        "speculative decoding: a small draft model guesses tokens and the large model verifies them all at once",
        "several times faster generation with identical output and no loss of quality, by drafting and verifying",
        "prompt lookup decoding copies tokens from the input to make editing feel instant",
        "a little model guesses tokens ahead and the big model checks them, so several tokens are accepted per pass",
    )
    params = {
        "texts": Param(("rewrite", "free"), "kinds of text: rewrite (output copies input), free (new text)"),
        "lookup_drafts": Param((4, 10), "prompt-lookup tokens proposed per step (one setting each)", quick=(10,)),
        "draft_model_tokens": Param(4, "tokens the draft model proposes per step (0: skip the draft model)"),
        "draft_ftype": Param("Q4_0", "quantization of the draft copy of the model (Q4_0, Q2_K, ...)"),
        "max_tokens": Param(160, "tokens generated per run", quick=64),
        "repeats": Param(2, "runs per setting (median time)", quick=1),
        "flash_attn": Param(True, "llama.cpp flash attention (batch-invariant attention on CPU, see notes)"),
        "show_no_flash": Param(True, "add a prompt-lookup row without flash attention", quick=False),
    }

    def run(self, context: Context) -> Result:
        from ramble2post.cache import sha256_file
        from ramble2post.experiments import speculative as spec
        from ramble2post.structure import llm as llm_mod

        p = self.resolve_params(context)
        texts = str_list(p["texts"])
        bad = sorted(set(texts) - set(PROMPTS))
        if bad or not texts:
            raise ExperimentError(f"unknown text kind(s) {bad}", hint=f"choose from {', '.join(PROMPTS)}")
        lookups = int_list(p["lookup_drafts"], "lookup_drafts")
        k_draft = int(p["draft_model_tokens"])
        threads, clock, why = timing_plan(context.device)
        name, path, _src, _exp = llm_mod.resolve_gguf(context.llm)
        models = [ModelUsed(role="llm", name=name, path=str(path), sha256=llm_mod._sha256_cached(path))]
        notes = [
            f"Timing: {why}; the machine may be shared with other work.",
            "Greedy decoding (top-k 1, temperature 0, no repeat penalty).",
            "Flash attention is on for every run: without it llama.cpp's CPU attention gives a multi-token "
            "verification pass slightly different logits from a one-token step, and greedy picks flip at "
            "near-ties (see the row without flash attention, if present).",
        ]
        drafters: list[tuple[str, int, Any]] = [
            (f"prompt lookup (n-gram {spec.LOOKUP_NGRAM})", k, spec.prompt_lookup(draft=k)) for k in lookups
        ]
        draft_model = None
        if k_draft > 0:
            context.report(f"making a {p['draft_ftype']} draft copy of {name}")
            dpath = requantized(path, str(p["draft_ftype"]))
            models.append(
                ModelUsed(role="draft", name=f"{name} {p['draft_ftype']}", path=str(dpath), sha256=sha256_file(dpath))
            )
            draft_model = spec.SmallModelDraft(dpath, k=k_draft, n_threads=threads)
            drafters.append((f"draft model ({p['draft_ftype']} copy)", k_draft, draft_model))
        timer = time.process_time if clock == "cpu" else time.perf_counter
        kw: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=2048,
            n_threads=threads,
            n_batch=512,
            verbose=False,
            seed=0,
            flash_attn=bool(p["flash_attn"]),
        )
        if p["show_no_flash"] and p["flash_attn"]:
            drafters.append((f"prompt lookup (n-gram {spec.LOOKUP_NGRAM}), no flash attention", max(lookups), None))
        from llama_cpp import Llama

        plain = Llama(**kw)
        rows: list[tuple] = []
        try:
            for text in texts:
                prompt = _chat_tokens(plain, PROMPTS[text])
                context.report(f"{text}: plain greedy decoding")
                base = _median_run([_generate(plain, prompt, p["max_tokens"], timer) for _ in range(int(p["repeats"]))])
                rows.append(_row(text, "plain greedy", 0, base, base, base))
                for label, k, inner in drafters:
                    context.report(f"{text}: {label}, {k} tokens per step")
                    counter = spec.CountingDraft(inner if inner is not None else spec.prompt_lookup(draft=k))
                    llm = spec.SpeculativeLlama(
                        **{**kw, "flash_attn": inner is not None and kw["flash_attn"]}, draft_model=counter
                    )
                    try:
                        runs = []
                        for _ in range(int(p["repeats"])):
                            counter.reset()
                            r = _generate(llm, prompt, p["max_tokens"], timer)
                            acc = spec.acceptance(counter.proposals, list(prompt) + list(r.tokens))
                            runs.append(
                                dataclasses.replace(r, steps=acc.steps, drafted=acc.drafted, accepted=acc.accepted)
                            )
                    finally:
                        llm.close()
                    rows.append(_row(text, label, k, _median_run(runs), base, runs[0]))
            context.report("timing one target forward pass over 1..11 tokens")
            rows += _verify_rows(plain, timer)
        finally:
            plain.close()
            if draft_model is not None:
                draft_model.close()
        summary = _summary(rows)
        if not summary["all_identical"]:
            notes.append("Some speculative outputs differ from plain greedy: see the 'identical' column.")
        return self.make_result(
            context,
            params=p,
            models=models,
            columns=COLUMNS,
            units=UNITS,
            rows=rows,
            summary=summary,
            reading=reading(summary),
            notes=notes,
        )

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        from ramble2post.experiments.plots_decoding import speculative_png

        return {"speculative-decoding.png": speculative_png(results)}

    def reader_table(self, result: Result) -> ReaderTable:
        columns = {
            "text": "text",
            "method": "method",
            "acceptance_pct": "accepted [% of drafted]",
            "accepted_per_step": "accepted [tokens/step]",
            "tokens_per_s": "decode [tokens/s]",
            "speedup": "speed-up [x plain]",
            "identical": "same tokens as plain",
        }
        spec_rows = [r for r in result.rows if r[0] != "verify pass"]  # the verify cost is in the finding
        return ReaderTable.pick(result, columns, rows=spec_rows, finding=reading(result.summary))

    def plot_alt(self, result: Result) -> str:
        return "Bar chart of decode speed-up over plain greedy decoding per drafter and text. " + reading(
            result.summary
        )


# ------------------------------------------------------------------ running


def _chat_tokens(llm: Any, user: str) -> list[int]:
    """The prompt in the model's chat template (plain text for a base model)."""
    template = (llm.metadata or {}).get("tokenizer.chat_template")
    if template:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        text = (
            ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            .from_string(template)
            .render(
                messages=[{"role": "user", "content": user}], add_generation_prompt=True, bos_token="", eos_token=""
            )
        )
    else:
        text = user + "\n\n"
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)


def _generate(llm: Any, prompt: Sequence[int], max_tokens: int, timer) -> Run:
    """Greedy-generate up to ``max_tokens`` tokens from a fresh cache; time the first token and the whole."""
    llm.reset()
    eos = llm.token_eos()
    out: list[int] = []
    t0 = timer()
    first = 0.0
    for tok in llm.generate(list(prompt), top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        if not out:
            first = timer() - t0
        if tok == eos:
            break
        out.append(int(tok))
        if len(out) >= int(max_tokens):
            break
    return Run(tokens=tuple(out), first_s=first, total_s=timer() - t0)


def _verify_rows(llm: Any, timer) -> list[tuple]:
    """What verifying k drafted tokens costs: one forward pass over n = k + 1 tokens, vs one token."""
    llm.reset()
    llm.eval(list(range(1000, 1000 + VERIFY_CONTEXT)))
    per: dict[int, float] = {}
    for n in VERIFY_SIZES:
        times = []
        for _ in range(5):
            llm.n_tokens = VERIFY_CONTEXT
            t0 = timer()
            _eval_all_logits(llm, n)
            times.append(timer() - t0)
        per[n] = sorted(times)[len(times) // 2]
    rows = []
    for n, t in per.items():
        rows.append(
            ("verify pass", f"{n} token(s), logits for each", n - 1)
            + (None,) * 10
            + (round(1e3 * t, 3), round(t / per[1], 3))
        )
    llm.reset()
    return rows


def _eval_all_logits(llm: Any, n: int) -> None:
    """One llama_decode of n tokens with logits requested for every position (as a verification does)."""
    llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
    llm._batch.set_batch(batch=list(range(2000, 2000 + n)), n_past=llm.n_tokens, logits_all=True)
    llm._ctx.decode(llm._batch)


def _median_run(runs: Sequence[Run]) -> Run:
    return sorted(runs, key=lambda r: r.total_s)[len(runs) // 2]


def _row(text: str, method: str, k: int, run: Run, base: Run, counted: Run) -> tuple:
    n = len(run.tokens)
    plain = method == "plain greedy"
    steps = n if plain else counted.steps
    return (
        text,
        method,
        k,
        steps,
        None if plain or not counted.drafted else round(100 * counted.accepted / counted.drafted, 1),
        0.0 if plain else round(counted.accepted / max(1, counted.steps), 3),
        1.0 if plain else round(len(counted.tokens) / max(1, counted.steps), 3),
        round(run.decode_tps, 2),
        round(base.decode_tps, 2),
        round(run.decode_tps / base.decode_tps, 3) if base.decode_tps else None,
        round(base.total_s / run.total_s, 3) if run.total_s else None,
        run.tokens == base.tokens,
        n,
        None,
        None,
    )


def requantized(src: Path, ftype: str) -> Path:
    """A copy of ``src`` re-quantized to ``ftype`` (cached next to the other GGUFs)."""
    import llama_cpp

    from ramble2post.config import cache_dir

    code = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype.upper()}", None)
    if code is None:
        raise ExperimentError(f"unknown quantization {ftype!r}", hint="e.g. Q4_0, Q2_K, Q8_0")
    dst = cache_dir() / "gguf" / f"{src.stem}.requant-{ftype.upper()}.gguf"
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = code
    params.allow_requantize = True
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise ExperimentError(f"llama_model_quantize to {ftype} failed (code {rc})")
    tmp.replace(dst)
    return dst


# ------------------------------------------------------------------ summary


def _summary(rows: Sequence[tuple]) -> dict[str, Any]:
    spec_rows = [r for r in rows if r[0] != "verify pass"]
    flash = [r for r in spec_rows if "no flash" not in r[1]]
    s: dict[str, Any] = {"all_identical": all(r[11] for r in flash)}
    nf = [r for r in spec_rows if "no flash" in r[1]]
    if nf:
        s["identical_without_flash_attention"] = all(r[11] for r in nf)
    for r in rows:
        if r[0] == "verify pass":
            s[f"verify_cost_{r[2] + 1}_tokens_vs_1"] = r[14]
    for text in dict.fromkeys(r[0] for r in flash):
        rs = [r for r in flash if r[0] == text and r[1] != "plain greedy"]
        base = next(r for r in flash if r[0] == text and r[1] == "plain greedy")
        s[f"{text}_plain_tokens_per_s"] = base[7]
        look = [r for r in rs if r[1].startswith("prompt lookup")]
        if look:
            best = max(look, key=lambda r: r[9] or 0)
            s[f"{text}_lookup_speedup"] = best[9]
            s[f"{text}_lookup_end_to_end_speedup"] = best[10]
            s[f"{text}_lookup_acceptance_pct"] = best[4]
            s[f"{text}_lookup_accepted_per_step"] = best[5]
            s[f"{text}_lookup_draft_tokens"] = best[2]
        dm = [r for r in rs if r[1].startswith("draft model")]
        if dm:
            s[f"{text}_draft_model_speedup"] = dm[0][9]
            s[f"{text}_draft_model_acceptance_pct"] = dm[0][4]
            s[f"{text}_draft_model_accepted_per_step"] = dm[0][5]
    return s


def reading(summary: Any) -> str:
    """One sentence from the numbers: the speed-up where drafting can work, where it cannot, and why."""
    parts = []
    for text, what in (("rewrite", "rewriting a transcript (output copies input)"), ("free", "free writing")):
        if f"{text}_lookup_speedup" in summary:
            txt = (
                f"{what}, prompt lookup ran at {summary[f'{text}_lookup_speedup']:.2f}x plain decoding "
                f"({summary[f'{text}_lookup_acceptance_pct'] or 0:.0f}% of drafts accepted)"
            )
            dm = summary.get(f"{text}_draft_model_speedup")
            if dm is not None:
                txt += f" and a draft model at {dm:.2f}x"
            parts.append(txt)
    same = (
        "greedy tokens were identical to plain decoding in every run"
        if summary.get("all_identical")
        else "some greedy outputs differed from plain decoding"
    )
    head = ("On this machine, " + "; ".join(parts) + f"; {same}.") if parts else f"No speculative run; {same}."
    v5 = summary.get("verify_cost_5_tokens_vs_1")
    if v5:
        head += (
            f" Checking 4 drafted tokens takes one forward pass over 5 tokens, which costs {v5:.1f}x a one-token "
            "step here, so speculation pays only where that pass costs about one step (memory-bound decoding)."
        )
    return head
