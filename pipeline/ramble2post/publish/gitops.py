"""Git operations on the user's blog repo that never touch their checkout.

Drafts are committed with plumbing only: the base tree is read into a
*temporary* index (``GIT_INDEX_FILE`` pointing to a temp file), new blobs are
written with ``hash-object -w --no-filters``, the tree with ``write-tree``, the
commit with ``commit-tree`` and the branch with ``update-ref <ref> <new> <zero>``
(which fails if the branch appeared in the meantime). The user's HEAD, index and
working tree are never read from or written to, so their current branch,
staged changes and uncommitted edits stay byte-for-byte as they were.

Hooks: only plumbing is used (read-tree, hash-object, update-index, write-tree,
commit-tree, update-ref), which runs no commit/checkout/merge hooks; and every
command that writes gets ``-c core.hooksPath=/dev/null`` so that not even the
``reference-transaction`` hook (run by update-ref since git 2.28) executes, and
``-c core.fsmonitor=false`` so that a ``core.fsmonitor`` program configured in the
blog repo is not started either. The blog repo's hooks therefore never run with
text that came from a transcript.
Nothing is ever pushed.

Default branch rule (``default_branch``): the local branch that
``refs/remotes/origin/HEAD`` points to; else ``main``; else ``master``; else the
``init.defaultBranch`` setting; else the only non-draft local branch. Anything
else is refused with a hint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import git  # GitPython

from ramble2post.errors import BlogRepoError

LOCK_NAME = "ramble2post.lock"
LOCK_WAIT_S = 10.0  # s to wait for another run's lock before giving up
LOCK_POLL_S = 0.2  # s between lock attempts
ZERO_SHA = "0" * 40
DRAFT_PREFIX = "drafts/"
# not even reference-transaction hooks run, nor a configured core.fsmonitor program
# (git runs it from update-index/write-tree/status/read-tree, even on a temporary index)
NO_HOOKS = ("-c", f"core.hooksPath={os.devnull}", "-c", "core.fsmonitor=false")
FALLBACK_IDENTITY = {  # used only when the repo/user has no identity configured
    "GIT_AUTHOR_NAME": "ramble2post",
    "GIT_AUTHOR_EMAIL": "ramble2post@localhost",
    "GIT_COMMITTER_NAME": "ramble2post",
    "GIT_COMMITTER_EMAIL": "ramble2post@localhost",
}


def open_repo(path: Path) -> git.Repo:
    """Open a non-bare git work tree, or raise ``BlogRepoError``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BlogRepoError(f"blog repo {path} does not exist", hint="pass --blog-repo DIR of your AstroPaper clone")
    if not path.is_dir():
        raise BlogRepoError(f"blog repo {path} is not a directory")
    try:
        repo = git.Repo(path)
    except git.InvalidGitRepositoryError as e:
        raise BlogRepoError(
            f"{path} is not a git repository", hint="run `git init` there, or point --blog-repo at your blog's clone"
        ) from e
    except git.NoSuchPathError as e:
        raise BlogRepoError(f"blog repo {path} does not exist") from e
    if repo.bare:
        raise BlogRepoError(
            f"{path} is a bare repository: drafts need a blog with a work tree",
            hint="clone it (`git clone <bare> blog`) and pass the clone as --blog-repo",
        )
    return repo


_DISK_FULL = ("no space left", "file too large", "disk quota exceeded", "sigxfsz")


def _git_error(what: str, repo: git.Repo, status, stderr: str) -> BlogRepoError:
    """One-line BlogRepoError for a failed git command; a full disk gets the same hint as our own writes."""
    detail = " ".join(stderr.split())[:300]
    if isinstance(status, int) and status < 0:  # killed by a signal (SIGXFSZ: file size limit)
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        detail = f"{detail}; " if detail else ""
        detail += f"killed by {name}" + (" (file size limit exceeded)" if name == "SIGXFSZ" else "")
    full = any(k in detail.lower() for k in _DISK_FULL)
    return BlogRepoError(
        f"{what} failed in {repo.working_tree_dir}: {detail or f'exit status {status}'}",
        hint="free disk space; finished stages are cached, rerun to resume" if full else None,
    )


