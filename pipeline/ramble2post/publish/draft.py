"""Glue: a structured post -> a draft committed on ``drafts/<slug>`` in the blog repo."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import logging
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ramble2post.config import CHECKOUT_DIR
from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops
from ramble2post.publish.blog import detect_layout, resolve_blog_repo
from ramble2post.publish.measurements import ExperimentRecord
from ramble2post.publish.render import (
    count_author_notes,
    count_verify_marks,
    render_post,
    set_draft_flag,
    split_front_matter,
)
from ramble2post.publish.slug import is_valid_slug, unique_slug
from ramble2post.records import Hardware, Transcript
from ramble2post.structure.schema import Post
from ramble2post.version import __version__

log = logging.getLogger(__name__)  # diagnostics; stdout is for results only

_SOFTWARE = ("openai-whisper", "torch", "llama_cpp_python", "GitPython", "Jinja2", "PyYAML", "numpy")


@dataclasses.dataclass(frozen=True)
class Draft:
    """Where a draft landed."""

    repo: Path  # blog repo work tree
    path: str  # post path inside the repo (POSIX)
    slug: str
    branch: str  # drafts/<slug>
    commit: str  # sha of the one new commit
    base_branch: str
    layout: str
    verify_marks: int
    files: tuple[str, ...]
    author_notes: int = 0  # roles the ramble did not fill (an AUTHOR NOTE in their place)

    def to_dict(self) -> dict[str, Any]:
        """The draft as JSON (``ramble2post --json``)."""
        d = dataclasses.asdict(self)
        d["repo"] = str(self.repo)
        d["files"] = list(self.files)
        return d


def pipeline_commit() -> str:
    """This checkout's git commit (read-only query), '+dirty' when modified."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(CHECKOUT_DIR), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        if not sha:
            return "unknown (no commit)"
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(CHECKOUT_DIR), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def software_versions() -> dict[str, str]:
    """Versions of Python, ramble2post, the main libraries and git."""
    out = {"python": platform.python_version(), "ramble2post": __version__}
    for dist in _SOFTWARE:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        out["git"] = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        pass
    return out


def build_provenance(*, post: Post, transcript: Transcript, hardware: Hardware) -> dict[str, Any]:
    """Everything needed to reproduce (or distrust) the draft."""
    llm = post.llm or None
    return {
        "whisper": {
            "model": transcript.model.name,
            "source": transcript.model.source,
            "sha256": transcript.model.sha256,
            "source_sha256": transcript.model.source_sha256,
            "device": transcript.device,
            "language": transcript.language,
            "options": transcript.options,
        },
        "llm": {k: llm.get(k) for k in ("name", "sha256", "quantization", "source", "n_ctx") if k in llm}
        if llm
        else None,
        "prompts": post.prompts,
        "audio_sha256": transcript.audio_sha256,
        "transcript_sha256": post.transcript_sha256,
        "timing_s": {"transcribe": transcript.timing, "structure": post.timing},
        "hardware": hardware.to_dict(),
        "software": software_versions(),
        "pipeline_commit": pipeline_commit(),
        "python_executable": Path(sys.executable).name,
    }


def commit_message(*, title: str, slug: str, path: str, hardware: Hardware, verify_marks: int, n_results: int) -> str:
    """The draft commit's message, with ``Ramble2post-Slug``/``-Path`` trailers."""
    title_line = " ".join(title.split())[:60]
    body = [
        f"Draft: {title_line}",
        "",
        f"Drafted by ramble2post {__version__} from a spoken ramble into {path}",
        f"(draft: true; {verify_marks} item(s) marked VERIFY; {n_results} experiment result(s)).",
        f"Hardware: {hardware.label} (device {hardware.device}).",
        "",
        f"Ramble2post-Slug: {slug}",
        f"Ramble2post-Path: {path}",
    ]
    return "\n".join(body) + "\n"


