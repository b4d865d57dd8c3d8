"""Structuring speed vs llama.cpp's own: same model, prompts, grammar and sampling.

For each of the structuring questions about one transcript we time
  raw      llama-cpp-python's Llama.create_completion on the same tokens (cache reset each time),
  ours     pipeline.llm.LlamaCppLLM.ask with prefix reuse off (the same work as raw),
  ours+kv  pipeline.llm.LlamaCppLLM.ask with prefix reuse on (what the pipeline really does),
interleaved question by question so that all three see the same machine load, and print
tokens/s (prompt + generated tokens / wall s) with the ratios ours/raw.

    python scripts/bench_llm_speed.py [--transcript T.json] [--rounds 3] [--llm smollm2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCHEMA = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 90}}, "required": ["title"]}
QUESTIONS = [
    "Give this talk a title of at most 12 words, using the speaker's own words.",
    "Which sentence best states the single most important point? Answer with a short title.",
    "Which sentence gives the reason the idea exists? Answer with a short title.",
    "Which sentence is an everyday analogy? Answer with a short title.",
]
MAX_TOKENS = 32  # per answer


def _prefix(transcript_path: Path | None) -> str:
    if transcript_path:
        data = json.loads(transcript_path.read_text())
        text = " ".join(s["text"] for s in data["segments"])
    else:
        text = (ROOT / "samples" / "explain-format-ramble-1min.txt").read_text()
    return "Transcript of a spoken ramble:\n" + text + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transcript", type=Path, default=None, help="transcript JSON (default: the 1-min sample text)")
    ap.add_argument("--llm", default="smollm2", help="GGUF name or path")
    ap.add_argument("--rounds", type=int, default=3, help="repetitions of the whole question set")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "llm-speed.json", help="JSON output")
    args = ap.parse_args()

    from llama_cpp import Llama, LlamaGrammar

    from ramble2post.structure.llm import REPEAT_PENALTY, TEMPERATURE, LlamaCppLLM, resolve_gguf, schema_grammar

    name, path, source, expected = resolve_gguf(args.llm)
    ours = LlamaCppLLM(name=name, path=path, source=source, expected_sha256=expected, reuse_prefix=False)
    ours_kv = LlamaCppLLM(name=name, path=path, source=source, expected_sha256=expected, reuse_prefix=True)
    raw = Llama(
        model_path=str(path),
        n_ctx=ours.n_ctx,
        n_threads=ours.n_threads,
        n_batch=512,
        n_gpu_layers=-1 if ours.gpu_offload else 0,
        verbose=False,
        seed=0,
    )
    grammar = LlamaGrammar.from_string(schema_grammar(SCHEMA), verbose=False)
    prefix = _prefix(args.transcript)

    def run_raw(q: str) -> tuple[int, float]:
        tokens = ours._tokens(prefix, q)  # identical token ids to what ours sends
        raw.reset()
        t0 = time.perf_counter()
        out = raw.create_completion(
            tokens,
            max_tokens=MAX_TOKENS,
            temperature=TEMPERATURE,
            top_k=1,
            repeat_penalty=REPEAT_PENALTY,
            grammar=grammar,
            seed=0,
        )
        dt = time.perf_counter() - t0
        return len(tokens) + out["usage"]["completion_tokens"], dt

    def run_ours(llm, q: str) -> tuple[int, float]:
        t0 = time.perf_counter()
        a = llm.ask(prefix=prefix, question=q, schema=SCHEMA, max_tokens=MAX_TOKENS)
        dt = time.perf_counter() - t0
        return a.prompt_tokens + a.gen_tokens, dt

    run_raw(QUESTIONS[0]), run_ours(ours, QUESTIONS[0]), run_ours(ours_kv, QUESTIONS[0])  # warm-up
    totals = {"raw": [], "ours": [], "ours+kv": []}
    for _ in range(args.rounds):
        acc = {k: [0, 0.0] for k in totals}
        for q in QUESTIONS:
            for key, fn in (
                ("raw", lambda q=q: run_raw(q)),
                ("ours", lambda q=q: run_ours(ours, q)),
                ("ours+kv", lambda q=q: run_ours(ours_kv, q)),
            ):
                n, dt = fn()
                acc[key][0] += n
                acc[key][1] += dt
        for key, (n, dt) in acc.items():
            totals[key].append(n / dt)

    med = {k: statistics.median(v) for k, v in totals.items()}
    print(
        f"model {name} ({path.name}), {ours.n_threads} thread(s), {len(QUESTIONS)} questions x {args.rounds} rounds,"
        f" prefix {ours.count_tokens(prefix)} tokens"
    )
    print(f"{'path':<10}{'tok/s median':>14}{'min':>10}{'max':>10}{'ratio vs raw':>14}")
    for k, v in totals.items():
        print(f"{k:<10}{med[k]:>14.1f}{min(v):>10.1f}{max(v):>10.1f}{med[k] / med['raw']:>14.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": name,
                "threads": ours.n_threads,
                "tok_per_s": totals,
                "median": med,
                "ratio_ours_raw": med["ours"] / med["raw"],
                "ratio_ours_kv_raw": med["ours+kv"] / med["raw"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
