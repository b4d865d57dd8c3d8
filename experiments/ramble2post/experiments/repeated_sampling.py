"""``repeated-sampling``: is the N-th sample of one prompt nearly free?

The claim (e.g. "100 samples of an 8B model plus a verifier"): sampling one prompt
N times costs far less than N separate calls, because the samples share the
prompt's KV cache (the prompt is read once) and each decode step reads the
weights once for all N sequences (decode is memory-bound).

Measured with the GGUF LLM through llama.cpp's sequences: the prompt is
prefilled once into sequence 0 and copied to sequences 1..N-1 with
``llama_memory_seq_cp`` (the cells are shared, not copied), then every step
decodes one token for all N sequences in one ``llama_decode`` call, sampled at
temperature :data:`TEMPERATURE` so the samples differ. Against that: N
separate runs, each prefilling the prompt and decoding alone (one run timed,
times N: the runs are identical in cost). Per N: total time, tokens/s, the cost
of a sample relative to one sample, the marginal cost of the added samples, the
KV cache bytes (computed from the shapes and checked with
``llama_state_get_size``) and the process's resident memory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

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
from ramble2post.experiments.batching import int_list
from ramble2post.experiments.decode_bench import LlamaBatchDecoder, captured_llama_log, timing_plan

MIB = 2**20  # bytes per MiB
CTX_PAD = 256  # KV cells are allocated in multiples of this
TEMPERATURE = 0.8  # sampling temperature: the N samples must differ
PROMPT_TEXT = (
    "Here is a passage from a spoken ramble. Suggest a title for a blog post about it.\n\n"
    "So the thing about the format is that every post has three layers. The first layer is the one line that says "
    "what the whole thing is about. The second layer is a handful of points that hold it up, and the third layer is "
    "the detail, the numbers and the stories, for the people who want to dig in. And the reason I like it is that a "
    "reader can stop at any layer and still walk away with something. Most blogs bury the point in the middle, and "
    "I think a reader deserves to know in one line whether the rest is worth their time.\n\nTitle:"
)

COLUMNS = (
    "samples",
    "shared_s",
    "independent_s",
    "tokens_per_s",
    "independent_tokens_per_s",
    "cost_per_sample",
    "marginal_cost",
    "saving",
    "kv_shared_MiB",
    "kv_independent_MiB",
    "kv_measured_MiB",
    "rss_MiB",
    "distinct_samples",
)
UNITS = {
    "samples": "N (samples of one prompt)",
    "shared_s": "s (prefill once + N sequences per decode step)",
    "independent_s": "s (N separate runs: one run timed x N)",
    "tokens_per_s": "generated tokens/s, shared prompt",
    "independent_tokens_per_s": "generated tokens/s, separate runs",
    "cost_per_sample": "x the time of one sample alone",
    "marginal_cost": "x one sample, per sample added since the previous N",
    "saving": "x (independent time / shared time)",
    "kv_shared_MiB": "MiB (prompt once + N generations, computed)",
    "kv_independent_MiB": "MiB (N copies of prompt + generation, computed)",
    "kv_measured_MiB": "MiB (llama_state_get_size after the run)",
    "rss_MiB": "MiB (process resident memory after the run)",
    "distinct_samples": "different outputs among the N",
}

TRIGGERS = (
    Trigger(
        r"\b(?:repeated|parallel|multiple|many|best[\s-]of[\s-]\w+)[\s-]s[ai]mpl\w*\b|\bsample[sd]? (?:it |the same "
        r"(?:prompt|question) )?(?:many|a hundred|\d+|\w+ hundred|\w+ty(?:[\s-]\w+)?|multiple|several) times\b",
        1.0,
        "repeated sampling",
    ),
    Trigger(
        r"\b(?:\d+|a hundred|hundred|thousand|\w+ty) samples?\b|\bbest[\s-]of[\s-](?:n|\d+)\b|\bmajority vot\w*\b"
        r"|\bself[\s-]consistency\b",
        1.0,
        "N samples",
    ),
    Trigger(r"\bverifier\b|\bverify[\s-]her\b|\bvery[\s-]?fire\b|\bpass at (?:k|\d+)\b|\bpass@\w+\b", 0.5, "verifier"),
    Trigger(r"\bsampl(?:e|es|ing)\b", 0.25, "sampling", context=True),
    Trigger(
        r"\b(?:nearly|almost|basically|practically) free\b|\bfor free\b|\bshared? (?:the )?(?:prompt|prefix|kv)\b"
        r"|\bmemory[\s-]bound\b",
        0.25,
        "nearly free",
        context=True,
    ),
)


@register
class RepeatedSampling(Experiment):
    name = "repeated-sampling"
    version = "1"
    claim = "Sampling one prompt N times costs far less than N separate calls: the samples share the prompt's KV cache."
    triggers = TRIGGERS
    descriptions = (
        "sampling the same prompt many times with a verifier costs much less than separate calls",
        "generating many samples of one prompt in parallel shares the prompt and each extra sample is nearly free",
        "best of N, majority voting or self consistency over many samples of the same question",
        "a hundred tries from a small model plus a checker that picks the right answer beat one answer from a big model",
    )
    params = {
        "samples": Param((1, 2, 4, 8, 16, 32, 64), "numbers of samples N", quick=(1, 2, 4, 8, 16)),
        "gen_tokens": Param(48, "tokens generated per sample", quick=24),
        "single_runs": Param(3, "separate single-sample runs timed (median)", quick=2),
        "seed": Param(0, "sampling seed"),
    }

    def run(self, context: Context) -> Result:
        from ramble2post.structure import llm as llm_mod

        p = self.resolve_params(context)
        ns = sorted(set(int_list(p["samples"], "samples")))
        if not ns or ns[0] != 1:
            raise ExperimentError("samples must include 1 (the baseline)", hint="e.g. --param 'samples=[1,2,4]'")
        gen = int(p["gen_tokens"])
        threads, clock, why = timing_plan(context.device)
        timer = time.process_time if clock == "cpu" else time.perf_counter
        name, path, _src, _exp = llm_mod.resolve_gguf(context.llm)
        models = [ModelUsed(role="llm", name=name, path=str(path), sha256=llm_mod._sha256_cached(path))]
        rng = np.random.default_rng(int(p["seed"]))
        rows: list[tuple] = []
        with LlamaBatchDecoder(path=path, threads=threads, n_gpu_layers=-1 if context.device == "cuda" else 0) as dec:
            prompt = _tokenize(dec, PROMPT_TEXT)
            per_tok = dec.kv_bytes_per_token()
            context.report(f"{name}: {len(prompt)}-token prompt, one sample alone")
            singles = []
            for _ in range(int(p["single_runs"])):
                with _context(dec, n_seq=1, n_ctx=len(prompt) + gen + 1) as ctx:
                    singles.append(_sample(dec, ctx, prompt, n=1, gen=gen, rng=rng, timer=timer)[0])
            single_s = sorted(singles)[len(singles) // 2]
            prev: tuple[int, float] | None = None
            for n in ns:
                context.report(f"{n} samples sharing the prompt")
                with _context(dec, n_seq=n, n_ctx=len(prompt) + n * gen + 1) as ctx:
                    secs, outs, state = _sample(dec, ctx, prompt, n=n, gen=gen, rng=rng, timer=timer)
                rows.append(_row(n, secs, single_s, prev, gen, len(prompt), per_tok, state, outs))
                prev = (n, secs)
        summary = _summary(rows, single_s, len(prompt), gen)
        notes = [
            f"Timing: {why}; the machine may be shared with other work.",
            "Only prefill and llama_decode calls are timed (sampling from the logits is not, on either side).",
            f"Samples drawn at temperature {TEMPERATURE}; prompt {len(prompt)} tokens, {gen} tokens per sample.",
        ]
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
        from ramble2post.experiments.plots_decoding import repeated_sampling_png

        return {"repeated-sampling.png": repeated_sampling_png(results)}

    def reader_table(self, result: Result) -> ReaderTable:
        columns = {
            "samples": "samples N",
            "shared_s": "shared prompt [s]",
            "independent_s": "N separate runs [s]",
            "tokens_per_s": "throughput [tokens/s]",
            "cost_per_sample": "cost per sample [x one sample]",
            "marginal_cost": "cost of added samples [x one sample]",
            "kv_shared_MiB": "KV cache [MiB]",
        }
        return ReaderTable.pick(result, columns, finding=reading(result.summary))

    def plot_alt(self, result: Result) -> str:
        return "Total time and cost per sample for N samples of one prompt versus N separate runs. " + reading(
            result.summary
        )


# ------------------------------------------------------------------ llama.cpp


def _tokenize(dec: LlamaBatchDecoder, text: str) -> list[int]:
    import llama_cpp

    raw = text.encode("utf-8")
    buf = (llama_cpp.llama_token * (len(raw) + 8))()
    n = llama_cpp.llama_tokenize(dec.vocab, raw, len(raw), buf, len(raw) + 8, True, False)
    if n <= 0:
        raise ExperimentError("llama.cpp could not tokenize the prompt")
    return list(buf[:n])


@contextlib.contextmanager
def _context(dec: LlamaBatchDecoder, *, n_seq: int, n_ctx: int) -> Iterator[Any]:
    """A context for ``n_seq`` sequences in one unified KV cache (batches sized for the prompt or N tokens)."""
    import llama_cpp as ll

    cp = ll.llama_context_default_params()
    cp.n_ctx = -(-n_ctx // CTX_PAD) * CTX_PAD
    cp.n_batch = cp.n_ubatch = max(512, n_seq)
    cp.n_seq_max = n_seq
    cp.n_threads = cp.n_threads_batch = dec.threads
    cp.kv_unified = True
    cp.no_perf = True
    with captured_llama_log():
        ctx = ll.llama_init_from_model(dec.model, cp)
    if not ctx:
        raise ExperimentError(f"llama.cpp could not create a context for {n_seq} sequences", hint="lower samples")
    try:
        yield ctx
    finally:
        with captured_llama_log():
            ll.llama_free(ctx)


def _draw(logits: np.ndarray, rng: np.random.Generator) -> int:
    z = logits.astype(np.float64) / TEMPERATURE
    z -= z.max()
    prob = np.exp(z)
    return int(rng.choice(prob.shape[0], p=prob / prob.sum()))


def _sample(
    dec: LlamaBatchDecoder, ctx: Any, prompt: list[int], *, n: int, gen: int, rng: np.random.Generator, timer
) -> tuple[float, list[tuple[int, ...]], int]:
    """Prefill once, share the prompt with N sequences, decode ``gen`` tokens each. -> (seconds, outputs, state bytes)."""
    import llama_cpp as ll

    mem = ll.llama_get_memory(ctx)
    ll.llama_memory_clear(mem, True)
    nv = dec.shape.n_vocab
    lb = ll.llama_batch_init(max(len(prompt), n), 0, 1)
    outs: list[list[int]] = [[] for _ in range(n)]
    try:
        lb.n_tokens = len(prompt)
        for i, tok in enumerate(prompt):
            lb.token[i], lb.pos[i], lb.n_seq_id[i] = tok, i, 1
            lb.seq_id[i][0] = 0
            lb.logits[i] = i == len(prompt) - 1
        t0 = timer()
        _decode(ll, ctx, lb)
        for s in range(1, n):
            ll.llama_memory_seq_cp(mem, 0, s, -1, -1)  # shares the prompt's cells with sequence s
        secs = timer() - t0
        last = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, len(prompt) - 1), shape=(nv,)).copy()
        nxt = [_draw(last, rng) for _ in range(n)]
        for step in range(gen):
            lb.n_tokens = n
            for s in range(n):
                outs[s].append(nxt[s])
                lb.token[s], lb.pos[s], lb.n_seq_id[s] = nxt[s], len(prompt) + step, 1
                lb.seq_id[s][0] = s
                lb.logits[s] = True
            t0 = timer()
            _decode(ll, ctx, lb)
            secs += timer() - t0
            nxt = [_draw(np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, s), shape=(nv,)), rng) for s in range(n)]
        with captured_llama_log():
            state = int(ll.llama_state_get_size(ctx))
    finally:
        ll.llama_batch_free(lb)
    return secs, [tuple(o) for o in outs], state


def _decode(ll: Any, ctx: Any, lb: Any) -> None:
    rc = ll.llama_decode(ctx, lb)
    if rc != 0:
        raise ExperimentError(f"llama_decode failed with code {rc}", hint="the KV cache is full: lower samples")


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# --------------------------------------------------------------------- rows


def _row(n, secs, single_s, prev, gen, n_prompt, per_tok, state, outs) -> tuple:
    indep = n * single_s
    marginal = None
    if prev is not None and n > prev[0]:
        marginal = round((secs - prev[1]) / (n - prev[0]) / single_s, 3)
    return (
        n,
        round(secs, 4),
        round(indep, 4),
        round(n * gen / secs, 2),
        round(n * gen / indep, 2),
        round(secs / n / single_s, 3),
        marginal,
        round(indep / secs, 3),
        round((n_prompt + n * gen) * per_tok / MIB, 3),
        round(n * (n_prompt + gen) * per_tok / MIB, 3),
        round(state / MIB, 3),
        round(_rss_bytes() / MIB, 1),
        len(set(outs)),
    )


def _summary(rows: Sequence[tuple], single_s: float, n_prompt: int, gen: int) -> dict[str, Any]:
    last = rows[-1]
    return {
        "prompt_tokens": n_prompt,
        "gen_tokens_per_sample": gen,
        "single_sample_s": round(single_s, 4),
        "max_samples": last[0],
        "cost_per_sample_at_max": last[5],
        "marginal_cost_at_max": last[6],
        "saving_at_max": last[7],
        "tokens_per_s_1": rows[0][3],
        "tokens_per_s_at_max": last[3],
        "kv_shared_MiB_at_max": last[8],
        "kv_independent_MiB_at_max": last[9],
    }


def reading(summary: Any) -> str:
    """How close to free the N-th sample is, in one sentence."""
    n = summary["max_samples"]
    txt = (
        f"On this machine, {n} samples of one prompt sharing its KV cache took {summary['cost_per_sample_at_max']:.2f}x "
        f"the time of one sample each ({summary['saving_at_max']:.1f}x less than {n} separate runs), "
        f"at {summary['tokens_per_s_at_max']:.0f} tokens/s against {summary['tokens_per_s_1']:.0f} for one"
    )
    if summary.get("marginal_cost_at_max") is not None:
        txt += f"; each sample added at the top cost {summary['marginal_cost_at_max']:.2f}x a lone sample"
    return (
        txt + f", and the shared cache held {summary['kv_shared_MiB_at_max']:.1f} MiB instead of "
        f"{summary['kv_independent_MiB_at_max']:.1f} MiB."
    )


__all__ = ["RepeatedSampling", "reading"]
