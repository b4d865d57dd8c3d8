"""``ramble2post experiments``: list, detect and run the measurements a ramble refers to."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

from ramble2post.cli.options import device_option, llm_option, llm_spec, quick_option, settings, whisper_model_option
from ramble2post.config import DEFAULT_LLM, EXPERIMENT_LLM, home_dir
from ramble2post.errors import InputError


@click.group(name="experiments")
def experiments_cmd():
    """Experiments measured on this machine (quantization loss, batching, ...).

    \b
    Examples:
        ramble2post experiments list
        ramble2post experiments detect transcript.json
        ramble2post experiments run quantization-loss --quick
    """


@experiments_cmd.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json):
    """List the experiments, the claim each one tests, and its parameters."""
    from ramble2post.experiments import all_experiments

    exps = all_experiments()
    if as_json:
        data = [
            {
                "name": e.name,
                "version": e.version,
                "claim": e.claim,
                "params": {k: {"default": p.default, "quick": p.quick, "help": p.help} for k, p in e.params.items()},
                "triggers": sorted({t.label for t in e.triggers if not t.context}),
            }
            for e in exps
        ]
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from ramble2post.experiments.base import _IMPORT_ERRORS

    for mod, why in _IMPORT_ERRORS.items():
        click.echo(f"Warning: {mod} could not be loaded: {why}", err=True)
    width = max((len(e.name) for e in exps), default=10)
    for e in exps:
        click.echo(f"{e.name:<{width}}  v{e.version}  {e.claim}")


@experiments_cmd.command(name="detect")
@click.argument("transcript", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print detections with their evidence as JSON.")
def detect_cmd(transcript, as_json):
    """Which experiments does TRANSCRIPT (transcript.json, or a .txt) refer to?"""
    from ramble2post.experiments.detect import detect_experiments
    from ramble2post.experiments.pipeline_hook import with_claims

    source = _read_transcript(transcript)
    found = detect_experiments(transcript=source)
    measured = {d.experiment for d in with_claims(found, transcript=source)[0]}
    if as_json:
        rows = [{**d.to_dict(), "measured": d.experiment in measured} for d in found]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("No experiments referred to.")
        return
    for d in found:
        why = (
            "measured by --experiments auto"
            if d.experiment in measured
            else "mentioned, no claim it can test: not measured"
        )
        click.echo(f"{d.experiment} (score {d.score:.2f}; {why}): {d.claim}")
        for e in d.evidence:
            click.echo(f'  [{_clock(e.start)}-{_clock(e.end)}] segment {e.segment_id}: "{e.quote}" ({e.label})')


@experiments_cmd.command(name="run")
@click.argument("name")
@quick_option
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON on standard output.")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for result.json, result.csv and the plot. "
    "Default: $RAMBLE2POST_HOME/experiments/NAME/<UTC time>-<machine>.",
)
@whisper_model_option
@device_option
@llm_option
@click.option(
    "--audio",
    type=click.Path(path_type=Path),
    default=None,
    help="Audio to measure on. Default: the bundled 1-minute sample.",
)
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    default=None,
    help="Text file with what is said in --audio (default: the sample's hand transcript, "
    "else the fp32 model's own transcription).",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a parameter (VALUE is JSON, else a string); repeatable. See `experiments list --json`.",
)
def run_cmd(name, quick, as_json, output_dir, model, device, llm, audio, reference, params):
    """Run experiment NAME on this machine and save its table, plot and hardware fingerprint."""
    from ramble2post.experiments import Context, get, save_result
    from ramble2post.experiments.hardware import describe
    from ramble2post.machine import resolve_device

    exp = get(name)
    conf = settings()
    dev = resolve_device(device or conf.device)
    ref_text = None
    if reference is not None:
        try:
            ref_text = reference.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read reference text {reference}: {e}") from e
    ctx = Context(
        device=dev,
        quick=quick,
        whisper_model=model or conf.model,
        # no model named anywhere: the experiment's own small default, as in the library (quick hardware runs)
        llm=EXPERIMENT_LLM if llm is None and llm_spec(None) == DEFAULT_LLM else llm_spec(llm),
        audio_path=audio,
        reference_text=ref_text,
        params=_parse_params(params),
        progress=lambda m: click.echo(f"  {m}", err=True),
    )
    click.echo(f"Running {exp.name} ({'quick' if quick else 'full'}) on {describe()} [{dev}]", err=True)
    result = exp.measure(ctx)
    if output_dir is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        output_dir = home_dir() / "experiments" / exp.name / f"{stamp}-{result.machine}"
    result = save_result(result, output_dir)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(_table(result))
        click.echo("")
        click.echo(result.reading)
    click.echo(
        f"Saved {output_dir}/result.json, result.csv, {', '.join(result.plots) or 'no plot'} "
        f"({result.duration_s:.0f} s)",
        err=True,
    )


def _parse_params(items) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--param {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
        if isinstance(out[k.strip()], list):
            out[k.strip()] = tuple(out[k.strip()])
    return out


def _read_transcript(path: Path):
    if not path.exists():
        raise InputError(f"transcript not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    if path.suffix.lower() != ".json":
        return text
    from ramble2post.records import load_transcript

    return load_transcript(path)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:02d}:{s:02d}"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def _table(result) -> str:
    """The result table as aligned text with units in the header."""
    heads = [f"{c} [{result.units[c]}]" if result.units.get(c) else c for c in result.columns]
    cells = [[_fmt(v) for v in row] for row in result.rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(experiments_cmd())
