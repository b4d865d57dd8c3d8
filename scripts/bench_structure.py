#!/usr/bin/env python
"""Benchmark the structure stage with and without reuse of the transcript-prefix KV cache.

Runs ``structure_transcript`` twice on the same transcript (cache off, same
model and prompts): once reusing llama.cpp's KV cache for the shared prefix across
questions, once resetting it before every question. Prints both side by side with
the ratio and writes JSON (default ``bench-results/structure-<name>.json``).

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

from pipeline.cache import atomic_write_json  # noqa: E402
from pipeline.records import Transcript  # noqa: E402
from pipeline.structure import structure_transcript  # noqa: E402

KEYS = ("total_s", "questions", "prompt_tokens", "prompt_tokens_evaluated", "reused_tokens", "prompt_s",
        "prompt_tok_per_s", "gen_tokens", "gen_s", "gen_tok_per_s", "n_threads", "context", "sections")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transcript", help="transcript JSON")
    ap.add_argument("--llm", default="smollm2", help="LLM name or GGUF path (default smollm2)")
    ap.add_argument("--context", default="full", choices=["auto", "full", "excerpts"],
                    help="shared prefix: full transcript (default: shows the reuse effect best)")
    ap.add_argument("--budget", type=float, default=3600.0, help="LLM time budget per run, s (default: no limit)")
    ap.add_argument("-o", "--output", help="JSON file to write")
    a = ap.parse_args(argv)
    t = Transcript.from_dict(json.loads(Path(a.transcript).read_text(encoding="utf-8")))
    runs = {}
    for label, reuse in (("with_reuse", True), ("without_reuse", False)):
        t0 = time.perf_counter()
        post = structure_transcript(transcript=t, llm=a.llm, use_cache=False, reuse_prefix=reuse,
                                    llm_budget_s=a.budget, context=a.context,
                                    progress=lambda m, l=label: print(f"  [{l}] {m}", file=sys.stderr))
        runs[label] = {k: post["timing"].get(k) for k in KEYS} | {"wall_s": round(time.perf_counter() - t0, 3)}
    w, wo = runs["with_reuse"], runs["without_reuse"]
    ratio = wo["total_s"] / w["total_s"] if w["total_s"] else float("nan")
    print(f"{'':28}{'with reuse':>14}{'without':>14}")
    for k in KEYS:
        print(f"{k:28}{str(w[k]):>14}{str(wo[k]):>14}")
    print(f"speed-up from prefix KV reuse (total time without / with): {ratio:.2f}x")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {"transcript": a.transcript, "llm": a.llm, "context": a.context, "runs": runs,
              "ratio_total": round(ratio, 3), "machine": {"platform": platform.platform(),
                                                          "cpus": os.cpu_count(), "loadavg": load}}
    out = Path(a.output or f"bench-results/structure-{Path(a.transcript).stem}.json")
    atomic_write_json(out, result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
