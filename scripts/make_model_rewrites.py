"""Model-produced rewrites of real-register ramble sentences, for the paraphrase set (issue 24, item 4).

Picks 1-3 consecutive cleaned transcript sentences (12-60 words, carrying content) from every
real-register ramble of ``tests/data/structure_gold`` and ``tests/data/structure_holdout``
(``"register": "real"`` in labels.json, or a seed excerpt), spread over each ramble, and asks the
packaged models for a rewrite with the project's own prompt, exactly as
``structure.asking.rewrite_items`` does: system prompt ``structure_system``, prefix
``structure_context`` over the ramble's numbered sentences, question ``structure_rewrite`` with the
role description from ``structure_roles``, schema ``{"text": string}``, ``max_tokens =
REWRITE_WORDS[role] * TOKENS_PER_WORD + 12``, and the answer kept through ``salvage_text``.

The prefix is the "excerpts" context (only the ramble's picked sentences, in transcript order), as
the stage uses on CPU for transcripts over ``FULL_CONTEXT_MAX_TOKENS``; it keeps prompt evaluation
short on a shared 2-core machine. The role asked for is the gold role of the source sentences (the
reference sentence each transcript sentence matches best by word overlap); sources with no labelled
role are asked as ``focus`` or ``reason`` in turn.

Models per source (deterministic): of every 8 sources in a ramble, 5 go to qwen2.5-coder-1.5b,
2 to qwen2.5-coder-0.5b and 1 to smollm2. Whole rambles are assigned to the ``calibration`` or
``heldout`` split (alternating in name order, gold and holdout rambles together).

Output: ``--out`` (default /tmp/model_rewrites_raw.jsonl), one line per pair, unlabelled. The
labels (``faithful``, ``kind``) were then added by reading each pair, before any rule verdict was
looked at, giving ``tests/data/paraphrase/model_rewrites.jsonl`` (see its README).

How it was run (2026-12-05, on 2 CPU cores shared with other work, one model process, 1 llama.cpp
thread; 141 rewrites: 87 by qwen2.5-coder-1.5b, 36 by qwen2.5-coder-0.5b, 18 by smollm2, about 14 s
each, 33 minutes in all):

    RAMBLE2POST_LLM_THREADS=1 PYTHONPATH=pipeline .venv/bin/python scripts/make_model_rewrites.py \\
        --per-ramble 8 --out /tmp/model_rewrites_raw.jsonl

``--plan-only`` prints the sources without loading a model. The run appends to ``--out`` and skips
pairs already there, so an interrupted run can be resumed. Greedy decoding (temperature 0) makes a
rerun give the same rewrites for the same llama.cpp build and GGUF files.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))

from ramble2post.records import Transcript  # noqa: E402
from ramble2post.structure.asking import REWRITE_WORDS, TOKENS_PER_WORD, lines, salvage_text  # noqa: E402
from ramble2post.structure.models import load_llm  # noqa: E402
from ramble2post.structure.prompts import load_prompts  # noqa: E402
from ramble2post.structure.stage import _clean  # noqa: E402

DIRS = [ROOT / "tests/data/structure_gold", ROOT / "tests/data/structure_holdout"]
MODELS = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2"]
MODEL_CYCLE = [0, 0, 1, 0, 2, 0, 1, 0]  # per source index within a ramble: 5 x 1.5b, 2 x 0.5b, 1 x smollm2
LENGTH_CYCLE = [1, 2, 1, 3, 1, 2, 1, 1]  # sentences per source
MIN_WORDS, MAX_WORDS = 12, 60
STOP = set(
    "a an the and or but so if then of to in on at for with by from as is are was were be been it its it's "
    "this that these those i you we they he she my your our their me us them um uh like yeah okay oh just "
    "really kind sort thing things stuff know mean right well do does did have has had not no yes there "
    "what which who when where how why all some any more most very can could would should will get got go "
    "going say said let's let actually basically also too".split()
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def content_words(text: str) -> int:
    return sum(1 for w in words(text) if w not in STOP and len(w) > 2)


def real_rambles() -> list[Path]:
    out = []
    for base in DIRS:
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            lab = json.loads((d / "labels.json").read_text())
            if lab.get("register") == "real" or lab.get("source") == "seed":
                out.append(d)
    return out


def gold_roles(sent_text: str, labels: dict) -> list[str]:
    """Roles of the reference sentence that shares the most words with a transcript sentence."""
    ws = set(words(sent_text))
    best, roles = 0.0, []
    for ref in labels["sentences"]:
        rs = set(words(ref["text"]))
        j = len(ws & rs) / max(1, len(ws | rs))
        if j > best:
            best, roles = j, ref["roles"]
    return roles if best >= 0.4 else []


def pick_sources(sents, per_ramble: int, rng: random.Random):
    """Windows of 1-3 consecutive sentences, one from each of ``per_ramble`` equal stretches."""
    n = len(sents)
    chosen: list[list[int]] = []
    used: set[int] = set()
    for k in range(per_ramble):
        lo, hi = k * n // per_ramble, max(k * n // per_ramble + 1, (k + 1) * n // per_ramble)
        want = LENGTH_CYCLE[k % len(LENGTH_CYCLE)]
        options = []
        for length in (want, 1, 2, 3):
            for i in range(lo, hi):
                idx = list(range(i, min(n, i + length)))
                if len(idx) < length or used & set(idx):
                    continue
                text = " ".join(sents[j].text for j in idx)
                nw = len(text.split())
                if not MIN_WORDS <= nw <= MAX_WORDS:
                    continue
                if any(len(sents[j].text.split()) < 4 for j in idx):
                    continue
                if content_words(text) < 5 + 2 * (length - 1):
                    continue
                options.append(idx)
            if options:
                break
        if options:
            idx = rng.choice(options)
            chosen.append(idx)
            used |= set(idx)
    return chosen


def plan(per_ramble: int, seed: int):
    items = []
    rambles = real_rambles()
    for r_i, d in enumerate(rambles):
        labels = json.loads((d / "labels.json").read_text())
        sents, _ = _clean(Transcript.from_dict(json.loads((d / "transcript.json").read_text())))
        rng = random.Random(f"{seed}:{d.name}")
        split = "calibration" if r_i % 2 == 0 else "heldout"
        for k, idx in enumerate(pick_sources(sents, per_ramble, rng)):
            roles: list[str] = []
            for j in idx:
                roles += gold_roles(sents[j].text, labels)
            role = max(set(roles), key=roles.count) if roles else ("focus", "reason")[k % 2]
            items.append(
                {
                    "ramble": d.name,
                    "set": d.parent.name,
                    "split": split,
                    "sentence_ids": [sents[j].id for j in idx],
                    "source": " ".join(sents[j].text for j in idx),
                    "role": role,
                    "role_from": "gold" if roles else "default",
                    "model": MODELS[MODEL_CYCLE[k % len(MODEL_CYCLE)]],
                    "_context": [sents[j] for j in idx],
                }
            )
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-ramble", type=int, default=8)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--out", default="/tmp/model_rewrites_raw.jsonl")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset to run")
    ap.add_argument("--plan-only", action="store_true", help="print the sources and exit")
    args = ap.parse_args()

    items = plan(args.per_ramble, args.seed)
    if args.plan_only:
        for it in items:
            print(f"{it['ramble']:38s} {it['model']:20s} {it['role']:11s} {it['source']}")
        print(len(items), "sources")
        return

    prompts = load_prompts(ROOT / "prompts")
    roles_desc = prompts["structure_roles"].entries()
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            d = json.loads(line)
            done.add((d["ramble"], tuple(d["sentence_ids"]), d["model"]))
    for model_name in args.models.split(","):
        todo = [it for it in items if it["model"] == model_name]
        todo = [it for it in todo if (it["ramble"], tuple(it["sentence_ids"]), model_name) not in done]
        if not todo:
            continue
        t0 = time.perf_counter()
        llm = load_llm(model_name, system=prompts["structure_system"].text.strip())
        print(f"{model_name}: loaded in {time.perf_counter() - t0:.1f}s, {len(todo)} rewrites", flush=True)
        for ramble in dict.fromkeys(it["ramble"] for it in todo):
            group = [it for it in items if it["ramble"] == ramble]
            ctx = sorted({s.id: s for it in group for s in it["_context"]}.values(), key=lambda s: s.id)
            prefix = prompts["structure_context"].render(sentences=lines(ctx))
            for it in (it for it in todo if it["ramble"] == ramble):
                n = REWRITE_WORDS[it["role"]]
                q = prompts["structure_rewrite"].render(
                    role=it["role"],
                    role_description=roles_desc.get(it["role"], it["role"]),
                    source=it["source"],
                    max_words=str(n),
                )
                schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
                t1 = time.perf_counter()
                a = llm.ask(prefix=prefix, question=q, schema=schema, max_tokens=int(n * TOKENS_PER_WORD) + 12)
                rec = {k: v for k, v in it.items() if not k.startswith("_")}
                rec.update(
                    rewrite=salvage_text(a.text, "text"),
                    answer=a.text,
                    gen_tokens=a.gen_tokens,
                    seconds=round(time.perf_counter() - t1, 2),
                )
                with out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(f"  {ramble} {it['sentence_ids']} {rec['seconds']}s: {rec['rewrite'][:100]}", flush=True)
        del llm


if __name__ == "__main__":
    main()
