#!/usr/bin/env python
"""Which engine should ``--engine auto`` pick, and what does the loop/gap guard change?

Builds a labelled set of short (1-3 min) and long (> 5 min) clips with espeak-ng voices and
speeds other than the bundled sample's, from the written rambles of tests/data/structure_gold
(their reference text is what was said), then per clip: sequential and batched engine with the
guard off (one model load, both engines back to back, so their times are side by side), the
guard's flags on each output, and the WER after the guard repaired it.

    .venv/bin/python scripts/eval_engines.py --out eval-engines          # the whole set (~10 min, 2 cores)
    .venv/bin/python scripts/eval_engines.py --clips short-m3-kv --model tiny.en
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GOLD = REPO / "tests/data/structure_gold"

# name -> (rambles joined, words kept (0 = all), espeak-ng voice, words per minute)
CLIPS = {
    "short-m3-kv": (("kv-cache",), 330, "en-us+m3", 190),
    "short-f2-roofline": (("roofline",), 300, "en-gb+f2", 150),
    "short-f3-lora": (("lora",), 420, "en-us+f3", 175),
    "short-m7-int8": (("int8-weights",), 200, "en+m7", 165),
    "short-f4-spec": (("speculative-decoding",), 480, "en-us+f4", 200),
    "long-m3-moe-flash": (("mixture-of-experts", "flash-attention"), 0, "en-us+m3", 185),
    "long-f2-tp-fp8": (("tensor-parallelism", "fp8-training"), 0, "en-gb+f2", 160),
}


def clip_text(rambles: tuple[str, ...], words: int) -> str:
    text = " ".join((GOLD / r / "reference.txt").read_text(encoding="utf-8").replace("\n", " ") for r in rambles)
    if words:
        cut = text.split()[:words]
        while cut and not cut[-1].endswith((".", "?", "!")):  # end on a sentence
            cut.pop()
        text = " ".join(cut)
    return text


def make_clip(name: str, folder: Path) -> tuple[Path, str]:
    rambles, words, voice, wpm = CLIPS[name]
    text = clip_text(rambles, words)
    wav = folder / f"{name}.wav"
    if not wav.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
    return wav, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default=",".join(CLIPS), help="comma list of: " + ", ".join(CLIPS))
    ap.add_argument("--model", default="base")
    ap.add_argument("--engines", default="sequential,batched", help="comma list of: sequential, batched")
    ap.add_argument("--out", type=Path, default=REPO / "eval-engines")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    import whisper

    from ramble2post.transcribe import guard
    from ramble2post.transcribe.audio import load_audio
    from ramble2post.transcribe.batched import transcribe_batched
    from ramble2post.transcribe.models import load_whisper_model
    from ramble2post.transcribe.vad import speech_regions
    from ramble2post.transcribe.wer import word_error_rate

    torch.set_num_threads(os.cpu_count() or 1)
    model, _ = load_whisper_model(name_or_path=args.model, device="cpu")
    decoder = guard.whisper_clip_decoder(model, language="en", prompt=None, fp16=False)
    rows = []
    for name in args.clips.split(","):
        wav, ref = make_clip(name, args.out)
        samples = load_audio(wav).samples
        duration = len(samples) / 16000
        regions = speech_regions(samples=samples)
        row: dict = {"clip": name, "duration_s": round(duration, 1), "voice": CLIPS[name][2], "wpm": CLIPS[name][3]}
        for engine in args.engines.split(","):
            t0 = time.perf_counter()
            windows: list[dict] = []
            if engine == "sequential":
                r = whisper.transcribe(model, samples, language="en", fp16=False, verbose=None)
                segs = [{k: s[k] for k in ("start", "end", "text")} for s in r["segments"]]
            else:
                out = transcribe_batched(model=model, samples=samples, device="cpu", language="en")
                segs = [dataclasses.asdict(s) for s in out.segments]
                windows = [dataclasses.asdict(c) for c in out.chunks]
            wall = time.perf_counter() - t0
            text = " ".join(s["text"].strip() for s in segs)
            loops, gaps = guard.find_loops(segs), guard.find_gaps(regions, segs) + guard.find_thin(windows, segs)
            t1 = time.perf_counter()
            fixed, repairs = guard.repair(
                samples=samples, segments=segs, regions=regions, decode=decoder, windows=windows
            )
            guard_s = time.perf_counter() - t1
            fixed_text = " ".join(s["text"].strip() for s in fixed)
            row[engine] = {
                "wall_s": round(wall, 2),
                "wer": round(word_error_rate(reference=ref, hypothesis=text), 4),
                "loops": len(loops),
                "gaps": len(gaps),
                "guard_s": round(guard_s, 2),
                "wer_guarded": round(word_error_rate(reference=ref, hypothesis=fixed_text), 4),
                "repairs": repairs,
                "text": text,
            }
            print(
                f"{name:20} {duration:6.0f} s {engine:10} wall {wall:6.1f} s WER {100 * row[engine]['wer']:5.1f} %"
                f" loops {len(loops)} gaps {len(gaps)} -> guarded WER {100 * row[engine]['wer_guarded']:5.1f} %"
                f" (+{guard_s:.1f} s)",
                flush=True,
            )
        rows.append(row)
        (args.out / "results.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
