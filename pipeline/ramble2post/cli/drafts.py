"""``ramble2post drafts | publish SLUG | preview SLUG``: review drafts in the blog repo."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ramble2post.cache import atomic_write_text
from ramble2post.cli.options import blog_repo_option
from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops
from ramble2post.publish.blog import configured_blog_repo, default_blog_path
from ramble2post.publish.draft import find_post, list_drafts, publish_draft


def _open(blog_repo: Path | None):
    path = configured_blog_repo(blog_repo) or default_blog_path()
    if not path.exists() and blog_repo is None:
        raise BlogRepoError(
            f"no blog repo yet at {path}", hint="draft a post first: ramble2post AUDIO (or pass --blog-repo DIR)"
        )
    return gitops.open_repo(path)


@click.command(name="drafts")
@blog_repo_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of a table.")
def drafts_cmd(blog_repo, as_json):
    """List draft branches (drafts/<slug>) with title, date, VERIFY marks and AUTHOR NOTEs left.

    VERIFY marks an item to check against the ramble; an AUTHOR NOTE stands where the
    ramble filled no sentence of a role (no analogy, no trade-off...): yours to write.

    \b
    Example:
        ramble2post drafts --blog-repo ~/src/my-blog
    """
    repo = _open(blog_repo)
    drafts = list_drafts(repo)
    if as_json:
        click.echo(json.dumps([d.__dict__ for d in drafts], indent=2, default=str))
        return
    if not drafts:
        click.echo(f"No drafts in {repo.working_tree_dir}.")
        return
    click.echo(f"Drafts in {repo.working_tree_dir} (default branch {gitops.default_branch(repo)}):")
    for d in drafts:
        if d.verify_marks < 0:
            status = "unreadable"
        else:
            marks = [f"{d.verify_marks} VERIFY"] * bool(d.verify_marks) + [f"{d.author_notes} NOTE"] * bool(
                d.author_notes
            )
            status = ", ".join(marks) or "ready"
        click.echo(f"  {d.slug:<40} {d.date[:16]:<16}  {status:<16}  {d.title}")


@click.command(name="publish")
@click.argument("slug")
@blog_repo_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Publish even though VERIFY marks remain in the draft.")
def publish_cmd(slug, blog_repo, yes, force):
    """Merge the draft SLUG into the default branch with draft: false.

    Refuses while VERIFY marks remain (unless --force). If the default branch is
    checked out it must be clean, and its files are updated; otherwise only the
    branch moves and your working tree is left alone. Nothing is pushed.
    """
    repo = _open(blog_repo)
    info = find_post(repo, slug=slug)
    if not info.branch.startswith(gitops.DRAFT_PREFIX):
        raise BlogRepoError(f"{slug} is already published on {info.branch}")
    if info.verify_marks and not force:
        raise BlogRepoError(
            f"{slug} still has {info.verify_marks} VERIFY mark(s): check those items first",
            hint="edit the draft on its branch and remove the marks, or publish anyway with --force",
        )
    target = gitops.default_branch(repo)
    if not yes:
        click.confirm(f"Publish “{info.title}” ({info.path}) into {target} with draft: false?", abort=True)
    result = publish_draft(repo, slug=slug, force=force)
    where = "branch and checkout updated" if result.worktree_updated else "branch updated, working tree untouched"
    click.echo(f"Published {result.path} on {result.branch} at {result.commit[:12]} ({where}). Not pushed.")


@click.command(name="preview")
@click.argument("slug")
@blog_repo_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the standalone HTML page here (implies --standalone). Default: ./<slug>.preview.html",
)
@click.option(
    "--standalone", is_flag=True, help="One self-contained HTML file instead of building the blog's Astro site."
)
@click.option("--serve", is_flag=True, help="After building, run `astro preview` on localhost until Ctrl-C.")
@click.option("--port", type=click.IntRange(1, 65535), default=4321, show_default=True, help="Port for --serve.")
@click.option("--open", "open_page", is_flag=True, help="Open the built page in the default browser.")
def preview_cmd(slug, blog_repo, output, standalone, serve, port, open_page):
    """Show the draft SLUG as the blog will: Post · Human contribution · AI assistance · Ramble.

    When the blog is an Astro site and node and npm are installed, the draft's
    branch is exported to a work folder (never your checkout), its npm
    dependencies are installed once (cached per lockfile), and `astro build`
    renders it; the built page's path is printed. With --serve, `astro preview`
    serves it on http://127.0.0.1:PORT/. Otherwise (or with --standalone / -o)
    one standalone HTML file with the views and inlined images is written.
    """
    from ramble2post.publish import site

    repo = _open(blog_repo)
    info = find_post(repo, slug=slug)
    if not (standalone or output):
        try:
            built = site.build_draft(
                repo,
                commit=info.commit,
                post_path=info.path,
                slug=info.slug,
                work_dir=site.work_dir_for(Path(str(repo.working_tree_dir))),
                say=lambda m: click.echo(m, err=True),
            )
        except site.SiteUnavailable as e:
            click.echo(f"No Astro build ({e}); writing the standalone preview page instead.", err=True)
            if serve:
                click.echo("--serve needs the Astro build: open the standalone page in a browser.", err=True)
        else:
            click.echo(f"Built {info.branch}:{info.path} with Astro in {built.build_s:.1f} s.")
            click.echo(f"Page: {built.page}")
            if open_page:
                click.launch(str(built.page))
            if serve:
                click.echo(f"Serving on http://127.0.0.1:{port}{built.url_path} (Ctrl-C stops it)")
                site.serve(built.site_dir, port=port)
            return
    _write_standalone(repo, info, slug=slug, output=output, open_page=open_page)


def _write_standalone(repo, info, *, slug: str, output: Path | None, open_page: bool) -> None:
    from ramble2post.publish.render import render_preview

    markdown = (gitops.read_blob(repo, info.commit, info.path) or b"").decode("utf-8", errors="replace")
    html = render_preview(
        markdown=markdown,
        post_path=info.path,
        source=f"{info.branch} @ {info.commit[:12]}",
        read_file=lambda p: gitops.read_blob(repo, info.commit, p),
    )
    output = output or Path(f"{slug}.preview.html")
    atomic_write_text(output, html)
    click.echo(f"Wrote {output} (from {info.branch}:{info.path}).")
    if open_page:
        click.launch(str(output))
