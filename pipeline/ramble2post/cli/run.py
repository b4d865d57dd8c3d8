"""The main command: ``ramble2post AUDIO`` -> a draft on its own branch of the blog repo.

Stages: transcribe -> structure -> experiments -> render + commit. Each prints a
progress line on stderr; stdout carries only the final summary (or one JSON
object with ``--json``). Finished stages are cached by the stages themselves, so
rerunning after an interruption resumes where it was cut.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ramble2post.cli.options import (
    blog_repo_option,
    device_option,
    language_option,
    llm_option,
    llm_spec,
    posts_dir_option,
    quick_option,
    settings,
    whisper_model_option,
)
from ramble2post.cli.signals import interrupt_pending
from ramble2post.config import home_dir
from ramble2post.errors import InputError, Ramble2PostError

STAGES = ("transcribe", "structure", "experiments", "draft")


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _stage(n: int, name: str, detail: str) -> float:

    if interrupt_pending():  # a signal whose KeyboardInterrupt some library swallowed: stop here
        raise KeyboardInterrupt("interrupted during the previous stage")
    _say(f"[{n}/{len(STAGES)}] {name}: {detail}")
    return time.perf_counter()


def _done(t0: float, detail: str = "") -> float:
    dt = time.perf_counter() - t0
    _say(f"      done in {dt:.1f} s{(' · ' + detail) if detail else ''}")
    return round(dt, 3)


def _hardware(device: str) -> dict:
    """Fingerprint of this machine: the one experiments record (the draft names the same machine)."""
    from ramble2post.experiments.hardware import describe, fingerprint, machine_label

    fp = fingerprint()
    return {"label": describe(fp), "machine": machine_label(fp, device=device), "device": device}


def _preflight_blog(blog_repo: Path | None, posts_dir: str | None) -> Path:
    """Check the blog repo before any slow stage: a bad repo fails in a second, not after transcribing."""
    from ramble2post.publish import gitops
    from ramble2post.publish.blog import detect_layout, resolve_blog_repo

    path = resolve_blog_repo(blog_repo, say=_say)
    repo = gitops.open_repo(path)
    base_branch = gitops.default_branch(repo)
    detect_layout(repo, base=gitops.base_sha(repo, base_branch), posts_dir=posts_dir)
    return path


def _cache_entries(stage: str) -> set[str]:
    """Names of a stage's cache entries (to tell a resumed stage from a computed one)."""
    from ramble2post.cache import StageCache

    try:
        return {p.name for p in StageCache(stage).root.glob("*.json")}
    except OSError:
        return set()


def _check_experiment_names(selection: str) -> None:
    """Refuse unknown experiment names up front (auto, none and all are keywords)."""
    if selection.lower() in ("auto", "none", "all"):
        return
    from ramble2post.experiments import get

    for name in (n.strip() for n in selection.split(",") if n.strip()):
        try:
            get(name)
        except Exception as e:  # ExperimentError names the known experiments
            raise InputError(f"unknown experiment {name!r}", hint=getattr(e, "hint", None) or str(e)) from e


def _run_experiments(
    *, selection: str, transcript, device: str, model: str | None, llm: str | None, quick: bool = False
) -> list:
    if selection == "none":
        return []
    from ramble2post.experiments.pipeline_hook import run_detected

    run_dir = home_dir() / "runs" / f"{transcript.audio_sha256[:12]}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    try:
        outcomes = run_detected(
            transcript=transcript,
            output_dir=run_dir / "experiments",
            selection=selection,
            device=device,
            whisper_model=model,
            llm=llm,
            audio_path=transcript.audio_path,
            quick=quick,
            progress=lambda m: _say(f"      {m}"),
        )
    except Ramble2PostError as e:  # e.g. an unknown experiment name: the draft is still produced
        _say(f"      experiments failed: {e}")
        return [{"experiment": selection, "error": str(e)}]
    results = [o.to_dict() for o in outcomes]
    for r in results:
        if r.get("error"):
            _say(f"      {r['experiment']} failed: {r['error']} (recorded in the draft)")
    return results


