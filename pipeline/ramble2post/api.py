"""The library entry point: ``ramble2post.run(audio=..., blog_repo=...)`` -> a draft on its own branch.

Stages: transcribe -> structure -> experiments -> render + commit, each passing its typed
record to the next (``Transcript`` -> ``Post`` -> ``RunOutcome`` -> ``Draft``). Finished stages
are cached by the stages themselves, so a run cut short resumes where it was cut. The
``ramble2post AUDIO`` command calls ``run`` and only prints; progress goes to ``progress``
(one line per step), nothing is printed here.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramble2post.config import Settings, home_dir, load_settings
from ramble2post.errors import InputError, Ramble2PostError
from ramble2post.records import Hardware, Transcript

if TYPE_CHECKING:  # the stages load models and git: imported when run() needs them
    from ramble2post.experiments.pipeline_hook import RunOutcome
    from ramble2post.publish.draft import Draft
    from ramble2post.publish.followup import FollowUp
    from ramble2post.structure.schema import Post

STAGES = ("transcribe", "structure", "experiments", "draft")
INDENT = "      "  # progress lines of a stage, under its "[n/4] name" line
# words of speech below which a recording is no ramble: ~8 s of talk at 150 words/min ("Hello.", "testing one two
# three" recorded by accident); a post cut from it would be one sentence and five author notes on a new branch.
# The bundled 1-minute sample has 170; a follow-up memo answers a draft's notes and may be shorter
MIN_RAMBLE_WORDS = 20

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``run`` made: the draft, and the records and measurements that led to it."""

    draft: Draft
    transcript: Transcript
    post: Post
    outcomes: tuple[RunOutcome, ...]  # one per experiment run (failures included)
    timings_s: dict[str, float]  # wall seconds per stage (STAGES)
    hardware: Hardware  # the machine the draft names

    def to_dict(self) -> dict[str, Any]:
        """What ``ramble2post AUDIO --json`` prints: the draft, the timings and the machine."""
        return {**self.draft.to_dict(), "timings_s": dict(self.timings_s), "hardware": self.hardware.to_dict()}


def _quiet(msg: str) -> None:
    """The default progress: nothing."""


def _never() -> bool:
    return False


