#!/usr/bin/env python
"""Structure quality on the labelled gold set: is what the post shows under each role really that role?

For every gold ramble (``tests/data/structure_gold/<id>/``: labels + the pipeline's
Whisper transcript of it spoken), the structure stage runs from the transcript (no
cache), and the post is scored against the labels (``scripts/_lib/gold.py``):

- precision of confident items and of likely items (shown as guesses): items whose sentences
  are at least half in a span the labels allow under that role (pooled over rambles);
- recall: roles the ramble has that the post fills with at least one allowed item (either tier);
- honesty: roles the ramble lacks that the post leaves empty (with an author's note);
- title / layer 1 on topic: they contain one of the ramble's topic terms; layer 1 complete:
  every sentence of it a complete statement (``structure.words.complete_statement``);
- the same figures for the real-register subset (``"register": "real"`` or a seed excerpt);
- junk: items with template or markup debris; AI items and how many passed verification;
- time: seconds of structuring (model load included).

Usage:
    python scripts/bench_structure_quality.py                  # every gold ramble, offline default LLM
    python scripts/bench_structure_quality.py --only explain-format --llm none
    python scripts/bench_structure_quality.py --json out.json  # figures for docs/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from _lib.gold import GoldRamble, Score, gold_set, score_post, totals

from ramble2post.config import DEFAULT_LLM
from ramble2post.records import Transcript
from ramble2post.structure.roles import WEIGHTS_ENVVAR
from ramble2post.structure.stage import structure_transcript

GOLD = Path(__file__).resolve().parent.parent / "tests" / "data" / "structure_gold"


def run(gold: GoldRamble, *, llm: str, posts: Path | None = None) -> Score:
    transcript = Transcript.from_dict(json.loads((gold.folder / "transcript.json").read_text()))
    # no time budget: on a shared machine a budget would leave passages unjudged that an idle one judges
    # (the quality of the default on an idle machine is what is measured; time is reported beside it)
    post = structure_transcript(transcript=transcript, llm=llm, use_cache=False, llm_budget_s=1e9)
    if posts is not None:  # the post itself, for reading what was shown and why
        posts.mkdir(parents=True, exist_ok=True)
        (posts / f"{gold.id}.json").write_text(json.dumps(post.to_dict(), indent=1))
    return score_post(gold, post.to_dict())


def _row(s: Score) -> str:
    conf = s.shown - s.likely_shown
    return (
        f"{s.id:<28} {s.correct - s.likely_correct:>2}/{conf:<2} {s.likely_correct:>2}/{s.likely_shown:<2} "
        f"{s.filled_right}/{s.present}  {s.left_empty}/{s.absent}  {'yes' if s.title_on_topic else 'NO ':<4}"
        f" {'yes' if s.layer1_on_topic else 'NO ':<4}{'yes' if s.layer1_complete else 'NO ':<4}"
        f" {s.junk:>3}  {s.ai_verified:>2}/{s.ai_items:<2} {s.seconds:>6.1f}  {s.title_origin[:1]} {s.title[:60]}"
    )


def _summary(name: str, scores: list[Score]) -> str:
    t = totals(scores)
    return (
        f"{name}: {t['rambles']} rambles | recall {t['recall']:.3f} | confident precision "
        f"{t['confident_precision']:.3f} | likely precision {t['likely_precision']:.3f} ({t['likely_shown']} shown)"
        f" | honesty {t['honesty']:.3f} | layer 1 on topic {t['layer1_on_topic']}/{t['rambles']}, complete "
        f"{t['layer1_complete']}/{t['rambles']} | titles on topic {t['titles_on_topic']}/{t['rambles']}, with a misheard"
        f" term {t['titles_misheard']}"
        f" | junk {t['junk']} | items with a filler {t['fillers']}, a restart {t['restarts']}, mean words"
        f" {t['mean_item_words']:.1f} | model titles {t['model_titles']} | gap notes quoting a closest passage"
        f" {t['hints']} (right for {t['hints_right']} of the {t['missed_roles']} roles missed, in a role the"
        f" ramble lacks {t['hints_absent']}) | AI items verified"
        f" {t['ai_verified']}/{t['ai_items']} | {t['seconds']:.1f} s"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default=DEFAULT_LLM, help="LLM spec as for `ramble2post structure` (default: %(default)s)")
    ap.add_argument("--only", nargs="*", default=None, help="gold ramble ids (default: all)")
    ap.add_argument("--gold", type=Path, default=GOLD, help="gold set folder (default: %(default)s)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--posts", type=Path, default=None, help="also write each post's JSON into this folder")
    ap.add_argument("--wrong", action="store_true", help="list the items the labels do not allow")
    ap.add_argument(
        "--held-out",
        type=Path,
        default=None,
        help="folder of role models, one per ramble trained without it (scripts/train_roles.py --loo-dir)",
    )
    ap.add_argument("--role-weights", type=Path, default=None, help="a role model file instead of the shipped one")
    args = ap.parse_args()
    if args.role_weights:
        os.environ[WEIGHTS_ENVVAR] = str(args.role_weights)
    rambles = [g for g in gold_set(args.gold) if not args.only or g.id in args.only]
    if not rambles:
        print(f"no gold rambles in {args.gold}", file=sys.stderr)
        return 2
    mode = (
        f"held-out role models from {args.held_out}"
        if args.held_out
        else f"role model {args.role_weights or 'shipped'}"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; llm: {args.llm}; {mode}")
    print(f"{'ramble':<28} conf  likely rec  empty title L1  whole junk AI  time s  title")
    scores = []
    for g in rambles:
        if args.held_out:  # this ramble scored by a role model that never saw it
            os.environ[WEIGHTS_ENVVAR] = str(args.held_out / f"{g.id}.json")
        s = run(g, llm=args.llm, posts=args.posts)
        scores.append(s)
        print(_row(s), flush=True)
        if args.wrong:
            for w in s.wrong:
                print(f"    not allowed: {w}")
    print(_summary("all", scores))
    real = [x for x in scores if x.register == "real"]
    if real and len(real) < len(scores):
        print(_summary("real register", real))
    t = totals(scores)
    if args.json:
        args.json.write_text(
            json.dumps({"llm": args.llm, "totals": t, "rambles": [s.__dict__ for s in scores]}, indent=1, default=list)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
