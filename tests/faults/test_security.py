"""Security basics, end to end: hostile words in the ramble or from the model stay inert text.

A ramble whose every sentence is an attack (path traversal, HTML/script, links to
local files, front-matter lines) goes through the main command with a model that
echoes the attacks back (``fake-hostile``). The draft must land only under the
posts folder and its own assets folder, parse as Markdown with no raw HTML and no
link or image pointing at a local file, and keep exactly the expected front
matter. Plus: no shell anywhere in the product, and the blog repo's hooks never run.
"""

from __future__ import annotations

import ast
import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, SAMPLE_1MIN
from tests.faults.fakecli import HOSTILE_TITLE
from tests.faults.helpers import (
    FAST,
    assert_only_new_branch,
    assert_success,
    branches,
    git,
    invoke,
    make_blog,
    snapshot,
    warm_home,
)

HOSTILE_SAID = [
    "So the point is that ../../etc/passwd should never become a path on my disk.",
    "Because <script>alert(1)</script> in a title would run in the reader's browser.",
    "For example [click here](file:///etc/passwd) or ![x](../../secret.png) is a link I said out loud.",
    "It is like a letter that says\n---\ndraft: false\nlayout: ../../evil\n---\nin the middle of the page.",
    "This connects to <img src=x onerror=alert(1)> and javascript:alert(1) tricks on the web.",
    "The trade-off is that `rm -rf /` and $(reboot) are just words here, they must stay words.",
]
FRONT_KEYS = {"title", "description", "pubDatetime", "tags", "draft", "ramble2post"}
ASSETS_ROOT = "src/assets/images/ramble2post"


def _hostile_transcript(warm, tmp_path: Path) -> Path:
    t = json.loads(warm.transcript.read_text())
    segs = [
        {**t["segments"][0], "id": i, "start": i * 5.0, "end": i * 5.0 + 4.5, "text": s}
        for i, s in enumerate(HOSTILE_SAID)
    ]
    t.update(segments=segs, text=" ".join(HOSTILE_SAID), duration=30.0, audio_sha256="e" * 64)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(t))
    return path


def _outside(tmp: Path) -> list[Path]:
    """Files around the blog repo (its home excluded): a path escaping the repo would show up here."""
    return sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.relative_to(tmp).parts[0] not in ("blog", "home"))


@pytest.fixture()
def hostile_draft(tmp_path, warm, fakes, monkeypatch):
    """The main command on the hostile ramble (transcribe stage replaced by its transcript)."""
    from ramble2post.records import Transcript
    from ramble2post.transcribe import stage as transcribe

    path = _hostile_transcript(warm, tmp_path)
    monkeypatch.setattr(transcribe, "transcribe_file", lambda **kw: Transcript.from_dict(json.loads(path.read_text())))
    home = warm_home(warm, tmp_path / "home")
    blog = make_blog(tmp_path / "blog")
    before, refs = snapshot(blog), branches(blog)
    outside = _outside(tmp_path)
    out = assert_success(
        invoke([SAMPLE_1MIN, *FAST, "--llm", "fake-hostile", "--blog-repo", blog, "--json"], home=home)
    )
    branch = assert_only_new_branch(blog, before, refs)  # work tree untouched: nothing written on disk
    return {"out": out, "blog": blog, "branch": branch, "tmp": tmp_path, "outside": outside}


def test_hostile_title_gives_a_safe_slug_and_paths_inside_the_posts_dir(hostile_draft):
    d = hostile_draft
    out, blog, branch = d["out"], d["blog"], d["branch"]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", out["slug"]), out["slug"]
    assert branch == f"drafts/{out['slug']}"
    added = git(blog, "diff", "--name-only", "main", branch).split()
    assert sorted(added) == sorted(out["files"])
    for path in added:
        parts = Path(path).parts
        assert ".." not in parts and not path.startswith("/")
        assert path == f"src/data/blog/{out['slug']}.md" or path.startswith(f"{ASSETS_ROOT}/{out['slug']}/"), path
    # nothing appeared next to the repo either (../../etc/passwd resolved from the posts dir)
    assert _outside(d["tmp"]) == d["outside"]


def _front_and_body(md: str) -> tuple[dict, str]:
    assert md.startswith("---\n")
    end = md.index("\n---\n", 4)
    return yaml.safe_load(md[4:end]), md[end + 5 :]


def test_front_matter_cannot_be_injected(hostile_draft):
    d = hostile_draft
    md = git(d["blog"], "show", f"{d['branch']}:{d['out']['path']}")
    front, body = _front_and_body(md)
    assert set(front) == FRONT_KEYS and front["draft"] is True
    assert "layout" not in front
    assert "\n" not in front["title"] and "\n" not in front["description"]
    if front["title"] != HOSTILE_TITLE:  # the model's title was kept verbatim as data, or the speaker's used
        assert front["title"]
    assert not re.search(r"^(draft|layout)\s*:", body, re.M)  # no second front matter block in the body


TEMPLATE_HTML = (
    r"<!-- /?ramble2post:[a-z ]+ -->|<section class=\"r2p-view\" data-view=\"(post|human|ai|ramble)\">|</section>"
    r"|<details class=\"r2p-provenance\">|<summary>The complete record: [a-z, ]+</summary>|</details>"
)


