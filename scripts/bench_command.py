#!/usr/bin/env python
"""The whole command against faster-whisper's batched pipeline: wall time, peak memory and WER, side by side.

Issue 26 item 3: a user feels the command, not the engine. Each run is a fresh process, timed from its
start to its exit, its peak RSS from ``wait4``:

- ``ours``: ``ramble2post transcribe CLIP --no-cache -o OUT.json``, as a user runs it (imports, the
  converted model loaded from the cache, ffmpeg decoding, VAD, batched decoding, the guard, the glossary);
  ``ours-no-prompt`` / ``ours-prompt``: the same with ``--no-jargon-prompt`` / ``--jargon-prompt``.
- ``fw-batch``: a Python process that imports faster-whisper, loads ``WhisperModel`` (int8, the same
  CTranslate2 weights our base checkpoint was converted from) and runs ``BatchedInferencePipeline``
  on the file (its own PyAV decoding and Silero VAD), batch 8, greedy: its fastest CPU setting.
- ``fw-batch-b2``: the same with two beams, as our engine decodes; ``fw-batch-b5``: five, its default.
- ``ours-before``: ``ours`` on the code of another checkout (``--before DIR``, e.g. a git worktree of the
  commit before a change), so that a change is timed against its baseline and faster-whisper in one run.

Both detect the language. Repetitions are interleaved (rep 1 of every engine on every clip, then rep 2)
so that other load on a shared machine hits both alike; one untimed run of each warms the page cache.
Also printed: ``--plan``'s estimate for each clip against our measured wall time.

    .venv/bin/python scripts/make_short_clips.py --set tests/data/command_clips/clips.json
    .venv/bin/python scripts/bench_command.py --repeat 2 --json command.json
    .venv/bin/python scripts/bench_command.py --file long=/path/67min.m4a:/path/67min.txt --engines ours
    .venv/bin/python scripts/bench_command.py --engines ours-before,ours,fw-batch --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "pipeline"))
sys.path.insert(0, str(REPO / "scripts"))
COMMAND_CLIPS = REPO / "tests/data/command_clips/clips.json"
FW_BATCH = 8  # faster-whisper's default batch size
THREADS = 2  # faster-whisper's cpu_threads: the physical cores of the 2-core box (its best setting there)

FW_CHILD = r"""
import json, sys
from faster_whisper import BatchedInferencePipeline, WhisperModel
model_dir, audio, beams, threads, out = sys.argv[1:6]
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=int(threads))
segments, info = BatchedInferencePipeline(model=model).transcribe(audio, batch_size=FW_BATCH, beam_size=int(beams))
text = " ".join(s.text.strip() for s in segments)
json.dump({"text": text, "language": info.language}, open(out, "w"))
""".replace("FW_BATCH", str(FW_BATCH))


BEFORE: Path | None = None  # --before: a checkout whose pipeline/ the "ours-before" engine runs


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB, exit code) of a child process, from its start to its exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def run_once(engine: str, audio: Path, tmp: Path, ct2: Path | None) -> dict:
    out = tmp / f"{engine}-{audio.stem}.json"
    out.unlink(missing_ok=True)
    env = None
    if engine.startswith("ours"):
        exe = str(Path(sys.executable).parent / "ramble2post")
        cmd = [exe, "transcribe", str(audio), "--no-cache", "-o", str(out)]
        cmd += {
            "ours": [],
            "ours-before": [],
            "ours-no-prompt": ["--no-jargon-prompt"],
            "ours-prompt": ["--jargon-prompt"],
        }[engine]
        if engine == "ours-before":  # the same command on the --before checkout's code
            if BEFORE is None:
                raise SystemExit("the ours-before engine needs --before DIR")
            env = {**os.environ, "PYTHONPATH": str(BEFORE / "pipeline")}
    else:
        beams = engine.rpartition("-b")[2] if re.search(r"-b\d+$", engine) else "1"  # fw-batch-b5: 5 beams
        cmd = [sys.executable, "-c", FW_CHILD, str(ct2), str(audio), beams, str(THREADS), str(out)]
    wall, rss, rc = timed(cmd, env)
    if rc != 0:
        raise SystemExit(f"{engine} failed on {audio.name} (exit {rc}): {' '.join(cmd[:4])} ...")
    text = json.loads(out.read_text())["text"]
    return {"engine": engine, "wall_s": round(wall, 2), "peak_rss_mib": round(rss), "text": text}


def clips_from_set(path: Path, audio_dir: Path) -> list[tuple[str, Path, str]]:
    from make_short_clips import clip_path, load_clips, synthesise

    out = []
    for clip in load_clips(path):
        target = clip_path(clip, audio_dir)
        if not target.exists():
            print(f"synthesising {clip['id']} ...", file=sys.stderr, flush=True)
            synthesise(clip, audio_dir)
        noise = clip["noise"] if clip["noise"] == "none" else f"{clip['noise']} {clip['snr_db']} dB"
        label = f"{clip['id']} ({noise})"
        out.append((label, target, clip["reference"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, default=COMMAND_CLIPS, help="clip list (make_short_clips.py format)")
    ap.add_argument("--audio", type=Path, default=Path.home() / ".cache/ramble2post/command_clips")
    ap.add_argument("--file", action="append", default=[], help="NAME=AUDIO:REFERENCE.txt instead of the set")
    ap.add_argument("--engines", default="ours,fw-batch,fw-batch-b2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write every run here")
    ap.add_argument(
        "--before",
        type=Path,
        help="a checkout (e.g. git worktree add /tmp/before HEAD~1) whose code the ours-before engine runs",
    )
    args = ap.parse_args()
    global BEFORE
    BEFORE = args.before.resolve() if args.before else None

    from bench_transcribe import ct2_dir

    from ramble2post.transcribe.glossary import Glossary, correct_text, jargon_prompt
    from ramble2post.transcribe.stage import TranscribeOptions, plan_transcription
    from ramble2post.transcribe.wer import word_error_rate

    if args.file:
        clips = []
        for spec in args.file:
            name, _, rest = spec.partition("=")
            audio, _, ref = rest.rpartition(":")
            clips.append((name, Path(audio), Path(ref).read_text(encoding="utf-8")))
    else:
        clips = clips_from_set(args.set, args.audio)
    engines = args.engines.split(",")
    glossary = Glossary.build()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ct2 = ct2_dir("base", tmp) if any(e.startswith("fw") for e in engines) else None
        for e in engines:  # untimed: page cache, converted-model cache
            run_once(e, clips[0][1], tmp, ct2)
        for rep in range(args.repeat):
            for label, audio, ref in clips:
                for e in engines:
                    r = run_once(e, audio, tmp, ct2)
                    r.update(
                        clip=label, rep=rep, wer=round(100 * word_error_rate(reference=ref, hypothesis=r["text"]), 2)
                    )
                    if not e.startswith("ours"):  # what the built-in glossary would make of it, for comparison
                        fixed = correct_text(r["text"], glossary)[0]
                        r["wer_glossary"] = round(100 * word_error_rate(reference=ref, hypothesis=fixed), 2)
                    print(
                        f"{label:34s} {e:12s} {r['wall_s']:7.1f} s {r['peak_rss_mib']:6.0f} MiB  WER {r['wer']:5.2f} %",
                        flush=True,
                    )
                    runs.append(r)

    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; load {os.getloadavg()[0]:.2f}"
    )
    print(
        "| clip | "
        + " | ".join(f"{e} wall s / MiB / WER %" for e in engines)
        + " | ours / fw-batch wall | --plan estimate s (ours measured) |"
    )
    print("|---" * (len(engines) + 3) + "|")
    summary: dict[str, dict[str, float]] = {e: {"wall": [], "wer": [], "rss": []} for e in engines}  # type: ignore[misc]
    ratios = []
    for label, audio, _ in clips:
        cells = []
        med = {}
        for e in engines:
            mine = [r for r in runs if r["clip"] == label and r["engine"] == e]
            wall = statistics.median(r["wall_s"] for r in mine)
            rss = max(r["peak_rss_mib"] for r in mine)
            wer = statistics.median(r["wer"] for r in mine)
            med[e] = wall
            summary[e]["wall"].append(wall)
            summary[e]["wer"].append(wer)
            summary[e]["rss"].append(rss)
            cells.append(f"{wall:.1f} / {rss:.0f} / {wer:.2f}")
        ratio = med["ours"] / med["fw-batch"] if "ours" in med and "fw-batch" in med else float("nan")
        ratios.append(ratio)
        estimate = plan_transcription(
            audio_path=audio,
            options=TranscribeOptions(prompt=jargon_prompt()),  # what ``ours`` runs
        ).estimated_wall_s
        ours = med.get("ours", float("nan"))
        cells += [f"{ratio:.2f}x", f"{estimate:.0f} ({ours:.0f}, {100 * (estimate / ours - 1):+.0f} %)"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    means = [
        f"{statistics.mean(s['wall']):.1f} / {statistics.mean(s['rss']):.0f} (max {max(s['rss']):.0f}) / "
        f"{statistics.mean(s['wer']):.2f}"
        for s in summary.values()
    ]
    mean_ratio = (
        statistics.mean(summary["ours"]["wall"]) / statistics.mean(summary["fw-batch"]["wall"])
        if {"ours", "fw-batch"} <= set(summary)
        else float("nan")
    )
    print("| **mean** | " + " | ".join(means) + f" | {mean_ratio:.2f}x | |")
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.platform(), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
