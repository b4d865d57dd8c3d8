"""Fault-suite helpers (fixtures in conftest.py): run the real CLI in a subprocess, snapshot a blog repo, build test repos.

Every case runs ``ramble2post`` as the user would (``python -m pipeline``) or
through ``tests.faults.fakecli`` (the same CLI with fakes registered at the LLM,
experiment and stage boundaries, see that module). One session home holds the
converted tiny.en model and the 1-minute sample's cached transcript, so most
cases never run Whisper.

``snapshot(repo)`` records everything a failed run must leave byte-for-byte as
it was: every ref and its sha, HEAD, the index bytes, the config, every
work-tree file's hash, ``git status --porcelain``, the worktree list and any
lock file under ``.git``. Git commands here run with hooks and fsmonitor off so
that taking a snapshot cannot itself change the repo.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import REPO_ROOT

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Blog Owner",
    "GIT_AUTHOR_EMAIL": "owner@example.com",
    "GIT_COMMITTER_NAME": "Blog Owner",
    "GIT_COMMITTER_EMAIL": "owner@example.com",
}
SAFE_GIT = ("-c", f"core.hooksPath={os.devnull}", "-c", "core.fsmonitor=false")
CLI_TIMEOUT_S = 300  # s; a hung run fails the test instead of the whole suite
MODEL = "tiny.en"
FAST = ("-m", MODEL, "--device", "cpu", "--experiments", "none")  # flags of every main-command run here
LOCK_NAME = "ramble2post.lock"

# Every outcome the checks below accepted in this session, one dict each: the fault matrix
# (case -> exit code -> message -> repo unchanged -> resumed) that conftest.py prints at the end.
LEDGER: list[dict] = []


def _current_case() -> str:
    """The running test's id, e.g. ``test_audio_faults.py::test_bad_audio[empty]``."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "?")
    return current.rsplit(" (", 1)[0].rsplit("/", 1)[-1]


def record(**fields) -> None:
    """Add one checked outcome of the running test to ``LEDGER``."""
    LEDGER.append({"case": _current_case(), **fields})


# ---------------------------------------------------------------- git / repos


