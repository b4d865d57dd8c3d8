#!/usr/bin/env python
"""Can a small instruct model judge roles? P(yes) of "does this sentence give the <role>?" on the gold set.

Issue 23's question before any design: which packaged model, asked one yes/no question per
(sentence, role) with the sentence's neighbours as context, separates the sentences the labels
allow in a role from the others, and at what cost. For every labelled ramble (gold set and
holdout), every role: the sentences labelled with it (positives) and as many sentences not
labelled with it (negatives: half at random, half the most similar to the positives by words,
so the task is not just "is this on topic"); for a role the ramble lacks, negatives only. The
model reads one ChatML prompt; the probability of "Yes" against "No" at the first answer token
is read from the logits (no sampling). Reported per model: ROC AUC (how well P(yes) ranks
positives over negatives), precision and recall at P(yes) >= 0.5, mean s per question.

The labels are on the reference text (what was said), not on a transcript: this measures the
judge, not the transcription. Nothing here is used by the pipeline yet.

Usage:
    .venv/bin/python scripts/bench_role_judge.py --models smollm2,qwen2.5-coder-0.5b
    .venv/bin/python scripts/bench_role_judge.py --models qwen2.5-coder-1.5b --sets holdout --per-class 2
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from _lib.gold import GoldRamble, gold_set  # noqa: E402

from ramble2post.structure.llm import resolve_gguf  # noqa: E402

SETS = {"gold": REPO / "tests/data/structure_gold", "holdout": REPO / "tests/data/structure_holdout"}
ROLE_QUESTION = {  # what each role is, in the words of the three-layer format (../shared/FORMAT.md)
    "focus": "state the speaker's main point (the one idea the talk is about)",
    "reason": "give a reason: why the thing exists, what problem it solves, or why it works",
    "example": "give a concrete example or worked case the listener can walk through (numbers, a specific run)",
    "analogy": "give an analogy: a comparison with an everyday thing outside the topic",
    "connections": "connect the idea to another idea, or tell the listener what to try, read or measure next",
    "tradeoffs": "name a trade-off: a cost, a downside, or options that each cost something",
}
SYSTEM = "You label sentences of a spoken talk. Answer with one word: Yes or No."
_WORD = re.compile(r"[a-z]{4,}")


def chatml(system: str, user: str) -> str:
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def question(g: GoldRamble, i: int, role: str) -> str:
    before = g.sentences[i - 1] if i > 0 else ""
    after = g.sentences[i + 1] if i + 1 < len(g.sentences) else ""
    return (
        f"Talk about: {g.topic_terms[0] if g.topic_terms else 'a technical topic'}\n"
        f"Context: {before}\nSentence: {g.sentences[i]}\nContext: {after}\n\n"
        f"Does the Sentence itself {ROLE_QUESTION[role]}? Answer Yes or No."
    )


def cases(g: GoldRamble, per_class: int, rng: random.Random) -> list[tuple[int, str, bool]]:
    """(sentence index, role, labelled with it) pairs: positives, random and look-alike negatives."""
    out = []
    for role in ROLE_QUESTION:
        pos = [i for i, rs in enumerate(g.roles) if role in rs]
        neg = [i for i, rs in enumerate(g.roles) if role not in rs and len(g.sentences[i].split()) >= 6]
        chosen = rng.sample(pos, min(per_class, len(pos)))
        words = set().union(*(_WORD.findall(g.sentences[i].lower()) for i in pos)) if pos else set()
        alike = sorted(neg, key=lambda i: -len(words & set(_WORD.findall(g.sentences[i].lower()))))
        n_neg = per_class if pos else 2 * per_class  # a role the ramble lacks: only negatives to get wrong
        hard = alike[: n_neg // 2] if pos else []
        rest = [i for i in neg if i not in hard]
        negs = hard + rng.sample(rest, min(n_neg - len(hard), len(rest)))
        out += [(i, role, True) for i in chosen] + [(i, role, False) for i in negs]
    return out


def p_yes(llm, prompt: str, yes: list[int], no: list[int]) -> float:
    """P(Yes) / (P(Yes) + P(No)) at the first answer token, from the logits (prefix kept in the KV cache)."""
    import llama_cpp
    import numpy as np

    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    common = 0
    for a, b in zip(llm._input_ids.tolist(), tokens):
        if a != b:
            break
        common += 1
    llm.n_tokens = min(common, len(tokens) - 1)  # the shared system prefix stays in the KV cache
    llm.eval(tokens[llm.n_tokens :])
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)  # the last token's logits (logits_all off)
    logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)
    ly, ln = np.logaddexp.reduce(logits[yes]), np.logaddexp.reduce(logits[no])
    return float(1.0 / (1.0 + math.exp(ln - ly)))


def auc(scores: list[tuple[float, bool]]) -> float:
    pos = [s for s, y in scores if y]
    neg = [s for s, y in scores if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2,qwen2.5-coder-0.5b", help="packaged ChatML models, comma-separated")
    ap.add_argument("--sets", default="gold,holdout", help="gold, holdout or both")
    ap.add_argument("--per-class", type=int, default=2, help="positives (and negatives) per role and ramble")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    from llama_cpp import Llama

    rambles = [g for s in args.sets.split(",") for g in gold_set(SETS[s])]
    rng = random.Random(args.seed)
    work = [(g, c) for g in rambles for c in cases(g, args.per_class, rng)]
    print(f"machine: {platform.machine()}, {args.threads} threads; {len(rambles)} rambles, {len(work)} questions")
    print(f"{'model':<22} {'AUC':>5} {'prec@.5':>8} {'rec@.5':>7} {'s/q':>6}  AUC per role")
    for name in args.models.split(","):
        _, path, *_ = resolve_gguf(name)
        llm = Llama(model_path=str(path), n_ctx=1024, n_threads=args.threads, verbose=False)
        yes = sorted({llm.tokenize(w.encode(), add_bos=False)[0] for w in ("Yes", " Yes", "yes")})
        no = sorted({llm.tokenize(w.encode(), add_bos=False)[0] for w in ("No", " No", "no")})
        scored: list[tuple[str, float, bool]] = []
        t0 = time.perf_counter()
        for g, (i, role, label) in work:
            scored.append((role, p_yes(llm, chatml(SYSTEM, question(g, i, role)), yes, no), label))
        per_q = (time.perf_counter() - t0) / len(work)
        flat = [(s, y) for _, s, y in scored]
        tp = sum(1 for s, y in flat if s >= 0.5 and y)
        fp = sum(1 for s, y in flat if s >= 0.5 and not y)
        fn = sum(1 for s, y in flat if s < 0.5 and y)
        roles = " ".join(f"{r[:5]} {auc([(s, y) for rr, s, y in scored if rr == r]):.2f}" for r in ROLE_QUESTION)
        prec = tp / (tp + fp) if tp + fp else float("nan")
        print(f"{name:<22} {auc(flat):5.2f} {prec:8.2f} {tp / (tp + fn):7.2f} {per_q:6.2f}  {roles}")
        del llm
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
