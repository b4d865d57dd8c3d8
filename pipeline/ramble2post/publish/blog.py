"""The user's AstroPaper blog repo: where it is, which layout, where files go.

Layouts (detected on the *default branch's tree*, not the work tree, so a
checked-out feature branch or uncommitted edits do not change the answer):

=========  =====================  ==========================================
AstroPaper posts folder            notes
=========  =====================  ==========================================
v5         ``src/data/blog/``      current theme (glob loader, Astro 5)
v4         ``src/content/blog/``   content collections (Astro 4)
v6         ``src/content/posts/``  newer layout
=========  =====================  ==========================================

Anything else is refused unless ``--posts-dir`` names the folder.

Images: AstroPaper's docs recommend ``src/assets/`` (optimised by Astro's image
service, referenced from Markdown by a *relative* path; ``public/`` works too but
is served unoptimised and breaks under a non-root ``base``). So a draft's plots
and raw experiment results go to ``src/assets/images/ramble2post/<slug>/`` and
the post references them as ``../../assets/images/ramble2post/<slug>/x.png``
(computed with ``posixpath.relpath`` from the posts folder, so it also works for
a custom ``--posts-dir``). Raw results are kept there as ``results/*.json`` so
that ``ramble2post rerun`` can add another machine's column later.

Default repo: with no ``--blog-repo`` and none configured (``blog_repo`` in
config.toml or ``RAMBLE2POST_BLOG_REPO``), a local repo with the v5 layout is
created at ``home_dir()/blog`` from ``blog/skeleton/``: a small Astro 5 site of
our own with AstroPaper's content schema (pinned by its package-lock.json), whose
post page shows the views as tabs; ``publish.site`` builds drafts with it.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import git

from ramble2post.config import BLOG_TEMPLATE_DIR, current, home_dir
from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops

log = logging.getLogger(__name__)  # diagnostics; stdout is for results only

LAYOUTS = (  # (name, posts folder) in detection order
    ("astropaper-v5", "src/data/blog"),
    ("astropaper-v4", "src/content/blog"),
    ("astropaper-v6", "src/content/posts"),
)
ASSETS_ROOT = "src/assets/images/ramble2post"  # per-draft images + results/ under <slug>/
SKELETON_DIR = BLOG_TEMPLATE_DIR / "skeleton"
BLOG_ENVVAR = "RAMBLE2POST_BLOG_REPO"
_SKIP_PARTS = {"__pycache__", "node_modules", "dist", ".astro"}  # build output never goes into a new blog


@dataclasses.dataclass(frozen=True)
class BlogLayout:
    """Where a draft's files go in one blog repo."""

    name: str  # astropaper-v5 | astropaper-v4 | astropaper-v6 | custom
    posts_dir: str  # POSIX path relative to the repo root
    assets_root: str = ASSETS_ROOT

    def post_path(self, slug: str) -> str:
        return f"{self.posts_dir}/{slug}.md"

    def assets_dir(self, slug: str) -> str:
        return f"{self.assets_root}/{slug}"

    def asset_ref(self, slug: str, name: str) -> str:
        """How the post's Markdown refers to ``assets_dir(slug)/name``."""
        rel = posixpath.relpath(f"{self.assets_dir(slug)}/{name}", self.posts_dir)
        return rel if rel.startswith(".") else f"./{rel}"


def _safe_rel(path: str) -> str:
    """Validate a user-given repo-relative folder: no absolute paths, no '..'."""
    raw = str(path).replace("\\", "/")
    p = PurePosixPath(raw.rstrip("/"))
    if raw.startswith("/") or not str(p) or str(p) == "." or ".." in p.parts or p.parts[0] == ".git":
        raise BlogRepoError(f"--posts-dir {path!r} must be a folder inside the blog repo (no '..', not absolute)")
    return str(p)


def detect_layout(repo: git.Repo, *, base: str, posts_dir: str | None = None) -> BlogLayout:
    """Which AstroPaper layout ``base`` (a commit) has, or the ``posts_dir`` override."""
    if posts_dir:
        return BlogLayout(name="custom", posts_dir=_safe_rel(posts_dir))
    found = [(name, d) for name, d in LAYOUTS if gitops.path_exists(repo, base, d)]
    if not found:
        raise BlogRepoError(
            f"{repo.working_tree_dir} does not look like an AstroPaper blog: none of "
            + ", ".join(f"{d}/" for _, d in LAYOUTS)
            + " exists on its default branch",
            hint="pass --posts-dir FOLDER (relative to the repo) to say where posts go",
        )
    name, d = found[0]
    return BlogLayout(name=name, posts_dir=d)


def configured_blog_repo(flag: str | Path | None) -> Path | None:
    """--blog-repo flag > RAMBLE2POST_BLOG_REPO > config.toml > None (``config.resolve``)."""
    configured = flag or current().blog_repo
    return Path(configured).expanduser() if configured else None


def default_blog_path() -> Path:
    return home_dir() / "blog"


def ensure_default_blog(*, say: Callable[[str], None] = log.info) -> Path:
    """Create (once) the local v5-layout blog repo at ``home_dir()/blog``."""
    path = default_blog_path()
    if (path / ".git").exists():
        return path
    if path.exists() and any(path.iterdir()):
        raise BlogRepoError(
            f"default blog folder {path} exists but is not a git repo",
            hint="move it away, or pass --blog-repo DIR",
        )
    if not SKELETON_DIR.is_dir():
        raise BlogRepoError(f"blog skeleton missing at {SKELETON_DIR} (broken install?)")
    create_blog_repo(path)
    say(f"No blog repo configured: created a local AstroPaper-style blog at {path} (layout v5, branch main).")
    say(f'  Use your own with --blog-repo DIR, {BLOG_ENVVAR}=DIR or blog_repo = "DIR" in the config file.')
    return path


def create_blog_repo(path: Path) -> git.Repo:
    """A new git repo at ``path`` whose branch ``main`` holds the bundled site (one commit, clean checkout)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        repo = git.Repo.init(path, initial_branch="main")
    except git.GitCommandError as e:
        raise BlogRepoError(f"cannot create a git repo at {path}: {e}") from e
    files: dict[str, bytes] = {}
    for f in sorted(SKELETON_DIR.rglob("*")):
        if f.is_file() and not _SKIP_PARTS & set(f.relative_to(SKELETON_DIR).parts):
            files[f.relative_to(SKELETON_DIR).as_posix()] = f.read_bytes()
    for rel, data in files.items():  # a normal checkout: files on disk match HEAD
        dest = path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    empty_tree = gitops._git(repo, "hash-object", "-t", "tree", "/dev/null")
    tree = gitops.build_tree(repo, empty_tree, files)
    commit = gitops.commit_tree(repo, tree, [], "Blog skeleton (AstroPaper v5 layout) created by ramble2post")
    gitops._git(repo, "update-ref", "refs/heads/main", commit, gitops.ZERO_SHA)
    gitops._git(repo, "read-tree", "main")  # index matches HEAD: `git status` is clean
    return repo


def resolve_blog_repo(flag: str | Path | None, *, say: Callable[[str], None] = log.info) -> Path:
    """The blog repo to use, creating the default one when none is configured."""
    configured = configured_blog_repo(flag)
    return configured if configured is not None else ensure_default_blog(say=say)
