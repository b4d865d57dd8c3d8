#!/usr/bin/env python
"""Jargon recall and WER with and without a jargon initial prompt, on rambles spoken again.

Each ramble folder's ``reference.txt`` is spoken again with espeak-ng following the recipe in its
``labels.json`` (voice, words per minute, pink noise at the stated amplitude); Festival and flite
recipes get an espeak-ng voice instead (``SUBSTITUTE``), excerpts of a real talk (no audio) are
skipped. Each clip is transcribed in-process by the transcription stage (Whisper base, cache
off; engine ``auto``, or ``--engine batched``, which ``auto`` picks from 5 min of audio) once
without a prompt and once per prompt wording; the built-in glossary
(and ``--term``) is applied after decoding (``spelled``: its rules 1-2 only; ``on``: as shipped,
with the sound-alike rule 3), and optionally the structure stage's context
corrections (``structure.jargon.fix_jargon``) on top. Recall as in scripts/bench_jargon.py:
sum over built-in terms of min(reference count, transcript count) / reference count.
``--noise`` also transcribes 30 s of pink noise and 30 s of silence with and without the prompt.

    .venv/bin/python scripts/bench_jargon_prompt.py                       # the holdout, "sentence" prompt
    .venv/bin/python scripts/bench_jargon_prompt.py --gold tests/data/structure_gold \\
        --only kv-cache --only roofline --wording sentence --wording list --json gold.json
    .venv/bin/python scripts/bench_jargon_prompt.py --noise --only none   # noise check alone
    .venv/bin/python scripts/bench_jargon_prompt.py --term-bias 2 --gold tests/data/jargon_holdout2   # + biasing
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "pipeline"))
from ramble2post.transcribe import glossary  # noqa: E402

HOLDOUT = REPO / "tests/data/structure_holdout"
# Festival HTS slt (female, US) and flite rms (male, US) are not installed: nearest espeak-ng voices
SUBSTITUTE = {"cmu_us_slt_arctic_hts": "en-us+f2", "rms": "en-us+m1"}
NOISE_SEED = 1
# one spelling per term: plurals and sub-models of a listed term are left out of the prompt
PROMPT_SKIP = glossary.PROMPT_SKIP
WORDINGS = {
    "sentence": lambda terms: glossary.PROMPT_LEAD + ", ".join(terms[:-1]) + f" and {terms[-1]}.",
    "list": lambda terms: ", ".join(terms) + ".",
}


def make_audio(folder: Path, work: Path) -> tuple[Path | None, str]:
    """The ramble spoken again (made once, kept in ``work``), and how; None and why when it has no audio."""
    audio = json.loads((folder / "labels.json").read_text(encoding="utf-8")).get("audio") or {}
    tool, voice = str(audio.get("tool", "")), str(audio.get("voice", ""))
    if "espeak" not in tool and voice not in SUBSTITUTE:
        return None, f"no audio recipe ({tool or 'none'})"
    voice = SUBSTITUTE.get(voice, voice if voice.startswith("en") else "en-us")
    wpm = int(audio.get("speed_wpm") or 175)
    noise = str(audio.get("noise") or "") + (tool if "anoisesrc" in tool else "")
    amp = float(m.group(1)) if (m := re.search(r"a(?:mplitude)?[= ]([0-9.]+)", noise)) else 0.02
    how = f"espeak-ng {voice} {wpm} wpm" + (f" + pink a={amp}" if "pink" in noise else "")
    wav = work / f"{folder.parent.name}-{folder.name}.wav"
    if not wav.exists():
        clean = wav.with_suffix(".clean.wav")
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(clean), "-f", str(folder / "reference.txt")],
            check=True,
        )
        if "pink" in noise:
            mix = f"anoisesrc=color=pink:amplitude={amp}:seed={NOISE_SEED}"
            cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(clean), "-f", "lavfi", "-i", mix]
            cmd += ["-filter_complex", "amix=inputs=2:duration=first", "-ac", "1", str(wav)]
            subprocess.run(cmd, check=True)
            clean.unlink()
        else:
            clean.rename(wav)
    return wav, how


def transcribe(wav: Path, prompt: str | None, engine: str = "auto", bias: float = 0.0):  # -> (Transcript | None, s)
    from ramble2post.errors import AudioError
    from ramble2post.transcribe.stage import TranscribeOptions, transcribe_file

    t0 = time.perf_counter()
    try:
        tr = transcribe_file(
            audio_path=wav,
            options=TranscribeOptions(prompt=prompt, glossary=None, engine=engine, term_bias=bias),
            use_cache=False,
        )
    except AudioError:  # no speech recognised: the right answer on noise
        tr = None
    return tr, time.perf_counter() - t0


def variants(tr, user: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, str]:
    """The transcript's text with the glossary off, on without and with its sound-alike rule (rule 3,
    shipped), and on + the structure stage's context corrections."""
    from ramble2post.structure.jargon import fix_jargon
    from ramble2post.transcribe.glossary import Glossary, correct_text
    from ramble2post.transcribe.stage import apply_glossary

    if tr is None:
        return {"off": "", "spelled": "", "on": "", "on+context": ""}
    fixed = apply_glossary(tr, user).text
    spelled = " ".join(
        correct_text(s.text, Glossary.build(terms=dict(user), sounds_alike=False))[0] for s in tr.segments
    )
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", fixed) if s]
    return {"off": tr.text, "spelled": spelled, "on": fixed, "on+context": " ".join(fix_jargon(sentences)[0])}