def git(repo: Path, *args: str, check: bool = True, env: dict | None = None) -> str:
    proc = subprocess.run(
        ["git", *SAFE_GIT, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, **(env or {})},
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout


def make_blog(root: Path, *, posts_dir: str = "src/data/blog") -> Path:
    """An AstroPaper-v5-like blog repo: one commit on main with a post and a config file."""
    (root / posts_dir).mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "package.json").write_text('{"name": "blog"}\n')
    (root / "astro.config.mjs").write_text("export default {};\n")
    (root / posts_dir / "hello.md").write_text(
        "---\ntitle: Hello\ndescription: hi\npubDatetime: 2026-01-01T00:00:00Z\n---\nHi.\n"
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def dirty(root: Path) -> Path:
    """Staged, unstaged and untracked edits on a checked-out feature branch."""
    git(root, "checkout", "-q", "-b", "feature/wip")
    (root / "src/data/blog/wip.md").write_text("---\ntitle: WIP\n---\nstaged\n")
    git(root, "add", "src/data/blog/wip.md")
    (root / "src/data/blog/hello.md").write_text("edited but not staged\n")
    (root / "notes.txt").write_text("untracked\n")
    return root


def _git_dir(root: Path) -> Path:
    return root if (root / "HEAD").is_file() and not (root / ".git").exists() else root / ".git"


def snapshot(root: Path) -> dict:
    """Everything a failed run must not change (see module docstring)."""
    gd = _git_dir(root)
    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (rel.parts and rel.parts[0] == ".git") or gd == root or not p.is_file():
            continue
        files[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    locks = sorted(p.relative_to(gd).as_posix() for p in gd.rglob("*.lock")) if gd.exists() else []
    if (gd / LOCK_NAME).exists():
        locks.append(LOCK_NAME)
    bare = gd == root
    return {
        "refs": git(root, "for-each-ref", "--format=%(refname) %(objectname)") if gd.exists() else "",
        "HEAD": (gd / "HEAD").read_bytes() if (gd / "HEAD").exists() else b"",
        "index": (gd / "index").read_bytes() if (gd / "index").exists() else b"",
        "config": (gd / "config").read_bytes() if (gd / "config").exists() else b"",
        "status": ""
        if bare or not gd.exists()
        else git(root, "status", "--porcelain", "--untracked-files=all", "--ignored"),
        "worktrees": git(root, "worktree", "list", "--porcelain") if gd.exists() else "",
        "locks": locks,
        "files": files,
    }


def branches(root: Path) -> dict[str, str]:
    out = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def assert_unchanged(root: Path, before: dict) -> None:
    after = snapshot(root)
    for key in before:
        assert after[key] == before[key], f"blog repo changed: {key}"
    record(unchanged=True)


def assert_only_new_branch(root: Path, before: dict, before_branches: dict[str, str]) -> str:
    """After a successful run: everything as before except exactly one new drafts/ branch (returned)."""
    after = snapshot(root)
    for key in ("HEAD", "index", "config", "status", "worktrees", "locks", "files"):
        assert after[key] == before[key], f"blog repo changed: {key}"
    now = branches(root)
    assert {k: v for k, v in now.items() if k in before_branches} == before_branches  # old refs untouched
    new = sorted(set(now) - set(before_branches))
    assert len(new) == 1 and new[0].startswith("refs/heads/drafts/"), new
    branch = new[0].removeprefix("refs/heads/")
    assert git(root, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert git(root, "rev-parse", f"{branch}^").strip() == before_branches["refs/heads/main"]
    record(new_branch=branch)
    return branch


def fsck_ok(root: Path) -> None:
    proc = subprocess.run(
        ["git", *SAFE_GIT, "-C", str(root), "fsck", "--strict", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- running the CLI


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAMBLE2POST_", "FAKE_"))}
    env.update(
        {
            "RAMBLE2POST_HOME": str(home),
            "RAMBLE2POST_OFFLINE": "1",
            "RAMBLE2POST_LLM_THREADS": "1",
            # the 135M model: these runs test files, git, signals and errors, not the draft's quality
            # (the default 1.5B model has its own tests: test_structure_quality, the injection tests)
            "RAMBLE2POST_LLM": "smollm2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _entry(fake: bool) -> list[str]:
    return [sys.executable, "-m", "tests.faults.fakecli" if fake else "ramble2post"]


def _default_signals() -> None:
    """What a terminal gives a program: SIGINT/SIGTERM at their defaults (CI runners may ignore SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_cli(
    args, *, home: Path, fake: bool = True, env: dict | None = None, preexec=None, timeout: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_entry(fake), *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=cli_env(home, **(env or {})),
        timeout=timeout,
        preexec_fn=preexec or _default_signals,
    )


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("Error:")]


def assert_clean_failure(result, *, contains: str = "", hint: bool = True, code: int | None = None) -> str:
    """Exit != 0, exactly one ``Error:`` line (with ``contains``), a ``Hint:``, no traceback. Returns the line."""
    out = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode != 0, out
    if code is not None:
        assert result.returncode == code, out
    assert "Traceback" not in result.stderr, out
    errors = error_lines(result.stderr)
    assert len(errors) == 1, out
    assert contains in errors[0], out
    if hint:
        assert any(ln.startswith("Hint:") for ln in result.stderr.splitlines()), out
    assert not result.stdout.strip() or "Error" not in result.stdout, out
    record(exit=result.returncode, message=errors[0])
    return errors[0]


def assert_success(result) -> dict | None:
    out = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, out
    assert "Traceback" not in result.stderr and not error_lines(result.stderr), out
    record(exit=0, resumed="cached: not transcribed again" in result.stderr)
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None


class Running:
    """A CLI run in the background whose stderr is read line by line (to signal it mid-stage)."""

    def __init__(self, args, *, home: Path, fake: bool = True, env: dict | None = None):
        self.proc = subprocess.Popen(
            [*_entry(fake), *map(str, args)],
            cwd=REPO_ROOT,
            env=cli_env(home, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_signals,
        )
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self.lines.append(None)  # EOF marker
            self._cv.notify_all()

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if line is None:
                        raise AssertionError(f"run ended before {pattern!r}:\n" + self.stderr)
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    self.proc.kill()
                    raise AssertionError(f"no {pattern!r} within {timeout} s:\n" + self.stderr)
                self._cv.wait(left)

    def finish(self, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
        try:
            out = self.proc.stdout.read() if self.proc.stdout else ""
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(timeout=10)
        return subprocess.CompletedProcess(self.proc.args, rc, out, self.stderr)

    @property
    def stderr(self) -> str:
        return "\n".join(ln for ln in self.lines if ln is not None) + "\n"


# ---------------------------------------------------------------- homes


@dataclasses.dataclass(frozen=True)
class Warm:
    """A home with tiny.en converted and the 1-minute sample's transcript cached."""

    home: Path
    transcript: Path  # the sample's transcript JSON (as `ramble2post transcribe -o` wrote it)


def cold_home(warm: Warm, dest: Path) -> Path:
    """A home sharing the converted model (hard links) but with no cached transcript or post."""
    models = warm.home / "cache" / "models"
    shutil.copytree(models, dest / "cache" / "models", copy_function=os.link)
    return dest


def warm_home(warm: Warm, dest: Path) -> Path:
    """A private copy of the warm home (model, transcript cache; no blog): isolation for cases that cache posts."""
    shutil.copytree(
        warm.home / "cache", dest / "cache", copy_function=os.link, ignore=shutil.ignore_patterns("structure")
    )
    return dest


def cache_files(home: Path, stage: str) -> dict[str, bytes]:
    root = home / "cache" / stage
    return {p.name: p.read_bytes() for p in sorted(root.glob("*"))} if root.exists() else {}


def no_temp_leftovers(home: Path) -> None:
    """No half-written cache entry: every file is complete JSON, no temp files remain."""
    for p in (home / "cache").rglob("*"):
        if p.is_file():
            assert not p.name.endswith((".tmp", ".partial")), f"temp file left: {p}"
            if p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))


def invoke(args, *, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI in this process (CliRunner): for cases that fail or finish in a second."""
    from click.testing import CliRunner

    from ramble2post.cli.main import cli

    full = {
        "RAMBLE2POST_HOME": str(home),
        "RAMBLE2POST_OFFLINE": "1",
        "RAMBLE2POST_LLM_THREADS": "1",
        "RAMBLE2POST_DEBUG": None,
        "RAMBLE2POST_BLOG_REPO": None,
        **(env or {}),
    }
    r = CliRunner().invoke(cli, [str(a) for a in args], env=full, catch_exceptions=False)
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)
