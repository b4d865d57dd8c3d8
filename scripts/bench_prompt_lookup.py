#!/usr/bin/env python
"""Does prompt-lookup decoding speed up the structure stage, with identical output?

1. Runs the structure stage once on TRANSCRIPT (default: the bundled 13-minute ramble)
   and records every question it asks the LLM.
2. Replays each question on two copies of the model, interleaved question by
   question so both see the same machine load: plain greedy decoding, and the same
   with llama.cpp prompt-lookup (n-gram) speculative decoding. Both with flash
   attention (needed for batch-invariant logits on CPU, see docs/EXPERIMENTS.md).
3. Prints, per step kind (rewrite / other questions): wall time per answer with and
   without lookup, the speed-up, and how many answers are identical; writes JSON.
   Only wall time is compared: llama.cpp's performance counters book every
   multi-token batch (each verification of drafted tokens) as prompt evaluation, so
   its prompt/generation split undercounts speculative generation time.

Usage: python scripts/bench_prompt_lookup.py [TRANSCRIPT.json] [--llm smollm2] [--limit N] [-o out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ramble2post.cache import atomic_write_json  # noqa: E402
from ramble2post.records import Transcript  # noqa: E402
from ramble2post.structure.llm import LlamaCppLLM, resolve_gguf  # noqa: E402
from ramble2post.structure.models import register_backend, unregister_backend  # noqa: E402
from ramble2post.structure.prompts import load_prompts  # noqa: E402
from ramble2post.structure.stage import structure_transcript  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_structure import Recorder  # noqa: E402  (records every question asked)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRANSCRIPT = REPO / "tests" / "data" / "structure_gold" / "explain-format" / "transcript.json"


def _kind(kw: dict) -> str:
    return "rewrite" if "rewrite" in kw["question"].lower() else "other"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transcript", nargs="?", default=str(DEFAULT_TRANSCRIPT))
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--limit", type=int, default=0, help="replay at most N questions (0: all)")
    ap.add_argument("-o", "--output", default="bench-results/prompt-lookup.json")
    a = ap.parse_args(argv)
    name, path, source, expected = resolve_gguf(a.llm)
    system = load_prompts()["structure_system"].text.strip()

    def make(lookup: bool) -> LlamaCppLLM:
        return LlamaCppLLM(
            name=name,
            path=path,
            source=source,
            expected_sha256=expected,
            system=system,
            prompt_lookup=lookup,
            flash_attn=True,
        )

    rec = Recorder(make(False))
    register_backend("bench-lookup", lambda *, reuse_prefix=True: rec)
    t0 = time.perf_counter()
    try:
        structure_transcript(
            transcript=Transcript.from_dict(json.loads(Path(a.transcript).read_text(encoding="utf-8"))),
            llm="bench-lookup",
            use_cache=False,
            llm_budget_s=3600.0,
            progress=lambda m: print(f"  {m}", file=sys.stderr),
        )
    finally:
        unregister_backend("bench-lookup")
    print(f"recorded {len(rec.calls)} questions in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    plain, fast = rec.inner, make(True)
    calls = rec.calls[: a.limit] if a.limit else rec.calls
    stats: dict[str, dict[str, float]] = {}
    for i, kw in enumerate(calls):
        x = plain.ask(**kw)
        y = fast.ask(**kw)
        s = stats.setdefault(
            _kind(kw), {"questions": 0, "identical": 0, "gen_tokens": 0, "plain_s": 0.0, "lookup_s": 0.0}
        )
        s["questions"] += 1
        s["identical"] += int(x.text == y.text)
        s["gen_tokens"] += x.gen_tokens
        s["plain_s"] += x.prompt_s + x.gen_s  # = the ask's wall time
        s["lookup_s"] += y.prompt_s + y.gen_s
        if x.text != y.text:
            print(f"  question {i} differs:\n    plain:  {x.text!r}\n    lookup: {y.text!r}", file=sys.stderr)
    print(
        f"\n{'step':<10}{'questions':>10}{'identical':>10}{'tokens':>8}{'plain s':>9}{'lookup s':>10}{'speed-up':>10}"
    )
    for k, s in stats.items():
        s["speedup"] = round(s["plain_s"] / max(s["lookup_s"], 1e-9), 3)
        print(
            f"{k:<10}{s['questions']:>10}{s['identical']:>10}{s['gen_tokens']:>8}{s['plain_s']:>9.2f}"
            f"{s['lookup_s']:>10.2f}{s['speedup']:>9.2f}x"
        )
    out = {
        "transcript": a.transcript,
        "llm": a.llm,
        "threads": plain.n_threads,
        "stats": stats,
        "loadavg": os.getloadavg(),
        "note": "interleaved replay, flash attention on for both; the machine may be shared",
    }
    atomic_write_json(Path(a.output), out)
    print(f"wrote {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