def run(
    *,
    audio: str | Path,
    blog_repo: str | Path | None = None,
    settings: Settings | None = None,
    llm: str | None = None,
    posts_dir: str | None = None,
    quick: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Draft a blog post from ``audio``: transcribe, structure, measure, commit on ``drafts/<slug>``.

    The user's checked-out branch, index and files are not touched, and nothing is pushed.

    audio: the ramble (any format ffmpeg reads).
    blog_repo: the blog's git work tree (None: ``settings.blog_repo``, else
        ``$RAMBLE2POST_HOME/blog``, created from the packaged skeleton if missing).
    settings: Whisper model, device, language, experiments, glossary (None: the config file's).
    llm: the structure stage's model spec (None: ``settings.llm``, served at ``settings.llm_url`` if set).
    posts_dir: where posts live in the repo (None: detected from the blog's layout).
    quick: smaller experiment grids (a first look in minutes).
    progress: called with one line per step (the CLI prints them on stderr).
    should_stop: checked between stages; True stops the run with KeyboardInterrupt (the CLI
        passes whether a signal arrived that some library swallowed).
    """
    from ramble2post.machine import resolve_device
    from ramble2post.transcribe.audio import check_readable
    from ramble2post.transcribe.glossary import glossary_setting, prompt_setting
    from ramble2post.transcribe.stage import CACHE_STAGE, TranscribeOptions

    conf = settings or load_settings()
    say = progress or _quiet
    stop = should_stop or _never
    audio = Path(audio)
    spec = llm or _llm_of(conf)
    device = resolve_device(conf.device)
    selection = (conf.experiments or "auto").strip()
    timings: dict[str, float] = {}
    check_readable(audio)  # a typo in the audio path is reported first, before any repo is created
    _check_experiment_names(selection)  # and a typo in experiments, before an hour of work
    _check_llm(spec)  # and in --llm, before the transcription
    repo_path = _preflight_blog(None if blog_repo is None else Path(blog_repo), posts_dir, say)

    t = _stage(1, "transcribe", f"{audio} with Whisper {conf.model} on {device}", say, stop)
    from ramble2post.transcribe.stage import transcribe_file

    known = _cache_entries(CACHE_STAGE)
    transcript = transcribe_file(
        audio_path=audio,
        options=TranscribeOptions(
            model=conf.model,
            device=device,
            language=conf.language,
            prompt=prompt_setting(conf),
            glossary=glossary_setting(conf),
            term_bias=conf.term_bias,
        ),
    )
    resumed = " · cached: not transcribed again" if not (_cache_entries(CACHE_STAGE) - known) else ""
    timings["transcribe"] = _done(
        t, f"{len(transcript.segments)} segments, {transcript.duration:.0f} s of audio{resumed}", say
    )
    _language_note(transcript.language, say)
    _check_enough_speech(transcript, audio)

    t = _stage(2, "structure", f"three layers with {spec}", say, stop)
    from ramble2post.structure.stage import structure_transcript

    post = structure_transcript(transcript=transcript, llm=spec, progress=lambda m: say(INDENT + m))
    flagged = post.verification.flagged
    timings["structure"] = _done(t, f"title “{post.title.text}”, {flagged} flagged", say)

    t = _stage(3, "experiments", selection, say, stop)
    outcomes = _run_experiments(
        selection=selection,
        transcript=transcript,
        device=device,
        model=conf.model,
        llm=_experiment_llm(spec),
        quick=quick,
        say=say,
    )
    timings["experiments"] = _done(t, f"{len(outcomes)} result(s)", say)

    t = _stage(4, "draft", "render and commit on a new branch", say, stop)
    from ramble2post.publish.draft import create_draft

    hardware = _hardware(device)
    draft = create_draft(
        post=post,
        transcript=transcript,
        experiment_results=outcomes,
        blog_repo=repo_path,
        posts_dir=posts_dir,
        hardware=hardware,
        say=say,
    )
    timings["draft"] = _done(t, f"{draft.verify_marks} VERIFY mark(s)", say)
    return RunResult(
        draft=draft, transcript=transcript, post=post, outcomes=outcomes, timings_s=timings, hardware=hardware
    )


def follow_up(
    *,
    slug: str,
    audio: str | Path,
    blog_repo: str | Path | None = None,
    settings: Settings | None = None,
    llm: str | None = None,
    posts_dir: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FollowUp:
    """Answer draft ``slug``'s open parts with a second recording: a new commit on ``drafts/<slug>``.

    The recording is transcribed and structured like a ramble; its passages fill the draft's
    AUTHOR NOTEs and replace its guesses (``publish.followup``), the author's edits kept byte
    for byte. An unknown slug, a published post or unreadable audio fail before any stage runs.
    """
    from ramble2post.machine import resolve_device
    from ramble2post.publish.followup import check_draft, follow_up_draft, open_repo_for
    from ramble2post.transcribe.audio import check_readable
    from ramble2post.transcribe.glossary import glossary_setting, prompt_setting
    from ramble2post.transcribe.stage import TranscribeOptions, transcribe_file

    conf = settings or load_settings()
    say = progress or _quiet
    stop = should_stop or _never
    audio = Path(audio)
    spec = llm or _llm_of(conf)
    device = resolve_device(conf.device)
    gaps, likely = check_draft(open_repo_for(blog_repo), slug=slug, posts_dir=posts_dir)
    check_readable(audio)
    _check_llm(spec)
    say(f"{slug}: open parts {', '.join(gaps) or 'none'}; guesses to check {', '.join(likely) or 'none'}")
    t = _stage(1, "transcribe", f"{audio} with Whisper {conf.model} on {device}", say, stop, of=3)
    options = TranscribeOptions(
        model=conf.model,
        device=device,
        language=conf.language,
        prompt=prompt_setting(conf),
        glossary=glossary_setting(conf),
        term_bias=conf.term_bias,
    )
    transcript = transcribe_file(audio_path=audio, options=options)
    _done(t, f"{len(transcript.segments)} segments, {transcript.duration:.0f} s of audio", say)
    _language_note(transcript.language, say)
    t = _stage(2, "structure", f"the follow-up with {spec}", say, stop, of=3)
    from ramble2post.structure.stage import structure_transcript

    post = structure_transcript(transcript=transcript, llm=spec, progress=lambda m: say(INDENT + m))
    _done(t, "", say)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ramble2post-followup-") as tmp:  # results live until committed
        outcomes = _followup_experiments(
            conf, transcript, slug=slug, blog_repo=blog_repo, posts_dir=posts_dir, say=say, out_dir=Path(tmp)
        )
        t = _stage(3, "update", f"drafts/{slug}: answers in, your edits kept", say, stop, of=3)
        result = follow_up_draft(
            slug=slug,
            transcript=transcript,
            followup_post=post,
            blog_repo=blog_repo,
            posts_dir=posts_dir,
            say=say,
            experiment_results=outcomes,
        )
    _done(t, f"{result.author_notes} AUTHOR NOTE(s), {result.verify_marks} VERIFY mark(s) left", say)
    return result


def _followup_experiments(
    conf: Settings, transcript: Any, *, slug: str, blog_repo: Any, posts_dir: str | None, say: Progress, out_dir: Path
) -> list[Any]:
    """Experiments the follow-up refers to that the draft has not measured yet, run here (``--experiments``
    applies: ``none`` runs nothing, names run those); each failure is recorded, never fatal."""
    if conf.experiments == "none":
        return []
    from ramble2post.experiments.pipeline_hook import run_detected, select
    from ramble2post.publish.followup import measured_experiments

    have = measured_experiments(blog_repo, slug=slug, posts_dir=posts_dir)
    names = [n for n, _d in select(transcript=transcript, selection=conf.experiments) if n not in have]
    if not names:
        return []
    say(f"{INDENT}the follow-up refers to {', '.join(names)}: measuring on this machine")
    return run_detected(
        transcript=transcript,
        output_dir=out_dir,
        selection=",".join(names),
        device=conf.device,
        quick=conf.quick,
        whisper_model=conf.model,
        progress=lambda m: say(INDENT + m),
    )


def _experiment_llm(spec: str) -> str:
    """The model the experiments measure with: the one the user named, else the experiments' own small
    default, as ``ramble2post experiments run`` does. With the 1.5B structure model the speculative-decoding
    experiment took 413 s on 2 cores for a 3-minute ramble (stop 31), the 135M model ~125 s: the claims
    measured (does drafting pay, does batching) do not depend on the model's quality."""
    from ramble2post.config import DEFAULT_LLM, EXPERIMENT_LLM

    return EXPERIMENT_LLM if spec == DEFAULT_LLM else spec


def _check_enough_speech(transcript: Transcript, audio: Path) -> None:
    """InputError when the recording holds fewer than ``MIN_RAMBLE_WORDS`` words: nothing is drafted."""
    words = len(transcript.text.split())
    if words < MIN_RAMBLE_WORDS:
        raise InputError(
            f"only {words} word{'s' if words != 1 else ''} of speech in {audio.name} "
            f"({transcript.duration:.0f} s of audio): too little to draft a post from (at least {MIN_RAMBLE_WORDS})",
            hint="record the ramble itself; to answer a draft's AUTHOR NOTEs with a short memo, use "
            "`ramble2post follow-up SLUG memo.m4a`",
        )


def _language_note(language: str, say: Progress) -> None:
    """One line when the speech is not English: the structure stage's models, prompts and rules are
    English, so a draft of other speech is weak; a wrong detection is fixed with ``--language en``."""
    if not language or language.lower() in ("en", "english"):
        return
    from whisper.tokenizer import LANGUAGES

    name = LANGUAGES.get(language.lower(), language).title()
    say(
        f"{INDENT}note: the speech was heard as {name} ({language}); roles, title and experiments are built "
        "for English, so this draft will be weak. If it is English, run again with --language en"
    )


def _llm_of(conf: Settings) -> str:
    """``settings.llm``, served at ``settings.llm_url`` when one is set (as ``--llm-url`` does)."""
    from ramble2post.structure.models import parse_llm_spec

    return parse_llm_spec(conf.llm, url=conf.llm_url).text


def _stage(n: int, name: str, detail: str, say: Progress, stop: Callable[[], bool], *, of: int = len(STAGES)) -> float:
    if stop():  # a signal whose KeyboardInterrupt some library swallowed: stop here
        raise KeyboardInterrupt("interrupted during the previous stage")
    say(f"[{n}/{of}] {name}: {detail}")
    return time.perf_counter()


def _done(t0: float, detail: str, say: Progress) -> float:
    dt = time.perf_counter() - t0
    say(f"{INDENT}done in {dt:.1f} s{(' · ' + detail) if detail else ''}")
    return round(dt, 3)


def _hardware(device: str) -> Hardware:
    """Fingerprint of this machine: the one experiments record (the draft names the same machine)."""
    from ramble2post.experiments.hardware import describe, fingerprint, machine_label

    fp = fingerprint()
    return Hardware(label=describe(fp), machine=machine_label(fp, device=device), device=device)


def _preflight_blog(blog_repo: Path | None, posts_dir: str | None, say: Progress) -> Path:
    """Check the blog repo before any slow stage: a bad repo fails in a second, not after transcribing."""
    from ramble2post.publish import gitops
    from ramble2post.publish.blog import detect_layout, resolve_blog_repo

    path: Path = resolve_blog_repo(blog_repo, say=say)
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


def _check_llm(spec: str) -> None:
    """Refuse a malformed or unknown ``--llm`` up front (a served or downloadable model is checked when used)."""
    from ramble2post.structure.llm import check_gguf_spec
    from ramble2post.structure.models import parse_llm_spec

    parsed = parse_llm_spec(spec)
    if parsed.kind in ("path", "packaged"):
        check_gguf_spec(parsed.text)


def _check_experiment_names(selection: str) -> None:
    """Refuse unknown experiment names up front (auto, none and all are keywords)."""
    if selection.lower() in ("auto", "none", "all"):
        return
    from ramble2post.experiments import get

    for name in (n.strip() for n in selection.split(",") if n.strip()):
        try:
            get(name)
        except Exception as e:  # noqa: BLE001 - ExperimentError names the known experiments
            raise InputError(f"unknown experiment {name!r}", hint=getattr(e, "hint", None) or str(e)) from e


def _run_experiments(
    *, selection: str, transcript: Transcript, device: str, model: str, llm: str, quick: bool, say: Progress
) -> tuple[RunOutcome, ...]:
    if selection == "none":
        return ()
    from ramble2post.experiments.pipeline_hook import RunOutcome, run_detected

    run_dir = home_dir() / "runs" / f"{transcript.audio_sha256[:12]}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    try:
        outcomes = tuple(
            run_detected(
                transcript=transcript,
                output_dir=run_dir / "experiments",
                selection=selection,
                device=device,
                whisper_model=model,
                llm=llm,
                audio_path=transcript.audio_path,
                quick=quick,
                progress=lambda m: say(INDENT + m),
            )
        )
    except Ramble2PostError as e:  # e.g. an unknown experiment name: the draft is still produced
        say(f"{INDENT}experiments failed: {e}")
        return (RunOutcome(selection, "failed", error=str(e)),)
    for o in outcomes:
        if o.error:
            say(f"{INDENT}{o.experiment} failed: {o.error} (recorded in the draft)")
    return outcomes