@click.command(name="run")
@click.argument("audio", type=click.Path(path_type=Path, dir_okay=False))
@blog_repo_option
@posts_dir_option
@whisper_model_option
@llm_option
@device_option
@language_option
@click.option(
    "--experiments",
    "experiments",
    default=None,
    help="auto (run what the ramble talks about), none, or a comma-separated list of experiment names.",
)
@quick_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (draft path, branch, commit, timings).")
def run_cmd(audio, blog_repo, posts_dir, model, llm, device, language, experiments, quick, as_json):
    """Draft a blog post from AUDIO: transcribe, structure, measure, commit.

    The draft lands on a new branch drafts/<slug> of the blog repo; your
    checked-out branch, index and files are not touched, and nothing is pushed.

    \b
    Examples:
        ramble2post ramble.m4a
        ramble2post ramble.m4a --blog-repo ~/src/blog --experiments none --json
        ramble2post ramble.m4a --llm-url http://127.0.0.1:8080/v1 --llm qwen2.5-7b-instruct
    """
    from ramble2post.publish.draft import create_draft
    from ramble2post.transcribe.audio import check_readable
    from ramble2post.transcribe.glossary import glossary_setting
    from ramble2post.transcribe.stage import CACHE_STAGE, TranscribeOptions, resolve_device, transcribe_file

    conf = settings()
    model = model or conf.model
    llm = llm_spec(llm)
    device = resolve_device(device or conf.device)
    selection = (experiments or conf.experiments or "auto").strip()
    timings: dict[str, float] = {}
    check_readable(audio)  # a typo in the audio path is reported first, before any repo is created
    _check_experiment_names(selection)  # and a typo in --experiments, before an hour of work
    repo_path = _preflight_blog(blog_repo, posts_dir)

    t = _stage(1, "transcribe", f"{audio} with Whisper {model} on {device}")
    known = _cache_entries(CACHE_STAGE)
    transcript = transcribe_file(
        audio_path=audio,
        options=TranscribeOptions(
            model=model, device=device, language=language or conf.language, glossary=glossary_setting(conf)
        ),
    )
    resumed = " · cached: not transcribed again" if not (_cache_entries(CACHE_STAGE) - known) else ""
    timings["transcribe"] = _done(
        t, f"{len(transcript.segments)} segments, {transcript.duration:.0f} s of audio{resumed}"
    )

    t = _stage(2, "structure", f"three layers with {llm}")
    from ramble2post.structure.stage import structure_transcript

    post = structure_transcript(transcript=transcript, llm=llm, progress=lambda m: _say(f"      {m}"))
    flagged = (post.get("verification") or {}).get("flagged", 0)
    timings["structure"] = _done(t, f"title “{(post.get('title') or {}).get('text', '')}”, {flagged} flagged")

    t = _stage(3, "experiments", selection)
    results = _run_experiments(
        selection=selection, transcript=transcript, device=device, model=model, llm=llm, quick=quick
    )
    timings["experiments"] = _done(t, f"{len(results)} result(s)")

    t = _stage(4, "draft", "render and commit on a new branch")
    hardware = _hardware(device)
    draft = create_draft(
        post=post,
        transcript=transcript,
        experiment_results=results,
        blog_repo=repo_path,
        posts_dir=posts_dir,
        hardware=hardware,
        say=_say,
    )
    timings["draft"] = _done(t, f"{draft.verify_marks} VERIFY mark(s)")

    if as_json:
        click.echo(json.dumps({**draft.to_dict(), "timings_s": timings, "hardware": hardware}, ensure_ascii=False))
        return
    click.echo(f"Draft committed (not pushed) in {draft.repo}")
    click.echo(f"  file    {draft.path}")
    click.echo(f"  branch  {draft.branch}")
    click.echo(f"  commit  {draft.commit}")
    if draft.verify_marks:
        click.echo(f"  review  {draft.verify_marks} item(s) marked VERIFY")
    if draft.author_notes:
        click.echo(f"  write   {draft.author_notes} part(s) the ramble left to you, marked AUTHOR NOTE")
    click.echo(
        f"Next: ramble2post preview {draft.slug} · ramble2post publish {draft.slug}"
        + (f" --blog-repo {draft.repo}" if blog_repo else "")
    )
