"""``ramble2post follow-up SLUG AUDIO``: answer a draft's open parts with a second recording."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ramble2post.cli.options import (
    blog_repo_option,
    device_option,
    language_option,
    llm_option,
    llm_spec,
    posts_dir_option,
    settings,
    whisper_model_option,
)
from ramble2post.cli.signals import interrupt_pending


@click.command(name="follow-up")
@click.argument("slug")
@click.argument("audio", type=click.Path(path_type=Path, dir_okay=False))
@blog_repo_option
@posts_dir_option
@whisper_model_option
@llm_option
@device_option
@language_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (branch, commit, roles filled).")
def followup_cmd(slug, audio, blog_repo, posts_dir, model, llm, device, language, as_json):
    """Fill draft SLUG's AUTHOR NOTEs and guesses from a second recording AUDIO.

    Say which part you answer ("the analogy is ...", "a trade-off: ..."): each answer
    replaces its AUTHOR NOTE (or the VERIFY guess for that part), with the time it was
    said in the follow-up; more for a part already written is added after it. The
    draft is updated on its drafts/SLUG branch as one new commit. Your own edits on
    that branch stay byte for byte; if the follow-up would overwrite one, nothing
    changes and the error names the section.

    \b
    Example:
        ramble2post follow-up my-post-slug followup.m4a --blog-repo ~/src/my-blog
    """
    from ramble2post.api import follow_up

    conf = settings()
    conf = dataclasses.replace(
        conf, model=model or conf.model, device=device or conf.device, language=language or conf.language
    )
    res = follow_up(
        slug=slug,
        audio=audio,
        blog_repo=blog_repo,
        settings=conf,
        llm=llm_spec(llm),
        posts_dir=posts_dir,
        progress=lambda m: click.echo(m, err=True),
        should_stop=interrupt_pending,
    )
    if as_json:
        click.echo(json.dumps(res.to_dict(), ensure_ascii=False))
        return
    click.echo(f"Follow-up {res.recording} committed (not pushed) on {res.branch}")
    click.echo(f"  commit   {res.commit}")
    for what, roles in (
        ("filled", res.filled),
        ("replaced", res.replaced),
        ("added to", res.added),
        ("confirmed", res.confirmed),
        ("dropped", res.dropped),
        ("measured", res.measured),
    ):
        if roles:
            click.echo(f"  {what:<8} {', '.join(roles)}")
    click.echo(f"  left     {res.author_notes} AUTHOR NOTE(s), {res.verify_marks} VERIFY mark(s)")
    click.echo(f"Next: git diff {res.previous[:10]} {res.commit[:10]} · ramble2post preview {slug}")
