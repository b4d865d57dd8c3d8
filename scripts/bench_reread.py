#!/usr/bin/env python
"""Jargon recall, extra terms and WER before and after the model's re-reading (``structure.reread``).

Reads transcripts already made by the other benchmarks, so the figures compare the same words:
``--jargon`` takes a ``scripts/bench_jargon_prompt.py --json`` report (each ramble's text with the
prompt and glossary, and the structure stage's listed context fixes: ``sentence/on+context``),
``--auto`` a ``scripts/bench_auto_engine.py --json`` report (``auto``'s text per clip; the glossary
and the listed context fixes are applied here, as the stage does) with its clip set's references.
Each text is split into sentences and re-read by the default model (or ``--llm``) at the shipped
margin, and at ``--margin`` values from the same checks (the margins are replayed, not re-scored).
The references themselves are re-read too: any change there is a term the speaker did not say.

Recall as in scripts/bench_jargon.py (sum over built-in terms of min(reference, text) counts over
the reference counts); "extra": term occurrences written beyond the reference's.

    .venv/bin/python scripts/bench_jargon_prompt.py --gold tests/data/jargon_holdout --json jh.json
    .venv/bin/python scripts/bench_reread.py --jargon jh.json --json reread-jh.json
    .venv/bin/python scripts/bench_reread.py --auto auto26.json --clips tests/data/short_clips/clips.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "pipeline"))
sys.path.insert(0, str(REPO / "scripts"))
from bench_jargon_prompt import score  # noqa: E402 - the same recall, extra-term and WER measure


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!])\s+", " ".join(text.split())) if s]


def documents(args: argparse.Namespace) -> list[dict[str, str]]:
    """(name, text, reference) of each transcript to re-read."""
    from ramble2post.structure.jargon import fix_jargon
    from ramble2post.transcribe.glossary import Glossary, correct_text

    docs = []
    if args.jargon:
        report = json.loads(args.jargon.read_text(encoding="utf-8"))
        for entry in report["rambles"]:
            folder = REPO / "tests/data" / entry["set"] / entry["ramble"]
            ref = (folder / "reference.txt").read_text(encoding="utf-8")
            docs.append({"name": entry["ramble"], "text": entry["texts"][args.variant], "reference": ref})
    if args.auto:
        refs = {}
        for clips in args.clips:
            refs |= {c["id"]: c["reference"] for c in json.loads(clips.read_text(encoding="utf-8"))["clips"]}
        glossary = Glossary.build()
        rows = [row for path in args.auto for row in json.loads(path.read_text(encoding="utf-8"))["rows"]]
        for row in rows:
            text = " ".join(fix_jargon(sentences(correct_text(row["auto"]["text"], glossary)[0]))[0])
            docs.append({"name": row["id"], "text": text, "reference": refs[row["id"]]})
    return docs


def replay(texts: list[str], checks: list[dict], margin: float) -> list[str]:
    """The texts as ``reread`` leaves them at ``margin``, from its logged checks (the surest run first)."""
    out = list(texts)
    by_sentence: dict[int, list[dict]] = {}
    for c in checks:
        if c["nats"] >= margin:
            by_sentence.setdefault(c["sentence"], []).append(c)
    for k, found in by_sentence.items():
        for c in sorted(found, key=lambda c: -c["nats"]):
            if c["heard"] in out[k]:
                out[k] = re.sub(rf"(?<!\w){re.escape(c['heard'])}(?!\w)", lambda _m, t=c["term"]: t, out[k], count=1)
    return out


def main() -> None:
    from ramble2post.config import DEFAULT_LLM
    from ramble2post.structure.models import load_llm
    from ramble2post.structure.reread import MARGIN_NATS, reread

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jargon", type=Path, help="a bench_jargon_prompt.py --json report")
    ap.add_argument("--variant", default="sentence/on+context", help="which of its texts (prompt/glossary)")
    ap.add_argument("--auto", type=Path, action="append", default=[], help="a bench_auto_engine.py --json report")
    ap.add_argument(
        "--clips",
        type=Path,
        action="append",
        default=[],
        help="clip sets with the references of --auto (default: both short-clip sets)",
    )
    ap.add_argument("--llm", default=DEFAULT_LLM, help="the model that re-reads (default: the default model)")
    ap.add_argument("--margin", type=float, action="append", default=[], help="other margins to replay [nats]")
    ap.add_argument("--json", type=Path, help="write every check and the table here")
    args = ap.parse_args()
    if args.auto and not args.clips:
        args.clips = [REPO / "tests/data/short_clips/clips.json", REPO / "tests/data/short_clips/validation.json"]
    docs = documents(args)
    if not docs:
        ap.error("give --jargon and/or --auto")
    model = load_llm(args.llm)
    margins = sorted({MARGIN_NATS, *args.margin})
    t0 = time.perf_counter()
    rows, report = [], {"llm": args.llm, "margin": MARGIN_NATS, "docs": []}
    refs = [d["reference"] for d in docs]
    before = [sentences(d["text"]) for d in docs]
    logs = [reread(t, scorer=model, margin=float("inf"), budget_s=float("inf"))[2] for t in before]
    wall = time.perf_counter() - t0
    ref_logs = [reread(sentences(r), scorer=model, margin=float("inf"), budget_s=float("inf"))[2] for r in refs]
    print(f"{len(docs)} transcripts, {sum(g['checked'] for g in logs)} checks in {wall:.0f} s ({args.llm})")
    print(f"{'':24} {'terms':>5} {'found':>5} {'recall %':>8} {'extra':>5} {'WER %':>6} {'fixes':>5} {'in refs':>7}")
    base = score(refs, [" ".join(t) for t in before])
    rows.append({"label": "before", **base, "fixes": 0, "reference_changes": 0})
    for m in margins:
        after = [" ".join(replay(t, g["checks"], m)) for t, g in zip(before, logs, strict=True)]
        fixes = sum(1 for g in logs for c in g["checks"] if c["nats"] >= m)
        in_refs = sum(1 for g in ref_logs for c in g["checks"] if c["nats"] >= m)
        label = f"re-read, margin {m:g} nats" + (" (shipped)" if m == MARGIN_NATS else "")
        rows.append({"label": label, **score(refs, after), "fixes": fixes, "reference_changes": in_refs})
    for r in rows:
        print(
            f"{r['label']:24} {r['term_occurrences']:5} {r['found']:5} {100 * r['recall']:8.1f} {r['extra']:5}"
            f" {100 * r['wer']:6.2f} {r['fixes']:5} {r['reference_changes']:7}"
        )
    for d, g in zip(docs, logs, strict=True):
        report["docs"].append({"name": d["name"], "checks": g["checks"]})
        for c in g["checks"]:
            if c["nats"] >= min(margins):
                print(f"  {c['nats']:+6.1f} {d['name']}: {c['heard']!r} -> {c['term']}")
    for d, g in zip(docs, ref_logs, strict=True):
        for c in g["checks"]:
            if c["nats"] >= min(margins):
                print(f"  reference {c['nats']:+6.1f} {d['name']}: {c['heard']!r} -> {c['term']} (not said)")
    report["rows"] = rows
    report["check_s"] = round(wall, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
