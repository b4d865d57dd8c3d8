"""``ramble2post preview``: standalone page, three views, inlined images; checked in headless Chromium."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from test_blog_common import (
    CHROMIUM,
    HARDWARE,
    make_post,
    make_repo,
    make_result,
    make_transcript,
    run_chromium,
    selftest_output,
    stored,
)

from ramble2post.cli.main import cli
from ramble2post.publish.draft import create_draft
from ramble2post.publish.render import render_preview

# Injected by the test only: clicks each tab through the page's own handlers and
# records which section is visible and whether its images decoded.
SELFTEST = """
<script nonce="{nonce}">
window.addEventListener("load", function () {{
  var out = {{}};
  document.querySelectorAll("nav.views button").forEach(function (b) {{
    b.click();
    var visible = Array.from(document.querySelectorAll("main section"))
      .filter(function (s) {{ return getComputedStyle(s).display !== "none"; }})
      .map(function (s) {{ return s.dataset.view; }});
    var imgs = Array.from(document.querySelectorAll("main section:not([hidden]) img"));
    out[b.dataset.view] = {{
      visible: visible,
      selected: b.getAttribute("aria-selected"),
      text: document.querySelector("main section:not([hidden])").innerText.slice(0, 4000),
      images: imgs.map(function (i) {{ return {{ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}}; }})
    }};
  }});
  var pre = document.createElement("pre");
  pre.id = "selftest";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}});
</script>
"""


@pytest.fixture()
def drafted(tmp_path):
    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=stored(make_result(tmp_path)),
        blog_repo=root,
        hardware=HARDWARE,
    )
    return root, d


def test_preview_cli_writes_standalone_page(drafted, tmp_path):
    root, d = drafted
    out_file = tmp_path / "out" / "p.html"
    res = CliRunner().invoke(cli, ["preview", d.slug, "--blog-repo", str(root), "-o", str(out_file)])
    assert res.exit_code == 0, res.output
    page = out_file.read_text()
    assert page.count("data:image/png;base64,") == 1
    assert not re.search(r"""(src|href)=["'](?!data:|#)[^"']+""", page)  # nothing loaded from outside
    assert "Content-Security-Policy" in page
    for label in ("Human contribution", "AI assistance", "Ramble"):
        assert label in page
    # the transcript's hostile line is shown as text, never as markup
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r'href="file:', page)
    assert len(re.findall(r"<script", page)) == 1  # only the page's own tab script
    assert "ramble2post:measurements" not in page and "ramble2post:view" not in page  # markers hidden


def test_preview_drops_images_outside_the_repo_tree():
    md = "---\ntitle: t\n---\n![a](../../../../etc/passwd.png)\n![b](/abs.png)\n![c](https://x.test/y.png)\n"
    page = render_preview(markdown=md, post_path="src/data/blog/t.md", read_file=lambda p: b"should not be read")
    assert 'src=""' in page and "data:image" not in page
    assert page.count("data-missing=") == 3


def test_unknown_slug_is_a_clear_error(drafted):
    root, _ = drafted
    res = CliRunner().invoke(cli, ["preview", "no-such-post", "--blog-repo", str(root)])
    assert res.exit_code == 5 and "no draft or post named" in res.output


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_preview_in_headless_chromium_switches_views_and_loads_images(drafted, tmp_path):
    root, d = drafted
    page_file = tmp_path / "preview.html"
    res = CliRunner().invoke(cli, ["preview", d.slug, "--blog-repo", str(root), "-o", str(page_file)])
    assert res.exit_code == 0, res.output
    page = page_file.read_text()
    nonce = re.search(r'<script nonce="([^"]+)"', page).group(1)
    page_file.write_text(page.replace("</body>", SELFTEST.format(nonce=nonce) + "</body>"))
    proc = run_chromium(tmp_path, "--dump-dom", page_file.as_uri(), budget_ms=5000)
    views = selftest_output(proc)
    assert set(views) == {"human", "ai", "ramble"}
    for key, v in views.items():
        assert v["visible"] == [key] and v["selected"] == "true", (key, v)
    assert "So the idea is that batching makes decoding nearly free" in views["human"]["text"]
    assert "100x speedup" not in views["human"]["text"]
    assert "Measured on this machine" in views["ai"]["text"] and "AI assistance" in views["ai"]["text"]
    assert "<script>alert(1)</script>" in views["ramble"]["text"]  # shown as inert text
    assert views["ai"]["images"] and all(i["ok"] and i["w"] == 8 for i in views["ai"]["images"])
    assert views["human"]["images"] == [] and views["ramble"]["images"] == []


def test_without_node_preview_of_an_astro_blog_writes_the_standalone_page(tmp_path, monkeypatch):
    from ramble2post.publish import site
    from ramble2post.publish.blog import create_blog_repo

    root = tmp_path / "blog"
    create_blog_repo(root)  # the default blog: an Astro site
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=stored(make_result(tmp_path)),
        blog_repo=root,
        hardware=HARDWARE,
    )
    monkeypatch.setattr(site, "node_tools", lambda: None)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["preview", d.slug, "--blog-repo", str(root)])
    assert res.exit_code == 0, res.output
    assert "No Astro build (node and npm are not installed)" in res.output
    page = (tmp_path / f"{d.slug}.preview.html").read_text()
    assert "r2p-view" not in page and "<details" not in page  # the site's wrappers are not shown as text
    assert "Human contribution" in page and page.count("data:image/png;base64,") == 1