def create_draft(
    *,
    post: Post,
    transcript: Transcript,
    experiment_results: Sequence[ExperimentRecord],
    blog_repo: Path | None,
    posts_dir: str | None = None,
    hardware: Hardware,
    now: dt.datetime | None = None,
    say: Callable[[str], None] = log.info,
    lock_wait_s: float = gitops.LOCK_WAIT_S,
) -> Draft:
    """Render ``post`` and commit it on a new ``drafts/<slug>`` branch.

    The user's checkout is never touched (see ``publish.gitops``). Raises
    ``BlogRepoError`` for unusable repos.

    post: the structure stage's record.
    transcript: the transcript it was made from.
    experiment_results: the experiment runs (``RunOutcome``) or stored results the post carries.
    blog_repo: the blog's work tree (None: the configured or default one, created if missing).
    posts_dir: where posts live in the repo (None: detected from the blog's layout).
    hardware: the machine that drafted it (``label``, ``machine``, ``device``).
    now: the post's date (default: now, UTC).
    say: progress lines (the CLI prints them on stderr).
    lock_wait_s: seconds to wait for another ramble2post holding the repo's lock.
    """
    now = now or dt.datetime.now(dt.UTC)
    repo_path = resolve_blog_repo(blog_repo, say=say)
    repo = gitops.open_repo(repo_path)
    title = post.title.text or "ramble"
    with gitops.repo_lock(repo, wait_s=lock_wait_s):
        base_branch = gitops.default_branch(repo)
        base = gitops.base_sha(repo, base_branch)
        layout = detect_layout(repo, base=base, posts_dir=posts_dir)

        def taken(slug: str) -> bool:
            return (
                gitops.path_exists(repo, base, layout.post_path(slug))
                or gitops.path_exists(repo, base, layout.assets_dir(slug))
                or gitops.branch_exists(repo, f"{gitops.DRAFT_PREFIX}{slug}")
            )

        slug = unique_slug(title, exists=taken)
        earlier = drafts_of_audio(repo, transcript.audio_sha256)
        if earlier:  # a second run of one recording is a new branch, said so: the user may want the first
            names = ", ".join(f"{gitops.DRAFT_PREFIX}{e}" for e in earlier)
            say(
                f"note: {names} already hold(s) a draft of this recording; this one goes on "
                f"{gitops.DRAFT_PREFIX}{slug} (delete a draft you do not want with: git branch -D BRANCH)"
            )
        rendered = render_post(
            post=post,
            transcript=transcript,
            experiment_results=experiment_results,
            layout=layout,
            slug=slug,
            hardware=hardware,
            now=now,
            provenance=build_provenance(post=post, transcript=transcript, hardware=hardware),
        )
        message = commit_message(
            title=title,
            slug=slug,
            path=rendered.post_path,
            hardware=hardware,
            verify_marks=rendered.verify_count,
            n_results=len(experiment_results),
        )
        result = gitops.commit_new_branch(
            repo, branch=f"{gitops.DRAFT_PREFIX}{slug}", files=rendered.files, message=message, base_branch=base_branch
        )
    return Draft(
        repo=Path(str(repo.working_tree_dir)),
        path=rendered.post_path,
        slug=slug,
        branch=result.branch,
        commit=result.commit,
        base_branch=base_branch,
        layout=layout.name,
        verify_marks=rendered.verify_count,
        files=tuple(sorted(rendered.files)),
        author_notes=rendered.author_count,
    )


# ---------------------------------------------------------------- review workflow


@dataclasses.dataclass(frozen=True)
class DraftInfo:
    """One draft branch (or a published post found for preview)."""

    slug: str
    branch: str  # drafts/<slug>, or the default branch for a published post
    commit: str
    path: str
    title: str
    date: str
    verify_marks: int
    draft: bool
    author_notes: int = 0  # roles the ramble did not fill, left to the author


