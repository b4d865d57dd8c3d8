"""A plain verdict per claim, computed from the measured result, never written by a language model.

Each experiment maps the claim kinds it can test to figures of its result (``JUDGES``,
one function per experiment; an experiment class may override ``Experiment.judge``):

* **holds here**: the measured figure reaches the claim (at least 80 % of a claimed multiple,
  or the direction claimed when no figure is given);
* **holds in part**: the direction holds but not the size, or one half of a two-part claim
  holds ("2-3x faster and exactly the same output": the same output held, the speed-up did not);
* **does not hold here**: the measurement contradicts the claim;
* **not testable on this machine**: the claim is about hardware this run did not have (a GPU,
  fp8 units) or a figure the experiment does not measure.

The measured figure stands beside the claimed one, with one sentence of why taken from the
experiment's own numbers (bandwidth-bound decode, the cost of a verification pass, ...).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from ramble2post.experiments.claims import Claim, claim_cues

HOLDS, PART, FAILS, UNTESTABLE = "holds here", "holds in part", "does not hold here", "not testable on this machine"
VERDICTS = (HOLDS, PART, FAILS, UNTESTABLE)
ENOUGH = 0.8  # a claimed multiple holds when at least this share of it was measured
NEGATIVE = re.compile(
    r"\b(?:slower|doesn'?t (?:help|pay|speed)|does not (?:help|pay)|no speed[\s-]?up|not (?:any )?faster|(?:gain|win) "
    r"(?:was|is) (?:basically )?gone|can'?t (?:use|feed)|cannot use|sits? idle|never see|won'?t see"
    r"|(?:paid|pay|paying) for (?:\w+ ){0,3}?(?:for )?nothing|for nothing|wasted?|not worth it"
    r"|(?:didn'?t|did not|doesn'?t|does not|don'?t|won'?t|wasn'?t|isn'?t) (?:\w+ ){0,2}?(?:any )?faster)\b",
    re.IGNORECASE,
)
GPU_WORDS = re.compile(
    r"\b(?:gpus?|h100|h200|a100|hopper|blackwell|cuda|nvidia|hbm|fp8|f\.?\s?p\.?\s?eight|tf32)\b", re.IGNORECASE
)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one machine's result says about one claim."""

    verdict: str  # one of VERDICTS
    claimed: str  # the claim's figure or direction, in words
    measured: str  # the figure measured here, with its unit
    why: str  # one sentence from the experiment's own numbers
    machine: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def combine(parts: list[bool]) -> str:
    """All parts hold: holds; none: does not hold; a mix: holds in part."""
    if all(parts):
        return HOLDS
    return FAILS if not any(parts) else PART


def judge_factor(measured: float, claim: Claim, *, unit: str = "x") -> tuple[str, str]:
    """(verdict, claimed words) for a claimed multiple against a measured one (higher is the claimed way)."""
    negative = bool(NEGATIVE.search(claim.text))
    factor = claim.factor
    if negative:
        return (HOLDS if measured < 1.05 else FAILS), "no gain"
    if factor is None:
        if measured >= 1.1:
            return HOLDS, "faster"
        return (PART if measured >= 1.0 else FAILS), "faster"
    lo, hi = factor
    words = f"{lo:g}{unit}" if lo == hi else f"{lo:g}-{hi:g}{unit}"
    if lo <= 1.0:  # "half the time", "0.5x": the claim is a reduction, measured as a gain of 1/lo
        lo = 1.0 / lo if lo > 0 else lo
    if measured >= ENOUGH * lo:
        return HOLDS, words
    return (PART if measured > 1.05 else FAILS), words


def _s(result: Mapping[str, Any]) -> Mapping[str, Any]:
    summary = result.get("summary")
    return summary if isinstance(summary, Mapping) else {}  # an old or foreign result may hold a string


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _untestable_gpu(result: Mapping[str, Any], claim: Claim, why: str) -> Verdict | None:
    if result.get("device") == "cpu" and GPU_WORDS.search(claim.text):
        return Verdict(UNTESTABLE, "on a GPU", "this run had no GPU", why)
    return None


