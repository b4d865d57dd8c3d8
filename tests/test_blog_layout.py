"""Blog repo detection, default repo creation and slugs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_blog_common import HARDWARE, branches, git, make_post, make_repo, make_transcript

from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops
from ramble2post.publish.blog import default_blog_path, detect_layout, ensure_default_blog, resolve_blog_repo
from ramble2post.publish.draft import create_draft
from ramble2post.publish.slug import MAX_SLUG_LEN, is_valid_slug, slugify, unique_slug


@pytest.mark.parametrize(
    "posts_dir,layout",
    [("src/data/blog", "astropaper-v5"), ("src/content/blog", "astropaper-v4"), ("src/content/posts", "astropaper-v6")],
)
def test_each_astropaper_layout_gets_its_draft(tmp_path, posts_dir, layout):
    root = make_repo(tmp_path / "blog", posts_dir=posts_dir)
    d = create_draft(
        post=make_post(), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
    )
    assert d.layout == layout
    assert d.path == f"{posts_dir}/{d.slug}.md"
    assert git(root, "cat-file", "-t", f"{d.branch}:{d.path}").strip() == "blob"
    text = git(root, "show", f"{d.branch}:{d.path}")
    assert text.startswith("---\ntitle: Batching makes decoding nearly free\n")


def test_unknown_layout_is_refused_unless_posts_dir(tmp_path):
    root = make_repo(tmp_path / "blog", posts_dir="content/articles")
    with pytest.raises(BlogRepoError, match="does not look like an AstroPaper blog") as e:
        create_draft(
            post=make_post(), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
        )
    assert "--posts-dir" in e.value.hint
    assert branches(root) == {"refs/heads/main"}
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=[],
        blog_repo=root,
        posts_dir="content/articles",
        hardware=HARDWARE,
    )
    assert d.path.startswith("content/articles/") and d.layout == "custom"


@pytest.mark.parametrize("bad", ["../outside", "/etc", "a/../../b", ".git/hooks", "."])
def test_posts_dir_cannot_escape_the_repo(tmp_path, bad):
    root = make_repo(tmp_path / "blog")
    repo = gitops.open_repo(root)
    with pytest.raises(BlogRepoError, match="inside the blog repo"):
        detect_layout(repo, base="main", posts_dir=bad)


def test_layout_is_read_from_default_branch_not_checkout(tmp_path):
    root = make_repo(tmp_path / "blog", posts_dir="src/content/blog")
    git(root, "checkout", "-q", "-b", "experiment")
    git(root, "mv", "src/content/blog", "src/content/posts")
    git(root, "commit", "-q", "-m", "move")
    repo = gitops.open_repo(root)
    assert detect_layout(repo, base="main").name == "astropaper-v4"


def test_not_a_git_repo_and_bare_repo_are_refused(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BlogRepoError, match="not a git repository"):
        gitops.open_repo(plain)
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    with pytest.raises(BlogRepoError, match="bare repository"):
        gitops.open_repo(bare)
    with pytest.raises(BlogRepoError, match="does not exist"):
        gitops.open_repo(tmp_path / "missing")


def test_detached_head_is_fine_when_a_default_branch_exists(tmp_path):
    root = make_repo(tmp_path / "blog")
    git(root, "checkout", "-q", "--detach", "HEAD")
    d = create_draft(
        post=make_post(), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
    )
    assert d.base_branch == "main"
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"


def test_default_branch_rule(tmp_path):
    root = make_repo(tmp_path / "blog", branch="trunk")
    repo = gitops.open_repo(root)
    assert gitops.default_branch(repo) == "trunk"  # the only branch
    git(root, "branch", "other")
    with pytest.raises(BlogRepoError, match="cannot tell the default branch"):
        gitops.default_branch(repo)
    git(root, "branch", "master")
    assert gitops.default_branch(repo) == "master"
    git(root, "update-ref", "refs/remotes/origin/other", "trunk")
    git(root, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/other")
    assert gitops.default_branch(repo) == "other"


def test_default_blog_is_created_once_with_v5_layout(monkeypatch, tmp_path):
    monkeypatch.setenv("RAMBLE2POST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAMBLE2POST_BLOG_REPO", raising=False)
    said = []
    path = resolve_blog_repo(None, say=said.append)
    assert path == default_blog_path() == tmp_path / "home" / "blog"
    assert any("created a local AstroPaper-style blog" in s for s in said)
    assert (path / "src/data/blog/hello-world.md").is_file()
    assert git(path, "status", "--porcelain") == ""  # checkout matches the commit
    assert git(path, "log", "--oneline").count("\n") == 1
    said.clear()
    assert ensure_default_blog(say=said.append) == path and said == []
    d = create_draft(
        post=make_post(), transcript=make_transcript(), experiment_results=[], blog_repo=None, hardware=HARDWARE
    )
    assert d.repo == path and d.layout == "astropaper-v5"


def test_configured_blog_repo_wins_over_default(monkeypatch, tmp_path):
    monkeypatch.setenv("RAMBLE2POST_HOME", str(tmp_path / "home"))
    mine = make_repo(tmp_path / "mine")
    monkeypatch.setenv("RAMBLE2POST_BLOG_REPO", str(mine))
    assert resolve_blog_repo(None) == mine
    flag = tmp_path / "flag"
    assert resolve_blog_repo(flag) == flag
    monkeypatch.delenv("RAMBLE2POST_BLOG_REPO")
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / "config.toml").write_text(f'blog_repo = "{mine}"\n')
    assert resolve_blog_repo(None) == mine
    assert not (tmp_path / "home" / "blog").exists()


@pytest.mark.parametrize(
    "title",
    [
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "/abs/path",
        "..",
        "",
        "   ",
        "ïñ†ér·nåtiøn",
        "a" * 500,
        "drafts/../../x",
        "name.lock",
        "CON",
        "-rf --",
        "\x00\n\t",
    ],
)
def test_slug_is_path_and_ref_safe(title):
    s = slugify(title)
    assert s and is_valid_slug(s)
    assert len(s) <= MAX_SLUG_LEN
    assert "/" not in s and ".." not in s and not s.startswith("-")
    assert s == s.lower() and s.isascii()
    assert os.path.basename(s) == s


def test_hostile_titles_give_expected_slugs():
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("<script>alert(1)</script>") == "script-alert-1-script"
    assert slugify("") == "ramble"
    assert slugify("Café au lait: KV-cache!") == "cafe-au-lait-kv-cache"


def test_unique_slug_appends_numbers():
    taken = {"kv-cache", "kv-cache-2"}
    assert unique_slug("KV cache", exists=taken.__contains__) == "kv-cache-3"
    assert unique_slug("other", exists=taken.__contains__) == "other"


def test_second_ramble_on_same_topic_gets_new_slug(tmp_path):
    root = make_repo(tmp_path / "blog")
    a = create_draft(
        post=make_post(), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
    )
    b = create_draft(
        post=make_post(), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
    )
    assert b.slug == a.slug + "-2" and b.branch == f"drafts/{a.slug}-2"
    # a published post with that name also counts as taken
    (root / "src/data/blog/hello-world.md").write_text("x\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "post")
    c = create_draft(
        post=make_post("Hello, World!"),
        transcript=make_transcript(),
        experiment_results=[],
        blog_repo=root,
        hardware=HARDWARE,
    )
    assert c.slug == "hello-world-2"


def test_empty_repo_is_refused(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q")
    with pytest.raises(BlogRepoError, match="no commits"):
        create_draft(
            post=make_post(),
            transcript=make_transcript(),
            experiment_results=[],
            blog_repo=Path(root),
            hardware=HARDWARE,
        )
