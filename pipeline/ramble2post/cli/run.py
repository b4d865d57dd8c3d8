"""The main command: ``ramble2post AUDIO`` -> a draft on its own branch of the blog repo.

The work is ``ramble2post.run`` (``ramble2post.api``): transcribe -> structure ->
experiments -> render + commit. Here only options become settings, progress lines go
to stderr, and stdout carries only the final summary (or one JSON object with ``--json``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ramble2post.cli.options import (
    blog_repo_option,
    device_option,
    jargon_prompt_option,
    language_option,
    llm_option,
    llm_spec,
    posts_dir_option,
    quick_option,
    settings,
    term_bias_option,
    whisper_model_option,
)
from ramble2post.cli.signals import interrupt_pending


def _say(msg: str) -> None:
    click.echo(msg, err=True)


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
    help="auto (run what the ramble claims something testable about; a topic only mentioned is not measured),"
    " none, or a comma-separated list of experiment names.",
)
@jargon_prompt_option
@term_bias_option
@quick_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (draft path, branch, commit, timings).")
def run_cmd(
    audio: Path,
    blog_repo: Path | None,
    posts_dir: str | None,
    model: str | None,
    llm: str | None,
    device: str | None,
    language: str | None,
    experiments: str | None,
    jargon_prompt: bool,
    term_bias: float,
    quick: bool,
    as_json: bool,
) -> None:
    """Draft a blog post from AUDIO: transcribe, structure, measure, commit.

    The draft lands on a new branch drafts/<slug> of the blog repo; your
    checked-out branch, index and files are not touched, and nothing is pushed.

    \b
    Examples:
        ramble2post ramble.m4a
        ramble2post ramble.m4a --blog-repo ~/src/blog --experiments none --json
        ramble2post ramble.m4a --llm-url http://127.0.0.1:8080/v1 --llm qwen2.5-7b-instruct
    """
    from ramble2post.api import run

    conf = settings()
    conf = dataclasses.replace(
        conf,
        model=model or conf.model,
        device=device or conf.device,
        language=language or conf.language,
        experiments=experiments or conf.experiments or "auto",
        jargon_prompt=jargon_prompt,
        term_bias=term_bias,
    )
    result = run(
        audio=audio,
        blog_repo=blog_repo,
        settings=conf,
        llm=llm_spec(llm),
        posts_dir=posts_dir,
        quick=quick,
        progress=_say,
        should_stop=interrupt_pending,
    )
    draft = result.draft
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    click.echo(f"Draft committed (not pushed) in {draft.repo}")
    click.echo(f"  file    {draft.path}")
    click.echo(f"  branch  {draft.branch}")
    click.echo(f"  commit  {draft.commit}")
    if draft.verify_marks:
        click.echo(f"  review  {draft.verify_marks} item(s) marked VERIFY")
    if draft.author_notes:
        click.echo(f"  write   {draft.author_notes} part(s) the ramble left to you, marked AUTHOR NOTE")
        click.echo(f"          or answer them by voice: ramble2post follow-up {draft.slug} memo.m4a")
    click.echo(
        f"Next: ramble2post preview {draft.slug} · ramble2post publish {draft.slug}"
        + (f" --blog-repo {draft.repo}" if blog_repo else "")
    )