# ---------------------------------------------------------------- per experiment


# what a speed claim about speculative decoding without a figure names: "Skimming it is way faster than writing
# it from scratch" (the speaker's analogy, a senior reading a junior's email) claims nothing about decoding
DECODING_SUBJECT = re.compile(
    r"\b(?:speculat\w*|draft\w*|tokens?|decod\w*|verif\w*|models?|guess\w*|accept\w*|lookup|look-?ahead|medusa"
    r"|eagle|inference|generat\w*|llms?|forward pass\w*|speed[\s-]?ups?|\d+(?:\.\d+)?\s?(?:x|times))\b",
    re.IGNORECASE,
)


def judge_speculative(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    speeds = {k: _num(v) for k, v in s.items() if k.endswith("_speedup") and "end_to_end" not in k}
    best_key = max((k for k, v in speeds.items() if v is not None), key=lambda k: speeds[k] or 0.0, default=None)
    cost = _num(s.get("verify_cost_5_tokens_vs_1"))
    why_speed = (
        f"verifying 4 drafted tokens cost {cost:.1f}x a one-token step here, so accepted drafts could not pay for it"
        if cost
        else "the verification passes cost more than the accepted drafts saved"
    )
    kinds = {k for k, _ in claim_cues(claim.text)}
    parts, measured, claimed = [], [], []
    same_said = (
        r"\bsame\b|\bidentical\b|\blossless\b|without changing (?:the |its |your )?(?:output|answer|result|text)s?"
    )
    if "guarantee" in kinds or re.search(same_said, claim.text, re.I):
        same = bool(s.get("all_identical"))
        parts.append(same)
        claimed.append("same output")
        cols = list(result.get("columns") or [])
        runs = [r[cols.index("identical")] for r in result.get("rows") or []] if "identical" in cols else []
        runs = [x for x in runs if x is not None]  # the verification-cost rows compare nothing
        same_runs = sum(1 for x in runs if x in (True, "yes"))
        measured.append(f"tokens identical to plain decoding in {same_runs} of {len(runs)} runs")
    # "more than one token of the pass", "jump around": a comparison is a speed claim only with a speed word
    rate = re.search(r"\b(?:tokens?|per second|faster|slower|speed\w*|latency|quicker)\b", claim.text, re.I)
    speedy = claim.factor or "speedup" in kinds or ("comparison" in kinds and rate) or NEGATIVE.search(claim.text)
    # a figure ("2 and a half times faster") takes its subject from the sentences before; a bare comparison
    # must name what is faster
    if best_key and speedy and (claim.factor or DECODING_SUBJECT.search(claim.text)):
        v, words = judge_factor(speeds[best_key] or 0.0, claim)
        parts.append(v == HOLDS)
        claimed.append(words)
        measured.append(f"{speeds[best_key]:.2f}x at best ({best_key.removesuffix('_speedup').replace('_', ' ')})")
        if v == PART and len(parts) == 1:
            return Verdict(PART, words, measured[-1], why_speed)
    if not parts:
        return None
    verdict = combine(parts)
    # a claim of no gain that holds has the same reason as a claim of a gain that does not: the measured cost
    gained = all(parts) and "no gain" not in claimed
    why = "the draft tokens were accepted often enough and verification was cheap" if gained else why_speed
    if verdict == HOLDS and claimed == ["same output"]:
        why = "greedy speculative decoding only keeps tokens the target model itself would choose"
    return Verdict(verdict, " and ".join(claimed), "; ".join(measured), why)


# tokens counting a size, not a rate: "blocks of, I think, 16 tokens", "2,000 tokens worth", "an 8K-token prompt"
TOKENS_AS_SIZE = (
    r"\b(?:blocks?|chunks?|pages?|tiles?|windows?) of\b[^.?!]{0,20}?\btokens\b|\btokens (?:each|long|worth|of context)\b"
    r"|\b\d[\d,.]*\s?k?[\s-]tokens? (?:context|prompt|sequence|block|window)s?\b"
)


def judge_batching(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    best = _num(s.get("llm_best_speedup")) or _num(s.get("whisper_best_speedup"))
    if best is None:
        return None
    batch = s.get("llm_best_batch") or s.get("whisper_best_batch")
    knee = _num(s.get("compute_bound_batch_fp32"))
    # "decode is memory bound", "every step reads every weight out of memory": the reason batching pays
    waits = (
        r"\b(?:memory|bandwidth)[\s-]bound\b|\b(?:reads?|reading|streams?|moves?) (?:every|all)(?: of)?(?: the| its| the model'?s)?"
        r" weights?\b|\bout of memory\b"
    )
    decoding = r"\b(?:decod\w*|generat\w*|tokens?|batch\w*|one (?:sequence|request|user)|weights?)\b"
    if (
        re.search(waits, claim.text, re.I)
        and re.search(decoding, claim.text, re.I)
        and knee is not None
        and not claim.factor
    ):
        return Verdict(
            HOLDS if knee > 1.5 else FAILS,
            "one-token decoding waits on memory",
            f"an fp32 layer turns compute-bound only near batch {knee:.0f}",
            f"every decode step reads all the weights for 2 FLOPs per weight (0.5 FLOP/byte in fp32), below this "
            f"machine's {s.get('ridge_FLOP_per_byte', 0):.1f} FLOP/byte ridge",
        )
    if (
        re.search(r"\bclimb\w*|\blinear\w*|\bflatten\w*|\bsaturat\w*|\bgoes up\b", claim.text, re.I)
        and not claim.factor
    ):
        return Verdict(
            HOLDS if best > 1.2 else FAILS,
            "throughput climbs with batch size, then flattens",
            f"{best:.2f}x throughput at batch {batch}, compute-bound near batch {knee or 0:.0f}",
            "extra sequences share each read of the weights until the cores, not memory, are the limit",
        )
    # "free" only as a claim ("basically free", "for free"): "more workers aren't free" is about workers
    speedish = r"\b(?:faster|slower|throughput|speed\w*|(?:nearly|almost|basically|practically) free|for free|cheap\w*|help\w*|pays?)\b"
    batchy = r"\b(?:batch\w*|matching|users?|requests?|sequences?|concurren\w*|at once|together|parallel)\b"
    if not claim.factor and re.search(r"\btokens? (?:a|per) second\b|\btokens\b", claim.text, re.I):
        if not re.search(batchy, claim.text, re.I):
            return None  # a rate with nothing about batching: not this experiment's claim
        if not re.search(r"\btokens? (?:a|per) second\b", claim.text, re.I) and re.search(
            TOKENS_AS_SIZE, claim.text, re.I
        ):
            return None  # "blocks of 16 tokens", "a 2,000-token prompt": a size counted in tokens, not a rate
        return Verdict(
            UNTESTABLE,
            "an absolute rate on the speaker's hardware",
            f"{s.get('llm_tokens_per_s_batch1', 0):.0f} tokens/s at batch 1 and {best:.2f}x at batch {batch} here",
            "a rate in tokens per second belongs to one model on one machine; the speed-up is what carries over",
        )
    if not claim.factor and not re.search(speedish, claim.text, re.I):
        return None
    if (NEGATIVE.search(claim.text) or not claim.factor) and not re.search(batchy, claim.text, re.I):
        # "the attention kernel ... is a bit slower": something is slower, not batching's gain; "so it's a
        # generation speed up, not a prefill speed up" (int8 weights, stop 31): a speed-up without a figure
        # must say what is batched
        return None
    got = re.search(
        r"\bget(?:s|ting)? ((?:[\w'-]+ ){1,5}?)(?:(?:almost|basically|nearly|practically) )?for free\b",
        claim.text,
        re.I,
    )
    if got and not re.search(batchy, got.group(1), re.I):
        return None  # "you also get prefix sharing almost for free": what is free is what you get
    verdict, words = judge_factor(best, claim)
    if re.search(r"\b(?:nearly|almost|basically|practically) free\b|\bfor free\b", claim.text, re.I):
        # "free": N sequences cost about one; holds when the speed-up reaches half the batch
        verdict, words = (HOLDS if best >= 0.5 * float(batch or 1) else PART if best > 1.05 else FAILS), "nearly free"
    why = (
        f"one sequence used {s.get('llm_MBU_pct_batch1', 0):.0f}% of the memory bandwidth; the cores turn "
        f"compute-bound near batch {s.get('compute_bound_batch_fp32', 0):.0f}, so extra sequences stop being free there"
    )
    return Verdict(verdict, words, f"{best:.2f}x throughput at batch {batch}", why)


# what the KV-cache experiment measures is growth: bytes per token, linear in context and batch
KV_GROWS = (
    r"\b(?:grow\w*|grew|fill\w*|climb\w*|balloon\w*|blows? up|linear\w*|scal(?:es?|ing) with|goes up with"
    r"|(?:per|every|each|a) token|times (?:the )?(?:context|sequence))\b"
)
# a size at a stated or a long context: "a 32,000-token context is 80 GB of KV cache", "at 128K context",
# "once the context gets long"
KV_SIZE_AT = (
    r"\b(?:k|tokens?)[\s-]context\b|\bcontext of \d|\blong(?:er)? (?:context|sequence|prompt)s?\b"
    r"|\b(?:context|sequence|prompt)s? (?:gets?|is|are) (?:\w+ )?(?:long|longer|bigger)\b"
)
# things other than the cache that grow with the sequence: a sentence naming one and not the cache is about it
KV_OTHER_SUBJECT = r"\b(?:matri(?:x|ces)|scores?|activations?|weights?|parameters?|attention map|logits)\b"


def judge_kv(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    agree = s.get("checks_agree_within_10pct")
    per_tok = next((v for k, v in s.items() if k.endswith(" bytes_per_token")), None)
    if per_tok is None:
        return None
    if not re.search(
        r"\b(?:kv|cache|cash|keys? and values?|context|sequence length|per token|gqa|mqa|grouped|multi[\s-]query"
        r"|grow\w*|fill\w*|stays? (?:the same|constant|flat|fixed)|fixed size)\b",
        claim.text,
        re.I,
    ):
        return None  # not about the cache: "memory" or "bytes" alone is about weights or bandwidth as often
    measured = f"{per_tok / 1024:.1f} KiB per token per sequence, growing linearly (checked against the allocation)"
    why = "every token leaves a key and a value per layer and KV head, for every sequence in the batch"
    if re.search(
        r"\b(?:doesn'?t|does not|won'?t|never) grow\b|\bstays? (?:the same|constant|flat|fixed)\b|\bfixed size\b",
        claim.text,
        re.I,
    ):
        return Verdict(FAILS if agree else PART, "does not grow", measured, why)
    if claim.factor and re.search(r"\b(?:gqa|mqa|grouped|multi[\s-]query|shar\w+ (?:keys|heads))\b", claim.text, re.I):
        return Verdict(HOLDS if agree else PART, "smaller with fewer KV heads", measured, why)
    cache = re.search(r"\b(?:kv|cache|cash|keys? and values?)\b", claim.text, re.I)
    if not cache and re.search(KV_OTHER_SUBJECT, claim.text, re.I):
        return None  # "that matrix grows with the square of the sequence length": another thing grows
    if not re.search(KV_GROWS, claim.text, re.I) and not (cache and re.search(KV_SIZE_AT, claim.text, re.I)):
        # the cache named with no claim about its size: "you compute the KV cache for that prefix once",
        # "you've reserved 2000 tokens worth of cache", "at 8K context plain attention used more memory"
        return None
    return Verdict(HOLDS if agree else PART, "grows with context and batch", measured, why)


def judge_quantization(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    bits = re.search(
        r"\b(?:int|in|into)[\s-]?(8|4|eight|four)\b|\b(8|4|3|2|eight|four|three|two)[\s-]bits?\b", claim.text, re.I
    )
    words = {"eight": "8", "four": "4", "three": "3", "two": "2"}
    b = next((g for g in (bits.groups() if bits else ()) if g), None)
    scheme = f"int{words.get(b.lower(), b)}" if b else "int8"
    ratio, top1 = _num(s.get(f"{scheme}_ppl_ratio")), _num(s.get(f"{scheme}_same_top1_pct"))
    if ratio is None:
        return None
    if not bits and not re.search(
        r"\b(?:quanti\w*|quanta|q[2-8](?:_\w+)?|gguf|gptq|awq|bits?|int\d+|fp16|bf16|full precision|low[\s-]bit|compressed)\b",
        claim.text,
        re.I,
    ):
        return None  # "basically free", "the same" about something other than fewer bits
    harmless = ratio <= 1.05 and (top1 or 100) >= 90
    harmless_rx = r"\b(?:free|barely|no (?:quality )?(?:loss|difference)|same|can'?t tell|couldn'?t tell|little|tiny|fine|basically)\b"
    worse_rx = r"\b(?:worse|dumber|falls? apart|fell apart|degrad\w*|drops?|lose|loses|hurts?)\b"
    # "four bit is the same answers, where it did fall apart was three bit": the direction that goes with
    # the bit width is the one said in the clause that names it
    text = claim.text
    if bits:
        clause = next((c for c in re.split(r"[,;:]|\b(?:but|where|whereas|while)\b", text) if bits.group(0) in c), "")
        if re.search(harmless_rx, clause, re.I) or re.search(worse_rx, clause, re.I):
            text = clause
    says_harmless = bool(re.search(harmless_rx, text, re.I))
    # "barely hurts", "lose no quality": a harmless cue negates the worse word beside it
    says_worse = not says_harmless and bool(re.search(worse_rx, text, re.I))
    if not (says_harmless or says_worse):  # the claim gives no direction to test
        return None
    holds = harmless if says_harmless else not harmless
    measured = f"{scheme}: perplexity x{ratio:.3f}, same top token {top1:.0f}% of the time"
    why = (
        "fewer bits per weight round each weight further from its trained value"
        if not harmless
        else (f"{scheme} rounding moved the weights too little to change most predictions")
    )
    return Verdict(HOLDS if holds else FAILS, "barely hurts" if says_harmless else "noticeably worse", measured, why)


# what a claim about repeated sampling without a figure names: the samples, tries or answers drawn
SAMPLES_SAID = (
    r"\b(?:sampl\w*|tries|tried again|attempts?|answers?|candidates?|generations?|rollouts?|completions?|best[\s-]of"
    r"|pass ?@|shots?|draws?|n of them|(?:\w+ )?times over|in parallel|at once|together|shared? (?:the )?prefix|prompt'?s cache)\b"
)


def judge_repeated(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    cost = _num(s.get("cost_per_sample_at_max"))
    if cost is None:
        return None
    n = s.get("max_samples")
    saving = _num(s.get("saving_at_max")) or 0.0
    measured = f"{n} samples cost {cost:.2f}x one sample each ({saving:.1f}x less than separate runs)"
    why = "the samples share the prompt's KV cache and decode as one batch, so the weights are read once per step"
    if claim.kind == "quality":
        return Verdict(UNTESTABLE, "more answers right", measured, "this experiment measures cost, not accuracy")
    if re.search(
        r"\b(?:costs?|takes?) (?:just |exactly )?as (?:much|long)\b|\bno cheaper\b|\bscales? linearly\b",
        claim.text,
        re.I,
    ):
        return Verdict(HOLDS if cost >= 0.9 else FAILS, "each sample costs a full run", measured, why)
    if re.search(r"\b(?:nearly|almost|basically) free\b|\bcheap\b|\bfor free\b", claim.text, re.I):
        return Verdict(HOLDS if cost <= 0.5 else PART if cost < 1.0 else FAILS, "nearly free", measured, why)
    if not claim.factor and not re.search(
        r"\b(?:faster|slower|cheap\w*|cost\w*|time|free|expensive)\b", claim.text, re.I
    ):
        return None
    if not claim.factor and not re.search(SAMPLES_SAID, claim.text, re.I):
        return None  # "prompt processing basically didn't get faster" (int8 weights, stop 31) is about prefill
    verdict, words = judge_factor(saving, claim)
    return Verdict(verdict, words, measured, why)


# a decoding step limited by memory, said in plain words: "it isn't really doing math, it's reading", "you drag
# all of it through memory for one token while the tensor cores sit there bored" (both were judged as claiming a
# gain for one-token decoding, "does not hold", on a ramble written at stop 31)
MEMORY_BOUND = re.compile(
    r"\b(?:memory[\s-]bound|bandwidth[\s-]bound|waits?|waiting (?:on|for) (?:memory|the weights|bandwidth)"
    r"|through memory|(?:isn'?t|is not|aren'?t|not) (?:really |even |actually )?(?:doing )?(?:much |any |the )?"
    r"(?:math|compute|computing|arithmetic)|it'?s (?:just |mostly )?reading|bored|idle)\b",
    re.IGNORECASE,
)


def judge_lowprec(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    if re.search(r"\bfp8\b|\bf\.?\s?p\.?\s?eight\b|\btf32\b", claim.text, re.I) and not s.get("fp8_available"):
        return Verdict(UNTESTABLE, "fp8/tf32 throughput", "no fp8 or tf32 units on this machine", "fp8 needs a GPU")
    mm, mv = _num(s.get("best_mm_speedup")), _num(s.get("best_mv_speedup"))
    if mm is None:
        return None
    best = s.get("best_low_precision", "low precision")
    said = re.search(r"\b(bf16|fp16|int8)\b|\bb\.?\s?f\.?\s?(?:16|sixteen)\b", claim.text, re.I)
    if said:
        dtype = (said.group(1) or "bf16").lower()
        if _num(s.get(f"{dtype}_mm_speedup")) is not None:
            best, mm = dtype, _num(s.get(f"{dtype}_mm_speedup"))
            mv = _num(s.get(f"{dtype}_mv_speedup")) or mv
    ridge = _num(s.get("ridge_flop_per_byte"))
    why = (
        f"matrix-vector work does 0.5 FLOP per byte read, below this machine's {ridge:.0f} FLOP/byte ridge: it waits on memory"
        if ridge
        else "matrix-vector work waits on memory, not on the matrix units"
    )
    parts: list[bool] = []
    claimed: list[str] = []
    measured: list[str] = []
    decode = re.search(
        r"\b(?:decod\w*|one token|token at a time|matrix[\s-]vector|gemv|mat[\s-]?vec|memory[\s-]bound)\b",
        claim.text,
        re.I,
    )
    if decode:
        no_gain = bool(NEGATIVE.search(claim.text)) or bool(MEMORY_BOUND.search(claim.text))
        parts.append(((mv or 1.0) < 1.5) == no_gain)
        claimed.append("no gain for one-token decoding" if no_gain else "one-token decoding gains too")
        measured.append(f"matrix-vector {mv:.2f}x fp32 at best")
    # with decoding named, the matrix-matrix half is judged only when the claim contrasts the two
    contrast = (
        not decode
        or NEGATIVE.search(claim.text)
        or re.search(r"\bmatrix[\s-]matrix|\bgemm|\bprefill|\bbig numbers?\b", claim.text, re.I)
    )
    units = r"\b(?:flops|flaps|tera\s?flops|tops|matmuls?|matt? mall|gemms?|matrix|tensor|amx|bf16|fp16|int8|fp8|precision)\b"
    if (
        contrast
        and re.search(units, claim.text, re.I)
        and re.search(
            r"\b(?:flops|flaps|tera\w*|peta\w*|tops|matmuls?|gemms?|matrix[\s-]matrix|throughput|faster|double|tensor|amx|"
            r"bf16|fp16|int8|big numbers?|speed\w*)\b",
            claim.text,
            re.I,
        )
    ):
        v, words = judge_factor(
            mm or 0.0, dataclasses.replace(claim, text=NEGATIVE.sub("", claim.text)) if decode else claim
        )
        parts.append(v == HOLDS)
        claimed.append(words if claim.factor else "low precision far faster on matrix-matrix")
        measured.append(f"matrix-matrix {mm:.1f}x fp32 in {best}")
    if not parts:
        return None
    verdict = combine(parts)
    gpu = (
        " (AMX on this CPU stands in for tensor cores)"
        if result.get("device") == "cpu" and re.search(r"tens[eo]r", claim.text, re.I)
        else ""
    )
    return Verdict(verdict, " and ".join(claimed), "; ".join(measured) + gpu, why)


def judge_lora(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    s = _s(result)
    rank = s.get("lora_rank_quoted")
    if rank is None:
        return None
    t = f"lora_r{rank}"
    saving, lossr, lossf = (
        _num(s.get(f"{t}_memory_saving")),
        _num(s.get(f"{t}_final_loss")),
        _num(s.get("full_final_loss")),
    )
    tuning = r"\b(?:lora|laura|q\s?lora|adapters?|fine[\s-]?tun\w*|rank|peft|heft|train\w*)\b"
    if re.search(tuning, claim.text, re.I) and (
        claim.kind == "quality"
        or re.search(r"\b(?:quality|as good|as well|loss|lags?|worse|accura\w+)\b", claim.text, re.I)
    ):
        if lossr is None or lossf is None:
            return None
        ok = lossr <= lossf * 1.2 + 0.02
        worse = bool(re.search(r"\b(?:worse|lags?|behind|dumber|loses?|hurts?)\b", claim.text, re.I)) and not re.search(
            r"\b(?:barely|hardly|almost nothing|not much|little)\b", claim.text, re.I
        )
        return Verdict(
            HOLDS if ok != worse else FAILS,
            "worse than full fine-tuning" if worse else "close to full fine-tuning",
            f"loss {lossr:.3f} with LoRA rank {rank} vs {lossf:.3f} full after {s.get('steps')} steps",
            "a few steps on one batch; each method at its usual learning rate",
        )
    if saving is None or not re.search(
        r"\b(?:memory|gigs?|gigabytes?|fits?|laptop|card|gpu|optimi[sz]er|gradients?|vram|ram|hardware)\b",
        claim.text,
        re.I,
    ):
        return None
    grad = _num(s.get(f"{t}_grad_opt_saving")) or 0.0
    if re.search(
        r"\bas much (?:memory|vram|ram)\b|\bsaves? (?:no|little) memory\b|\bno (?:memory )?saving", claim.text, re.I
    ):
        return Verdict(
            HOLDS if saving < 1.2 else FAILS,
            "no memory saved",
            f"{saving:.1f}x less memory per step",
            "only the low-rank matrices have gradients and Adam moments",
        )
    verdict = HOLDS if saving >= 1.5 else PART if grad >= 5 else FAILS
    return Verdict(
        verdict,
        "fits in much less memory",
        f"{saving:.1f}x less memory per step; gradients and optimizer state {grad:.0f}x smaller",
        "only the low-rank matrices have gradients and Adam moments; the frozen weights and activations stay",
    )


SPEED_EXPERIMENTS = ("speculative-decoding", "batching-speedup", "repeated-sampling")

JUDGES: dict[str, Callable[[Mapping[str, Any], Claim], Verdict | None]] = {
    "speculative-decoding": judge_speculative,
    "batching-speedup": judge_batching,
    "kv-cache-growth": judge_kv,
    "quantization-loss": judge_quantization,
    "repeated-sampling": judge_repeated,
    "low-precision-matmul": judge_lowprec,
    "lora-finetune": judge_lora,
}


def judge(result: Mapping[str, Any], claim: Claim) -> Verdict | None:
    """The verdict of ``result`` (a result's JSON) on ``claim``; None when the experiment cannot say."""
    fn = JUDGES.get(str(result.get("experiment")))
    if fn is None or result.get("error"):
        return None
    try:
        v = fn(result, claim)  # None: the sentence claims nothing this experiment measures
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None
    if v is None:
        return None
    gpu = _untestable_gpu(result, claim, "the claim is about a GPU and this run had none")
    # speed ratios change with the hardware; bytes, losses and fits do not (and low-precision-matmul
    # names the CPU's matrix units as the stand-in)
    if gpu is not None and result.get("experiment") in SPEED_EXPERIMENTS:
        v = gpu
    return dataclasses.replace(v, machine=str(result.get("machine", "")))


# Neutral figures with every key each judge reads: a claim the judge gives a verdict against them is one
# the experiment can test, whatever it measures (``testable``: asked before anything is measured).
PROBES: dict[str, dict[str, Any]] = {
    "speculative-decoding": {"all_identical": True, "verify_cost_5_tokens_vs_1": 1.0, "rewrite_lookup_speedup": 1.0},
    "batching-speedup": {
        "llm_best_speedup": 2.0,
        "llm_best_batch": 8,
        "compute_bound_batch_fp32": 8.0,
        "ridge_FLOP_per_byte": 4.0,
        "llm_tokens_per_s_batch1": 20.0,
        "llm_MBU_pct_batch1": 50.0,
    },
    "kv-cache-growth": {"checks_agree_within_10pct": True, "model bytes_per_token": 24576},
    "quantization-loss": {
        f"int{b}_{k}": v for b in (8, 4, 3, 2) for k, v in (("ppl_ratio", 1.0), ("same_top1_pct", 99.0))
    },
    "repeated-sampling": {"cost_per_sample_at_max": 0.5, "max_samples": 8, "saving_at_max": 2.0},
    "low-precision-matmul": {
        "fp8_available": True,
        "best_mm_speedup": 2.0,
        "best_mv_speedup": 1.0,
        "best_low_precision": "bf16",
        "ridge_flop_per_byte": 10.0,
        **{f"{d}_{k}": 1.5 for d in ("bf16", "fp16", "int8") for k in ("mm_speedup", "mv_speedup")},
    },
    "lora-finetune": {
        "lora_rank_quoted": 8,
        "steps": 10,
        "lora_r8_memory_saving": 2.0,
        "lora_r8_grad_opt_saving": 10.0,
        "lora_r8_final_loss": 1.0,
        "full_final_loss": 1.0,
    },
}


def testable(experiment: str, claim: Claim) -> bool:
    """True when ``experiment``'s measurement can give ``claim`` a verdict (before it has run): its judge
    answers against neutral figures (``PROBES``) on a GPU-less machine or not alike."""
    if experiment not in JUDGES:
        return False
    probe = {
        "experiment": experiment,
        "device": "cuda",
        "summary": PROBES.get(experiment, {}),
        "rows": [],
        "columns": [],
    }
    return judge(probe, claim) is not None