def _git(repo: git.Repo, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run one git command (no shell); GitCommandError becomes BlogRepoError."""
    try:
        return repo.git.execute(["git", *NO_HOOKS, *args], env=dict(env) if env else None, strip_newline_in_stdout=True)
    except git.GitCommandError as e:
        stderr = (e.stderr or "").strip().replace("stderr: ", "").strip("'\n ")
        raise _git_error(f"git {args[0]}", repo, e.status, stderr) from e


def _hash_blob(repo: git.Repo, data: bytes) -> str:
    """Write ``data`` as a blob (no filters, no hooks) and return its sha."""
    import subprocess

    proc = subprocess.run(
        ["git", *NO_HOOKS, "hash-object", "-w", "--no-filters", "--stdin"],
        cwd=repo.working_tree_dir,
        input=data,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise _git_error("git hash-object", repo, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode().strip()


def base_sha(repo: git.Repo, branch: str) -> str:
    """Commit sha of ``refs/heads/<branch>`` (the blog's default branch); BlogRepoError if it has none."""
    sha = ref_sha(repo, f"refs/heads/{branch}")
    if sha is None:
        raise BlogRepoError(f"branch {branch!r} has no commit", hint="make a first commit in the blog repo")
    return sha


def ref_sha(repo: git.Repo, ref: str) -> str | None:
    """Commit sha of ``ref`` or None if it does not exist."""
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
    except git.GitCommandError:
        return None


def branch_exists(repo: git.Repo, name: str) -> bool:
    return ref_sha(repo, f"refs/heads/{name}") is not None


def default_branch(repo: git.Repo) -> str:
    """The branch drafts start from and publish merges into (rule in module doc)."""
    try:
        origin_head = repo.git.symbolic_ref("--quiet", "refs/remotes/origin/HEAD")
        name = origin_head.rsplit("refs/remotes/origin/", 1)[-1]
        if branch_exists(repo, name):
            return name
    except git.GitCommandError:
        pass
    for name in ("main", "master"):
        if branch_exists(repo, name):
            return name
    try:
        name = repo.git.config("--get", "init.defaultBranch")
        if name and branch_exists(repo, name):
            return name
    except git.GitCommandError:
        pass
    heads = [h.name for h in repo.heads if not h.name.startswith(DRAFT_PREFIX)]
    if len(heads) == 1:
        return heads[0]
    if not heads:
        raise BlogRepoError(
            f"blog repo {repo.working_tree_dir} has no commits on any branch",
            hint="commit your blog once (e.g. the AstroPaper template) before drafting into it",
        )
    raise BlogRepoError(
        f"cannot tell the default branch of {repo.working_tree_dir} (no main/master, branches: {', '.join(heads)})",
        hint="create `main`, or set `git config init.defaultBranch <name>` in the blog repo",
    )


def current_branch(repo: git.Repo) -> str | None:
    """Checked-out branch name of the main work tree, None when HEAD is detached."""
    try:
        ref = repo.git.symbolic_ref("--quiet", "HEAD")
    except git.GitCommandError:
        return None
    return ref.removeprefix("refs/heads/")


def path_exists(repo: git.Repo, commit: str, path: str) -> bool:
    """True if ``path`` (file or folder) exists in ``commit``'s tree."""
    out = repo.git.ls_tree(commit, "--", path)
    return bool(out.strip())


def read_blob(repo: git.Repo, commit: str, path: str) -> bytes | None:
    """Bytes of ``path`` at ``commit``, None if absent."""
    if not path_exists(repo, commit, path):
        return None
    import subprocess

    proc = subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:{path}"], cwd=repo.working_tree_dir, capture_output=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def list_files(repo: git.Repo, commit: str, folder: str) -> list[str]:
    """Paths of the files under ``folder`` at ``commit`` (recursive)."""
    out = repo.git.ls_tree("-r", "--name-only", commit, "--", folder)
    return [line for line in out.splitlines() if line]


def _identity_env(repo: git.Repo) -> dict[str, str]:
    """Fallback author/committer only for the parts git cannot find itself."""
    env: dict[str, str] = {}
    for kind in ("AUTHOR", "COMMITTER"):
        try:
            repo.git.var(f"GIT_{kind}_IDENT")
        except git.GitCommandError:
            env.update({k: v for k, v in FALLBACK_IDENTITY.items() if kind in k})
    return env


# ---------------------------------------------------------------- lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def repo_lock(repo: git.Repo, *, wait_s: float = LOCK_WAIT_S) -> Iterator[Path]:
    """Exclusive lock ``<git-common-dir>/ramble2post.lock`` (O_EXCL, holds pid@host).

    A lock left by a dead process on this host is stale and is taken over.
    Waits up to ``wait_s`` for a live holder, then raises ``BlogRepoError``.
    The lock file is removed on exit, whatever happened inside.
    """
    lock = Path(repo.common_dir) / LOCK_NAME
    host = socket.gethostname()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder and holder[1] == host and not _pid_alive(holder[0]):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()  # stale: its process is gone
                continue
            if time.monotonic() >= deadline:
                who = f"pid {holder[0]} on {holder[1]}" if holder else "another process"
                raise BlogRepoError(
                    f"blog repo {repo.working_tree_dir} is locked by another ramble2post run ({who})",
                    hint=f"wait for it to finish; if no run is active, delete {lock}",
                ) from None
            time.sleep(LOCK_POLL_S)
            continue
        try:
            os.write(fd, f"{os.getpid()}@{host}\n".encode())
        finally:
            os.close(fd)
        break
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _read_lock(lock: Path) -> tuple[int, str] | None:
    try:
        text = lock.read_text(encoding="utf-8").strip()
        pid, host = text.split("@", 1)
        return int(pid), host
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- commits


@dataclasses.dataclass(frozen=True)
class CommitResult:
    branch: str
    commit: str
    base: str  # commit the branch was created from
    base_branch: str


def build_tree(repo: git.Repo, base: str, files: Mapping[str, bytes], *, remove: tuple[str, ...] = ()) -> str:
    """Tree sha of ``base``'s tree plus ``files`` (path -> bytes), via a temp index."""
    with tempfile.TemporaryDirectory(prefix="ramble2post-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", base, env=env)
        for path in remove:
            _git(repo, "update-index", "--force-remove", "--", path, env=env)
        for path, data in files.items():
            blob = _hash_blob(repo, data)
            _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        return _git(repo, "write-tree", env=env)


def commit_tree(repo: git.Repo, tree: str, parents: list[str], message: str) -> str:
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    args += ["-m", message]
    return _git(repo, *args, env=_identity_env(repo))


def commit_new_branch(
    repo: git.Repo, *, branch: str, files: Mapping[str, bytes], message: str, base_branch: str | None = None
) -> CommitResult:
    """Commit ``files`` on a NEW branch created from the default branch.

    Refuses when the branch exists or any target path exists on the base.
    Caller holds ``repo_lock``. Touches no work tree, index or HEAD.
    """
    base_branch = base_branch or default_branch(repo)
    base = ref_sha(repo, f"refs/heads/{base_branch}")
    if base is None:
        raise BlogRepoError(f"default branch {base_branch!r} has no commit")
    if branch_exists(repo, branch):
        raise BlogRepoError(f"branch {branch} already exists in {repo.working_tree_dir}")
    for path in files:
        if path_exists(repo, base, path):
            raise BlogRepoError(
                f"{path} already exists on {base_branch}: refusing to overwrite it",
                hint="rename or remove that post, or use another title",
            )
    tree = build_tree(repo, base, files)
    commit = commit_tree(repo, tree, [base], message)
    # <zero> as old value: fails if the branch was created meanwhile
    _git(repo, "update-ref", "-m", "ramble2post: draft", f"refs/heads/{branch}", commit, ZERO_SHA)
    return CommitResult(branch=branch, commit=commit, base=base, base_branch=base_branch)


def worktree_is_clean(repo: git.Repo) -> bool:
    """No staged or unstaged changes to tracked files (untracked files ignored)."""
    return not _git(repo, "status", "--porcelain", "--untracked-files=no").strip()


def branch_checked_out_elsewhere(repo: git.Repo, branch: str) -> bool:
    """True if ``branch`` is checked out in a linked worktree (not the main one)."""
    out = repo.git.worktree("list", "--porcelain")
    blocks = [b for b in out.split("\n\n") if b.strip()]
    for block in blocks[1:]:
        if f"branch refs/heads/{branch}" in block.splitlines():
            return True
    return False