def score(refs: list[str], hyps: list[str]) -> dict[str, float | int]:
    from ramble2post.transcribe.glossary import BUILTIN_TERMS, term_counts
    from ramble2post.transcribe.wer import word_error_rate

    terms = list(BUILTIN_TERMS)
    ref_n = hit_n = extra_n = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        rc, hc = term_counts(ref, terms), term_counts(hyp, terms)
        ref_n += sum(rc.values())
        hit_n += sum(min(rc[t], hc[t]) for t in terms)
        extra_n += sum(max(0, hc[t] - rc[t]) for t in terms)  # written but not said: what a prompt may invent
    wer = word_error_rate(reference=" ".join(refs), hypothesis=" ".join(hyps))
    return {
        "term_occurrences": ref_n,
        "found": hit_n,
        "recall": round(hit_n / max(1, ref_n), 4),
        "wer": round(wer, 4),
        "extra": extra_n,
    }


def noise_check(
    work: Path, prompts: dict[str, str | None], engine: str, biases: dict[str, float]
) -> list[dict[str, str | float]]:
    """30 s of pink noise (two levels) and of silence, transcribed with each prompt: the text produced."""
    out = []
    for name, src in {
        "pink-a0.02": "anoisesrc=color=pink:amplitude=0.02:seed=1:d=30",
        "pink-a0.2": "anoisesrc=color=pink:amplitude=0.2:seed=1:d=30",
        "silence": "anullsrc=r=16000:cl=mono:d=30",
    }.items():
        wav = work / f"noise-{name}.wav"
        if not wav.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-ac", "1", str(wav)], check=True)
        for label, prompt in prompts.items():
            tr, wall = transcribe(wav, prompt, engine, biases.get(label, 0.0))
            out.append({"audio": name, "prompt": label, "text": tr.text if tr else "", "wall_s": round(wall, 1)})
            print(f"noise {name:10} prompt={label:8} {wall:5.1f} s  text={out[-1]['text']!r}", flush=True)
    return out


