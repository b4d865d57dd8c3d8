#!/usr/bin/env python
"""Jargon recall, terms written that nobody said, and WER with and without the decoder's lean toward the
glossary's terms (``TranscribeOptions.term_bias``, transcribe/bias.py), on the short-clip sets.

Each clip (synthesised by scripts/make_short_clips.py) is transcribed in-process with the jargon prompt
(cache off) once per ``--bias`` value, in one run; recall of the built-in terms after the glossary: sum of
min(reference count, transcript count) over the reference's count; "extra": written more often than said.

    .venv/bin/python scripts/make_short_clips.py --out /tmp/clips
    .venv/bin/python scripts/make_short_clips.py --out /tmp/clips --set tests/data/short_clips/validation.json
    .venv/bin/python scripts/bench_term_bias.py --audio /tmp/clips --bias 0 --bias 2 --engine batched
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "pipeline"))
SETS = [REPO / "tests/data/short_clips/clips.json", REPO / "tests/data/short_clips/validation.json"]


def main() -> None:
    from ramble2post.transcribe.glossary import BUILTIN_TERMS, jargon_prompt, term_counts
    from ramble2post.transcribe.stage import TranscribeOptions, transcribe_file
    from ramble2post.transcribe.wer import word_error_rate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", type=Path, default=Path.home() / ".cache/ramble2post/short_clips")
    ap.add_argument("--clips", default="", help="comma list of clip id prefixes (default: both sets)")
    ap.add_argument("--bias", type=float, action="append", help="nats; repeat (default: 0 and 2)")
    ap.add_argument("--engine", default="auto", help="auto | batched | sequential")
    ap.add_argument("--json", type=Path, help="write every row and text here")
    args = ap.parse_args()
    clips = [c for s in SETS for c in json.loads(s.read_text(encoding="utf-8"))["clips"]]
    if args.clips:
        clips = [c for c in clips if any(c["id"].startswith(p) for p in args.clips.split(","))]
    terms, rows = list(BUILTIN_TERMS), []
    for clip in clips:
        found_audio = sorted(args.audio.glob(f"{clip['id']}-*.m4a"))
        if not found_audio:
            sys.exit(f"no audio for {clip['id']} in {args.audio}: run scripts/make_short_clips.py first")
        said = term_counts(clip["reference"], terms)
        for nats in args.bias or [0.0, 2.0]:
            t0 = time.perf_counter()
            options = TranscribeOptions(engine=args.engine, prompt=jargon_prompt(), term_bias=nats)
            text = transcribe_file(audio_path=found_audio[-1], options=options, use_cache=False).text
            heard = term_counts(text, terms)
            row = {
                "clip": clip["id"],
                "bias": nats,
                "terms": sum(said.values()),
                "found": sum(min(said[t], heard[t]) for t in terms),
                "extra": sum(max(0, heard[t] - said[t]) for t in terms),
                "wer": round(100 * word_error_rate(reference=clip["reference"], hypothesis=text), 2),
                "s": round(time.perf_counter() - t0, 1),
                "text": text,
            }
            rows.append(row)
            print(
                f"{row['clip']:24} bias {nats:g}: {row['found']}/{row['terms']} terms, {row['extra']} extra, "
                f"WER {row['wer']:.2f} %, {row['s']} s",
                flush=True,
            )
    print(
        f"\n{'bias':>6} {'clips':>5} {'recall':>9} {'extra':>5} {'mean WER %':>10}  clips > 1 point worse than bias 0"
    )
    base = {r["clip"]: r["wer"] for r in rows if r["bias"] == 0}
    for nats in args.bias or [0.0, 2.0]:
        sel = [r for r in rows if r["bias"] == nats]
        worse = [
            f"{r['clip'][:3]} {r['wer'] - base[r['clip']]:+.1f}"
            for r in sel
            if r["clip"] in base and r["wer"] - base[r["clip"]] > 1
        ]
        found, said = sum(r["found"] for r in sel), sum(r["terms"] for r in sel)
        print(
            f"{nats:6g} {len(sel):5} {found:4}/{said:<4} {sum(r['extra'] for r in sel):5} "
            f"{sum(r['wer'] for r in sel) / max(1, len(sel)):10.2f}  {', '.join(worse) or '-'}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