def find_post(repo: gitops.git.Repo, *, slug: str, posts_dir: str | None = None) -> DraftInfo:
    """The draft ``drafts/<slug>``, else the published post ``<slug>.md`` on the default branch."""
    if not is_valid_slug(slug):
        raise BlogRepoError(f"{slug!r} is not a ramble2post slug", hint="see `ramble2post drafts` for the list")
    branch = f"{gitops.DRAFT_PREFIX}{slug}"
    tip = gitops.ref_sha(repo, f"refs/heads/{branch}")
    base_branch = gitops.default_branch(repo)
    base = gitops.base_sha(repo, base_branch)
    path = None
    if tip:
        path = _draft_post_path(repo, base=base, tip=tip, slug=slug)
    else:
        layout = detect_layout(repo, base=base, posts_dir=posts_dir)
        if gitops.path_exists(repo, base, layout.post_path(slug)):
            branch, tip, path = base_branch, base, layout.post_path(slug)
    if not tip or not path:
        raise BlogRepoError(
            f"no draft or post named {slug!r} in {repo.working_tree_dir}", hint="see `ramble2post drafts` for the list"
        )
    text = (gitops.read_blob(repo, tip, path) or b"").decode("utf-8", errors="replace")
    front, _ = split_front_matter(text)
    return DraftInfo(
        slug=slug,
        branch=branch,
        commit=tip,
        path=path,
        title=str(front.get("title", slug)),
        date=str(front.get("pubDatetime", "")),
        verify_marks=count_verify_marks(text),
        draft=bool(front.get("draft", False)),
        author_notes=count_author_notes(text),
    )


def _draft_post_path(repo: gitops.git.Repo, *, base: str, tip: str, slug: str) -> str | None:
    """The Markdown file the draft branch added (prefers ``<slug>.md``)."""
    mb = repo.git.merge_base(base, tip)
    names: list[str] = [
        n for n in repo.git.diff("--name-only", "--no-renames", mb, tip, "--", "*.md").splitlines() if n
    ]
    for n in names:
        if n.rsplit("/", 1)[-1] == f"{slug}.md":
            return n
    return names[0] if names else None


def drafts_of_audio(repo: gitops.git.Repo, audio_sha256: str) -> list[str]:
    """Slugs of the ``drafts/*`` branches whose post was made from the recording ``audio_sha256``."""
    if not audio_sha256:
        return []
    out = []
    for info in list_drafts(repo):
        if not info.commit or not info.path:
            continue
        text = (gitops.read_blob(repo, info.commit, info.path) or b"").decode("utf-8", errors="replace")
        meta = split_front_matter(text)[0].get("ramble2post") or {}
        if isinstance(meta, dict) and meta.get("audio_sha256") == audio_sha256:
            out.append(info.slug)
    return out


def list_drafts(repo: gitops.git.Repo) -> list[DraftInfo]:
    """All ``drafts/*`` branches with title, date, VERIFY marks and AUTHOR NOTEs."""
    refs = repo.git.for_each_ref("--format=%(refname)", f"refs/heads/{gitops.DRAFT_PREFIX}").splitlines()
    out = []
    for ref in refs:
        slug = ref.removeprefix(f"refs/heads/{gitops.DRAFT_PREFIX}")
        try:
            out.append(find_post(repo, slug=slug))
        except Exception:  # noqa: BLE001 - a hand-made branch should not break the listing
            out.append(DraftInfo(slug, ref.removeprefix("refs/heads/"), "", "", "(unreadable draft)", "", -1, True))
    return out


@dataclasses.dataclass(frozen=True)
class Published:
    slug: str
    branch: str  # the default branch that received the post
    commit: str
    path: str
    worktree_updated: bool  # True when the branch was checked out and its files were updated