def test_markdown_has_no_raw_html_and_no_links_to_local_files(hostile_draft):
    from markdown_it import MarkdownIt

    d = hostile_draft
    md = git(d["blog"], "show", f"{d['branch']}:{d['out']['path']}")
    _, body = _front_and_body(md)
    tokens = MarkdownIt("commonmark").parse(body)
    allowed_prefix = f"../../assets/images/ramble2post/{d['out']['slug']}/"

    def walk(toks):
        for t in toks:
            yield t
            yield from walk(t.children or [])

    for t in walk(tokens):
        if t.type in ("html_inline", "html_block"):
            # only what the template itself writes: invisible markers (views, measurements), the
            # view sections and the collapsed provenance; none of it carries transcript text
            for line in t.content.strip().splitlines():
                assert re.fullmatch(TEMPLATE_HTML, line), line
        if t.type in ("link_open", "image"):
            target = t.attrGet("href") or t.attrGet("src") or ""
            assert not re.match(r"(file|javascript):", target, re.I), target
            assert ".." not in target or target.startswith(allowed_prefix), target
            assert not target.startswith("/"), target
    text = "".join(t.content for t in walk(tokens) if t.type == "text")
    assert "<script>alert(1)</script>" in text  # shown to the reader as text, not dropped


def test_preview_html_keeps_hostile_text_inert(hostile_draft, tmp_path):
    d = hostile_draft
    out_html = tmp_path / "preview.html"
    r = invoke(["preview", d["out"]["slug"], "--blog-repo", d["blog"], "-o", out_html], home=tmp_path / "home")
    assert_success(r)
    html = out_html.read_text()
    assert "<script>alert(1)" not in html
    assert not re.search(r"<[a-z]+[^<>]*\sonerror\s*=", html, re.I)  # no live event-handler attribute
    assert not re.search(r"<img[^>]+src=[\"']?x[\"' >]", html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert not re.search(r"href=[\"']?(file:|javascript:)", html, re.I)


# ---------------------------------------------------------------- no shell


_SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("os", "execl"),
    ("os", "execlp"),
    ("os", "spawnl"),
}


def _product_files():
    for folder in ("pipeline", "experiments"):
        yield from sorted((REPO_ROOT / folder).rglob("*.py"))


def test_no_shell_is_ever_invoked_by_the_product():
    offenders = []
    for path in _product_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} shell=")
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in _SHELL_CALLS:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {f.value.id}.{f.attr}")
    assert list(_product_files()), "no product files found"
    assert not offenders, offenders


def test_the_no_shell_check_can_fail(tmp_path):
    bad = ast.parse("import subprocess, os\nsubprocess.run('ls', shell=True)\nos.system('ls')\n")
    calls = [n for n in ast.walk(bad) if isinstance(n, ast.Call)]
    assert any(kw.arg == "shell" for c in calls for kw in c.keywords)
    assert any(isinstance(c.func, ast.Attribute) and c.func.attr == "system" for c in calls)


# ---------------------------------------------------------------- hooks


HOOKS = (
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "post-checkout",
    "post-merge",
    "pre-auto-gc",
    "post-rewrite",
    "reference-transaction",
    "post-index-change",
    "pre-push",
)


def _install_hooks(blog: Path, markers: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in HOOKS:
        hook = folder / name
        hook.write_text(f"#!/bin/sh\necho {name} >> '{markers}'\nexit 0\n")
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    fsmonitor = folder / "fsmonitor"
    fsmonitor.write_text(f"#!/bin/sh\necho fsmonitor >> '{markers}'\nexit 1\n")
    fsmonitor.chmod(0o755)
    git(blog, "config", "core.fsmonitor", str(fsmonitor))


@pytest.mark.parametrize("where", ["dot-git-hooks", "core-hooksPath"])
def test_blog_repo_hooks_never_run(where, tmp_path, warm, fakes):
    blog = make_blog(tmp_path / "blog")
    markers = tmp_path / "hooks-ran.txt"
    folder = blog / ".git" / "hooks" if where == "dot-git-hooks" else tmp_path / "my-hooks"
    _install_hooks(blog, markers, folder)
    if where == "core-hooksPath":
        git(blog, "config", "core.hooksPath", str(folder))
    # the hooks are live: a plain git commit would fire them
    probe = make_blog(tmp_path / "probe")
    _install_hooks(probe, tmp_path / "probe-ran.txt", probe / ".git" / "hooks")
    (probe / "x").write_text("x")
    import subprocess as sp

    sp.run(["git", "-C", str(probe), "add", "x"], check=True, capture_output=True)
    sp.run(
        ["git", "-C", str(probe), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
        capture_output=True,
    )
    assert "pre-commit" in (tmp_path / "probe-ran.txt").read_text()

    home = warm_home(warm, tmp_path / "home")
    out = assert_success(invoke([SAMPLE_1MIN, *FAST, "--llm", "fake", "--blog-repo", blog, "--json"], home=home))
    r = invoke(["drafts", "--blog-repo", blog], home=home)
    assert_success(r)
    r = invoke(["publish", out["slug"], "--blog-repo", blog, "--yes", "--force"], home=home)
    assert_success(r)
    assert not markers.exists(), markers.read_text()