def main() -> None:
    from ramble2post.transcribe.glossary import BUILTIN_TERMS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gold", type=Path, action="append", help="folder of ramble folders (default: the holdout)")
    ap.add_argument("--only", action="append", help="ramble names to run (default: all); 'none' runs none")
    ap.add_argument("--real", action="store_true", help='only rambles whose labels.json says "register": "real"')
    ap.add_argument("--wording", action="append", choices=sorted(WORDINGS), help="prompt wording(s), default sentence")
    ap.add_argument("--term", action="append", default=[], help="a user glossary term, added to prompt and glossary")
    ap.add_argument("--work", type=Path, default=Path("/tmp/jp/audio"), help="where the spoken clips are kept")
    ap.add_argument("--engine", default="auto", help="auto | batched | sequential (TranscribeOptions.engine)")
    ap.add_argument("--noise", action="store_true", help="also transcribe 30 s of pink noise and of silence")
    ap.add_argument(
        "--term-bias",
        type=float,
        action="append",
        default=[],
        help="also decode with the first wording and this bias toward the terms [nats] (TranscribeOptions.term_bias)",
    )
    ap.add_argument("--json", type=Path, help="write rows, per-ramble texts and prompts here")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    terms = [t for t in BUILTIN_TERMS if t not in PROMPT_SKIP] + args.term
    user = tuple((t, ()) for t in args.term)
    prompts: dict[str, str | None] = {"none": None}
    prompts |= {w: WORDINGS[w](terms) for w in args.wording or ["sentence"]}
    first = (args.wording or ["sentence"])[0]
    biases = {f"{first}+bias{b:g}": b for b in args.term_bias}  # label -> nats; the prompt: the first wording's
    prompts |= dict.fromkeys(biases, prompts[first])
    for w, p in prompts.items():
        print(f"prompt {w}: {p!r}")
    report: dict = {"engine": args.engine, "prompts": prompts, "rows": [], "rambles": [], "skipped": []}
    print(
        f"{'set':8} {'prompt':8} {'glossary':10} {'rambles':>7} {'terms':>5} {'found':>5} {'recall %':>8} {'WER %':>6}"
    )
    for root in args.gold or [HOLDOUT]:
        folders = sorted(p for p in root.iterdir() if (p / "reference.txt").exists())
        folders = [f for f in folders if not args.only or f.name in args.only]
        if args.real:
            folders = [f for f in folders if json.loads((f / "labels.json").read_text()).get("register") == "real"]
        refs: list[str] = []
        hyps: dict[tuple[str, str], list[str]] = {}
        wall: dict[str, float] = dict.fromkeys(prompts, 0.0)
        audio_s = 0.0
        for folder in folders:
            wav, how = make_audio(folder, args.work)
            if wav is None:
                report["skipped"].append({"set": root.name, "ramble": folder.name, "why": how})
                print(f"skip {folder.name}: {how}", flush=True)
                continue
            refs.append((folder / "reference.txt").read_text(encoding="utf-8"))
            entry = {"set": root.name, "ramble": folder.name, "audio": how, "texts": {}, "wall_s": {}}
            for label, prompt in prompts.items():
                tr, secs = transcribe(wav, prompt, args.engine, biases.get(label, 0.0))
                wall[label] += secs
                entry["wall_s"][label] = round(secs, 1)
                audio_s += tr.duration / len(prompts) if tr else 0.0
                for gloss, text in variants(tr, user).items():
                    hyps.setdefault((label, gloss), []).append(text)
                    entry["texts"][f"{label}/{gloss}"] = text
            report["rambles"].append(entry)
            print(f"  {folder.name}: {how}, wall s {entry['wall_s']}", flush=True)
        for (label, gloss), texts in hyps.items():
            row = {"set": root.name, "prompt": label, "glossary": gloss, "rambles": len(refs)}
            row |= score(refs, texts) | {"decode_wall_s": round(wall[label], 1), "audio_s": round(audio_s, 1)}
            report["rows"].append(row)
            print(
                f"{root.name[:8]:8} {label:8} {gloss:10} {len(refs):7} {row['term_occurrences']:5} {row['found']:5}"
                f" {100 * row['recall']:8.1f} {100 * row['wer']:6.2f} {row['extra']:5}"
                f"   decode {wall[label]:.0f} s / {audio_s:.0f} s audio"
            )
    if args.noise:
        report["noise"] = noise_check(args.work, prompts, args.engine, biases)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
