"""Build a draft with the blog's own Astro site, for ``ramble2post preview``.

The draft's commit is exported (``git archive``) into a work folder of ours, never
the user's checkout; in that copy only, the post's ``draft: true`` becomes
``false`` (AstroPaper hides drafts from every page, even under ``astro dev``) and
``SHOW_DRAFTS=1`` is set (the default blog's own switch). Then ``astro build``.

npm dependencies are installed once per lockfile: ``npm ci --prefer-offline``
into ``<node cache>/<sha256 of package-lock.json>/node_modules``, which each
export links to. The node cache is ``$RAMBLE2POST_NODE_CACHE``, else
``cache_dir()/node_modules``.

``python -m ramble2post.publish.site install [SITE_DIR]`` fills the cache for a
site folder (the bundled skeleton by default): CI runs it once before the tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from ramble2post.config import cache_dir, current, home_dir
from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops

log = logging.getLogger(__name__)  # diagnostics; stdout is for results only

NODE_CACHE_ENV = "RAMBLE2POST_NODE_CACHE"
NPM_TIMEOUT_S = 900  # s: npm ci with a cold cache on a slow link
BUILD_TIMEOUT_S = 600  # s: astro build of a small blog takes ~5 s on 2 cores
LOG_TAIL = 3000  # characters of npm/astro output kept in an error


class SiteUnavailable(Exception):
    """No site build here (no node/npm, not an Astro site, npm cannot install): use the standalone page."""


@dataclasses.dataclass(frozen=True)
class SiteBuild:
    """A built export of the blog at one commit."""

    site_dir: Path  # the exported tree (node_modules linked in)
    dist_dir: Path
    page: Path  # the post's built HTML
    url_path: str  # the post's path on the site, e.g. /posts/<slug>/
    build_s: float  # wall seconds of `astro build`
    install_s: float  # wall seconds of `npm ci` (0 when the cache had it)


def node_tools() -> tuple[str, str] | None:
    """(node, npm) executables, or None when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def is_astro_site(package_json: bytes | None) -> bool:
    """Whether a package.json declares astro (dependencies or devDependencies)."""
    try:
        data = json.loads(package_json or b"{}")
    except ValueError:
        return False
    deps = {**(data.get("dependencies") or {}), **(data.get("devDependencies") or {})}
    return isinstance(data, dict) and "astro" in deps


def node_cache() -> Path:
    configured = current().node_cache
    return Path(configured).expanduser().resolve() if configured else cache_dir() / "node_modules"


def _lock_key(site: Path) -> str:
    lock = site / "package-lock.json"
    src = lock if lock.is_file() else site / "package.json"
    return hashlib.sha256(src.read_bytes()).hexdigest()[:16]


def _tail(text: str) -> str:
    return text[-LOG_TAIL:].strip()


def ensure_node_modules(site: Path, *, say: Callable[[str], None] = log.info) -> float:
    """Link ``site/node_modules`` to the cached install for its lockfile; install it first if needed.

    Returns the seconds spent installing (0.0 on a cache hit). Raises SiteUnavailable
    when npm is missing or fails (offline with a cold cache, say).
    """
    tools = node_tools()
    if tools is None:
        raise SiteUnavailable("node and npm are not installed")
    target = node_cache() / _lock_key(site)
    link = site / "node_modules"
    if not (target / "node_modules" / ".bin" / "astro").exists():
        staging = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            if (site / name).is_file():
                shutil.copy2(site / name, staging / name)
        lock = (staging / "package-lock.json").is_file()
        cmd = [tools[1], "ci" if lock else "install", "--prefer-offline", "--no-audit", "--no-fund"]
        say(f"Installing the blog's npm dependencies once ({' '.join(cmd[1:])}); later previews reuse them.")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=staging, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SiteUnavailable(f"npm could not run: {e}") from e
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise SiteUnavailable(f"`npm {cmd[1]}` failed: {_tail(proc.stdout + proc.stderr)}")
        seconds = time.perf_counter() - t0
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)  # atomic: a half-installed cache is never linked
    else:
        seconds = 0.0
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target / "node_modules", target_is_directory=True)
    return seconds


