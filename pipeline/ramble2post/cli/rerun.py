"""``ramble2post rerun SLUG``: measure a post's experiments again on this machine, side by side."""

from __future__ import annotations

import click

from ramble2post.cli.options import blog_repo_option, device_option, posts_dir_option, quick_option


@click.command(name="rerun")
@click.argument("slug")
@blog_repo_option
@device_option
@quick_option
@click.option(
    "--experiment",
    "only",
    multiple=True,
    metavar="NAME",
    help="Rerun only this experiment (repeatable). Default: every experiment the post has results for.",
)
@posts_dir_option
def rerun_cmd(slug, blog_repo, device, quick, only, posts_dir):
    """Rerun the experiments of draft or post SLUG here and add this machine's numbers next to the old ones.

    Earlier machines' results are never changed: this machine becomes a new
    column (a second rerun on the same machine is a new dated run), and each
    plot is redrawn with all machines. A draft gets a new commit on its
    drafts/SLUG branch; a published post gets a new branch rerun/SLUG/MACHINE.

    \b
    Example:
        ramble2post rerun my-post-slug --blog-repo ~/src/my-blog --device cuda
    """
    from ramble2post.publish.rerun import rerun_post

    res = rerun_post(
        slug=slug,
        blog_repo=blog_repo,
        device=device,
        quick=quick,
        only=only,
        posts_dir=posts_dir,
        say=lambda m: click.echo(m, err=True),
    )
    where = "new branch" if res.published else "draft branch"
    click.echo(
        f"Added {len(res.added)} file(s) measured on {res.machine} to {where} {res.branch} "
        f"(commit {res.commit[:10]}): {', '.join(res.experiments)}"
    )
