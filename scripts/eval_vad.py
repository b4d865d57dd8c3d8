#!/usr/bin/env python
"""Energy VAD vs Silero VAD for the batched engine, on clean and noisy audio.

Noise is made by ffmpeg (``anoisesrc`` pink and brown) or is babble (four other espeak-ng
voices reading other rambles, summed); it is scaled so that the speech-to-noise power ratio
over the whole clip is the SNR asked for, and added to the clip. Per clip, SNR and VAD: the
VAD's time, the speech it finds, the batched engine's WER and wall time (one model load, every
variant back to back, so times are side by side).

    .venv/bin/python scripts/eval_vad.py --out eval-vad            # 1-min sample + 2 espeak clips
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

NOISES = ("clean", "pink-10", "pink-5", "brown-10", "brown-5", "babble-10", "babble-5")
BABBLE = (("lora", "en-us+m1"), ("roofline", "en+f5"), ("kv-cache", "en-gb+m4"), ("fp8-training", "en-us+f1"))


def _wav(path: Path):
    from ramble2post.transcribe.audio import load_audio

    return load_audio(path).samples


def noise(kind: str, seconds: float, folder: Path, seed: int = 13):
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (f"noise-{kind}.wav" if seed == 13 else f"noise-{kind}-seed{seed}.wav")
    if kind == "babble":
        from eval_engines import GOLD

        if not out.exists():
            parts = []
            for ramble, voice in BABBLE:
                text = (GOLD / ramble / "reference.txt").read_text().replace("\n", " ")
                wav = folder / f"babble-{ramble}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(wav), text], check=True)
                parts.append(_wav(wav))
            n = min(len(p) for p in parts)
            mix = sum(p[:n] / (np.sqrt(np.mean(p[:n] ** 2)) + 1e-9) for p in parts).astype(np.float32)
            _write(out, mix)
        x = _wav(out)
    else:
        if not out.exists():
            src = f"anoisesrc=color={kind}:amplitude=0.5:r=16000:seed={seed}:d={int(seconds) + 2}"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, str(out)], check=True)
        x = _wav(out)
    reps = int(np.ceil(seconds * 16000 / len(x)))
    return np.tile(x, reps)[: int(seconds * 16000)]


def _write(path: Path, x) -> None:
    import numpy as np

    pcm = (np.clip(x / (np.abs(x).max() + 1e-9), -1, 1) * 32767).astype("<i2").tobytes()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "-", str(path)],
        input=pcm,
        check=True,
    )


def mix(speech, kind: str, folder: Path):
    import numpy as np

    if kind == "clean":
        return speech
    kind, _, seed = kind.partition("@")  # "pink-10@2": pink noise from seed 2 (default 13)
    name, snr = kind.rsplit("-", 1)
    n = noise(name, len(speech) / 16000, folder, int(seed or 13))
    ps, pn = np.mean(speech**2), np.mean(n**2) + 1e-12
    return (speech + n * np.sqrt(ps / (pn * 10 ** (float(snr) / 10)))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="1min,short-m3-kv,short-f2-roofline")
    ap.add_argument("--noises", default=",".join(NOISES))
    ap.add_argument("--model", default="base")
    ap.add_argument("--out", type=Path, default=REPO / "eval-vad")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    from eval_engines import make_clip

    from ramble2post.transcribe.batched import BatchedOptions, transcribe_batched
    from ramble2post.transcribe.models import load_whisper_model
    from ramble2post.transcribe.vad import detect_speech
    from ramble2post.transcribe.wer import word_error_rate

    torch.set_num_threads(os.cpu_count() or 1)
    model, _ = load_whisper_model(name_or_path=args.model, device="cpu")
    rows = []
    for clip in args.clips.split(","):
        if clip == "1min":
            speech = _wav(REPO / "samples/explain-format-ramble-1min.m4a")
            ref = (REPO / "samples/explain-format-ramble-1min.txt").read_text()
        else:
            wav, ref = make_clip(clip, args.out)
            speech = _wav(wav)
        for kind in args.noises.split(","):
            x = mix(speech, kind, args.out)
            for vad in ("energy", "silero"):
                t0 = time.perf_counter()
                regions = detect_speech(samples=x, engine=vad)
                vad_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                r = transcribe_batched(
                    model=model, samples=x, device="cpu", language="en", options=BatchedOptions(vad_engine=vad)
                )
                wall = time.perf_counter() - t0
                text = " ".join(s.text for s in r.segments)
                row = {
                    "clip": clip,
                    "noise": kind,
                    "vad": vad,
                    "audio_s": round(len(x) / 16000, 1),
                    "vad_s": round(vad_s, 2),
                    "speech_s": round(sum(b - a for a, b in regions), 1),
                    "windows": len(r.chunks),
                    "wall_s": round(wall, 2),
                    "wer": round(word_error_rate(reference=ref, hypothesis=text), 4),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                (args.out / "results.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