def publish_draft(
    repo: gitops.git.Repo,
    *,
    slug: str,
    force: bool = False,
    now: dt.datetime | None = None,
    lock_wait_s: float = gitops.LOCK_WAIT_S,
) -> Published:
    """Merge ``drafts/<slug>`` into the default branch with ``draft: false``.

    A merge commit (parents: default branch, draft) is built with plumbing.
    When the default branch is not checked out, only its ref moves; when it is
    checked out and clean, index and files are updated with ``read-tree -m -u``
    (no hooks); when it is checked out and dirty, nothing happens.
    """
    now = now or dt.datetime.now(dt.UTC)
    with gitops.repo_lock(repo, wait_s=lock_wait_s):
        info = find_post(repo, slug=slug)
        if not info.branch.startswith(gitops.DRAFT_PREFIX):
            raise BlogRepoError(f"{slug} is already published on {info.branch}")
        if info.verify_marks > 0 and not force:
            raise BlogRepoError(
                f"{slug} still has {info.verify_marks} VERIFY mark(s): check those items first",
                hint="edit the draft on its branch and remove the marks, or publish anyway with --force",
            )
        if info.author_notes > 0 and not force:
            raise BlogRepoError(
                f"{slug} still has {info.author_notes} AUTHOR NOTE(s): parts of the format the ramble left to you",
                hint="write them (or delete the notes) on the draft's branch, or publish anyway with --force",
            )
        base_branch = gitops.default_branch(repo)
        base = gitops.base_sha(repo, base_branch)
        tip = info.commit
        mb = repo.git.merge_base(base, tip)
        changed = [ln.split("\t") for ln in repo.git.diff("--name-status", "--no-renames", mb, tip).splitlines() if ln]
        moved_on_base = set(repo.git.diff("--name-only", "--no-renames", mb, base).splitlines())
        clash = sorted(p for _, p in changed if p in moved_on_base)
        if clash:
            raise BlogRepoError(
                f"{base_branch} changed the draft's files since drafting: {', '.join(clash)}",
                hint="merge by hand with git",
            )
        files = {p: _blob(repo, tip, p) for s, p in changed if s != "D"}
        removed = tuple(p for s, p in changed if s == "D")
        post_text = files[info.path].decode("utf-8")
        files[info.path] = set_draft_flag(post_text, draft=False, pub=now).encode("utf-8")
        tree = gitops.build_tree(repo, base, files, remove=removed)
        message = (
            f"Publish: {' '.join(info.title.split())[:60]}\n\nMerge {info.branch} into {base_branch} "
            f"with draft: false (ramble2post).\n\nRamble2post-Slug: {slug}\nRamble2post-Path: {info.path}\n"
        )
        commit = gitops.commit_tree(repo, tree, [base, tip], message)
        updated = False
        if gitops.current_branch(repo) == base_branch:
            if not gitops.worktree_is_clean(repo):
                raise BlogRepoError(
                    f"{base_branch} is checked out with uncommitted changes: not publishing over them",
                    hint="commit or stash them, or check out another branch, then publish again",
                )
            wt = Path(str(repo.working_tree_dir))
            tracked = set(repo.git.ls_tree("-r", "--name-only", base).splitlines())
            in_the_way = sorted(p for p in files if p not in tracked and (wt / p).exists())
            if in_the_way:
                raise BlogRepoError(f"untracked files would be overwritten: {', '.join(in_the_way)}")
            gitops._git(repo, "read-tree", "-m", "-u", base, commit)
            updated = True
        elif gitops.branch_checked_out_elsewhere(repo, base_branch):
            raise BlogRepoError(f"{base_branch} is checked out in another worktree", hint="publish from there")
        gitops._git(repo, "update-ref", "-m", f"ramble2post: publish {slug}", f"refs/heads/{base_branch}", commit, base)
        draft_in_use = gitops.current_branch(repo) == info.branch or gitops.branch_checked_out_elsewhere(
            repo, info.branch
        )
        if not draft_in_use:  # merged: the draft branch is no longer needed
            gitops._git(repo, "update-ref", "-d", f"refs/heads/{info.branch}", tip)
    return Published(slug=slug, branch=base_branch, commit=commit, path=info.path, worktree_updated=updated)


def _blob(repo: gitops.git.Repo, commit: str, path: str) -> bytes:
    data = gitops.read_blob(repo, commit, path)
    if data is None:
        raise BlogRepoError(f"{path} is missing from commit {commit[:12]}")
    return data
