#!/usr/bin/env python
"""Benchmark the structure stage with and without reuse of the transcript-prefix KV cache.

Two measurements, printed side by side with their ratios and written as JSON
(default ``bench-results/structure-<name>.json``):

1. end to end: ``structure_transcript`` run twice (cache off, same model and
   prompts), once reusing llama.cpp's KV cache for the shared prefix across
   questions and once resetting it before every question;
2. interleaved replay: every question of the first run is asked again twice,
   alternating reuse / reset question by question, so both modes see the same
   machine load (the end-to-end pair runs minutes apart, which on a shared machine
   can swamp the difference).

Usage: python scripts/bench_structure.py TRANSCRIPT.json [--llm smollm2] [--context full] [-o out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ramble2post.cache import atomic_write_json  # noqa: E402
from ramble2post.records import Transcript  # noqa: E402
from ramble2post.structure.models import load_llm, register_backend, unregister_backend  # noqa: E402
from ramble2post.structure.stage import structure_transcript  # noqa: E402

KEYS = (
    "total_s",
    "questions",
    "prompt_tokens",
    "prompt_tokens_evaluated",
    "reused_tokens",
    "prompt_s",
    "prompt_tok_per_s",
    "gen_tokens",
    "gen_s",
    "gen_tok_per_s",
    "n_threads",
    "context",
    "sections",
)


class Recorder:
    """Wraps a real LLM and remembers every question asked through it."""

    def __init__(self, inner):
        self.inner, self.info, self.n_ctx = inner, inner.info, inner.n_ctx
        self.n_threads = getattr(inner, "n_threads", None)
        self.gpu_offload = getattr(inner, "gpu_offload", False)
        self.calls: list[dict] = []

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def ask(self, **kw):
        self.calls.append(kw)
        return self.inner.ask(**kw)


def _sum(answers):
    s = {
        "prompt_tokens_evaluated": sum(a.prompt_tokens - a.reused_tokens for a in answers),
        "prompt_s": round(sum(a.prompt_s for a in answers), 3),
        "gen_tokens": sum(a.gen_tokens for a in answers),
        "gen_s": round(sum(a.gen_s for a in answers), 3),
    }
    s["total_s"] = round(s["prompt_s"] + s["gen_s"], 3)
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transcript", help="transcript JSON")
    ap.add_argument("--llm", default="smollm2", help="LLM name or GGUF path (default smollm2)")
    ap.add_argument(
        "--context",
        default="full",
        choices=["auto", "full", "excerpts"],
        help="shared prefix the questions are asked over (default: full transcript)",
    )
    ap.add_argument("--budget", type=float, default=3600.0, help="LLM time budget per run, s (default: no limit)")
    ap.add_argument("--skip-e2e-without", action="store_true", help="only the interleaved replay for 'without'")
    ap.add_argument("-o", "--output", help="JSON file to write")
    a = ap.parse_args(argv)
    t = Transcript.from_dict(json.loads(Path(a.transcript).read_text(encoding="utf-8")))
    rec: Recorder | None = None

    def factory(*, reuse_prefix=True):
        nonlocal rec
        from ramble2post.structure.prompts import load_prompts

        inner = load_llm(a.llm, reuse_prefix=reuse_prefix, system=load_prompts()["structure_system"].text.strip())
        rec = Recorder(inner)
        return rec

    register_backend("bench-recorder", factory)
    runs = {}
    try:
        modes = (("with_reuse", True),) + (() if a.skip_e2e_without else (("without_reuse", False),))
        recorded = None
        for label, reuse in modes:
            t0 = time.perf_counter()
            post = structure_transcript(
                transcript=t,
                llm="bench-recorder",
                use_cache=False,
                reuse_prefix=reuse,
                llm_budget_s=a.budget,
                context=a.context,
                progress=lambda m, lb=label: print(f"  [{lb}] {m}", file=sys.stderr),
            )
            runs[label] = {k: post.timing.get(k) for k in KEYS} | {"wall_s": round(time.perf_counter() - t0, 3)}
            if reuse:
                recorded = rec
    finally:
        unregister_backend("bench-recorder")
    print("  replaying questions interleaved (reset / reuse)", file=sys.stderr)
    llm = recorded.inner
    with_ans, without_ans = [], []
    for kw in recorded.calls:
        # reuse first: the KV cache then holds the prefix plus the *previous* question, exactly
        # as in a reuse run (asking after the reset run would find this question cached too)
        llm.reuse_prefix = True
        with_ans.append(llm.ask(**kw))
        llm.reuse_prefix = False
        without_ans.append(llm.ask(**kw))
    replay = {"with_reuse": _sum(with_ans), "without_reuse": _sum(without_ans)}

    print(f"\nend to end ({len(recorded.calls)} questions)")
    cols = list(runs)
    print(f"{'':28}" + "".join(f"{c:>16}" for c in cols))
    for k in KEYS + ("wall_s",):
        print(f"{k:28}" + "".join(f"{str(runs[c][k]):>16}" for c in cols))
    ratio_e2e = None
    for r in runs.values():
        r["llm_s"] = round((r["prompt_s"] or 0) + (r["gen_s"] or 0), 3)
    if "without_reuse" in runs and runs["with_reuse"]["llm_s"]:
        # LLM time, not total: the first run also pays the one-off embedding-model load
        ratio_e2e = runs["without_reuse"]["llm_s"] / runs["with_reuse"]["llm_s"]
        print(f"llm_s (prompt_s + gen_s): {runs['with_reuse']['llm_s']} vs {runs['without_reuse']['llm_s']}")
        print(f"end-to-end LLM time without / with reuse: {ratio_e2e:.2f}x")
    print("\ninterleaved replay (same questions, same moment)")
    print(f"{'':28}{'with_reuse':>16}{'without_reuse':>16}")
    for k in replay["with_reuse"]:
        print(f"{k:28}{str(replay['with_reuse'][k]):>16}{str(replay['without_reuse'][k]):>16}")
    ratio_replay = replay["without_reuse"]["total_s"] / max(replay["with_reuse"]["total_s"], 1e-9)
    ratio_prompt = replay["without_reuse"]["prompt_s"] / max(replay["with_reuse"]["prompt_s"], 1e-9)
    print(f"replay LLM time without / with reuse: {ratio_replay:.2f}x (prompt evaluation alone: {ratio_prompt:.2f}x)")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {
        "transcript": a.transcript,
        "llm": a.llm,
        "context": a.context,
        "end_to_end": runs,
        "ratio_end_to_end": round(ratio_e2e, 3) if ratio_e2e else None,
        "replay": replay,
        "ratio_replay": round(ratio_replay, 3),
        "ratio_replay_prompt": round(ratio_prompt, 3),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": load},
    }
    out = Path(a.output or f"bench-results/structure-{Path(a.transcript).stem}.json")
    atomic_write_json(out, result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