def export_commit(repo, commit: str, dest: Path) -> None:
    """The tree of ``commit`` written under ``dest`` (emptied first, node_modules kept out)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        data = repo.git.archive("--format=tar", commit, stdout_as_string=False)
    except gitops.git.GitCommandError as e:
        raise BlogRepoError(f"cannot export {commit[:12]} of the blog repo: {e}") from e
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")  # no absolute paths, no links out of dest
        else:  # Python < 3.11.4: plain files and folders inside dest only
            safe = [m for m in tar.getmembers() if (m.isfile() or m.isdir()) and ".." not in Path(m.name).parts]
            tar.extractall(dest, members=[m for m in safe if not m.name.startswith("/")])


def _find_page(dist: Path, slug: str) -> tuple[Path, str] | None:
    preferred = dist / "posts" / slug / "index.html"
    if preferred.is_file():
        return preferred, f"/posts/{slug}/"
    for page in sorted(dist.rglob(f"{slug}/index.html")):
        return page, "/" + page.parent.relative_to(dist).as_posix() + "/"
    flat = sorted(dist.rglob(f"{slug}.html"))
    return (flat[0], "/" + flat[0].relative_to(dist).as_posix()) if flat else None


def work_dir_for(repo_path: Path) -> Path:
    """Where previews of one blog repo are built (outside it)."""
    key = hashlib.sha256(str(repo_path.resolve()).encode()).hexdigest()[:12]
    return home_dir() / "preview" / key


def build_draft(
    repo,
    *,
    commit: str,
    post_path: str,
    slug: str,
    work_dir: Path,
    say: Callable[[str], None] = log.info,
) -> SiteBuild:
    """Export ``commit``, show its post as published, and ``astro build`` it.

    Raises SiteUnavailable (use the standalone page) or BlogRepoError (the build failed:
    the message carries the end of Astro's output).
    """
    from ramble2post.publish.render import set_draft_flag, split_front_matter

    if node_tools() is None:
        raise SiteUnavailable("node and npm are not installed")
    if not is_astro_site(gitops.read_blob(repo, commit, "package.json")):
        raise SiteUnavailable("the blog repo's package.json does not declare astro")
    site = work_dir / "site"
    export_commit(repo, commit, site)
    post_file = site / post_path
    text = post_file.read_text(encoding="utf-8")
    if split_front_matter(text)[0].get("draft"):
        post_file.write_text(set_draft_flag(text, draft=False), encoding="utf-8")  # in the export only
    install_s = ensure_node_modules(site, say=say)
    env = {**os.environ, "SHOW_DRAFTS": "1", "ASTRO_TELEMETRY_DISABLED": "1", "NO_COLOR": "1"}
    say(f"Building the blog at {commit[:12]} with Astro in {site} ...")
    t0 = time.perf_counter()
    astro = site / "node_modules" / ".bin" / "astro"
    try:
        proc = subprocess.run(
            [str(astro), "build"], cwd=site, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BlogRepoError(f"astro build could not run: {e}") from e
    build_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BlogRepoError(
            f"astro build failed for {post_path}:\n{_tail(proc.stdout + proc.stderr)}",
            hint="fix the draft (or the site) on its branch, or use --standalone for the plain preview page",
        )
    found = _find_page(site / "dist", slug)
    if found is None:
        raise BlogRepoError(
            f"astro build succeeded but made no page for {slug} under {site / 'dist'}",
            hint="the site's post route may filter it out; --standalone shows the plain preview page",
        )
    return SiteBuild(site, site / "dist", found[0], found[1], round(build_s, 2), round(install_s, 2))


def serve(site: Path, *, host: str = "127.0.0.1", port: int = 4321) -> int:
    """Run ``astro preview`` on the built export until interrupted; its exit status."""
    astro = site / "node_modules" / ".bin" / "astro"
    env = {**os.environ, "ASTRO_TELEMETRY_DISABLED": "1"}
    try:
        return subprocess.call([str(astro), "preview", "--host", host, "--port", str(port)], cwd=site, env=env)
    except KeyboardInterrupt:
        return 0


def _main(argv: list[str]) -> int:
    """``install [SITE_DIR]``: fill the node cache for a site (default: the bundled blog skeleton)."""
    from ramble2post.publish.blog import SKELETON_DIR

    if not argv or argv[0] != "install":
        print("usage: python -m ramble2post.publish.site install [SITE_DIR]", file=sys.stderr)
        return 2
    site = Path(argv[1]) if len(argv) > 1 else SKELETON_DIR
    work = node_cache() / "install-src"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        if (site / name).is_file():
            shutil.copy2(site / name, work / name)
    try:
        seconds = ensure_node_modules(work, say=print)
    except SiteUnavailable as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    print(f"node_modules for {site} ready in {node_cache()} ({seconds:.1f} s installing)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
