"""The default blog as a real Astro site: a draft with experiment results builds with `astro build`,
shows its four views without JavaScript, fits a 1200-px window, and keeps transcript text inert.
Also: a site shaped like AstroPaper (its content schema and draft filter) builds a draft via `preview`.

Needs node, npm (and chromium for the browser test); skips cleanly without them. npm
dependencies are installed once into .cache/node-modules/<lockfile hash> (gitignored) and
reused by every build here and by later sessions (``python -m ramble2post.publish.site install``
fills it in CI before the tests).
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_blog_common import CHROMIUM, HARDWARE, git, item, make_transcript, post_json, run_chromium, selftest_output

from ramble2post.cli.main import cli
from ramble2post.experiments.base import get, load_result
from ramble2post.experiments.pipeline_hook import RunOutcome
from ramble2post.publish import site
from ramble2post.publish.blog import SKELETON_DIR, create_blog_repo
from ramble2post.publish.draft import create_draft
from ramble2post.records import Segment
from ramble2post.structure.schema import Post

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "tests" / "data" / "results"
MAX_HEIGHT_PX = 2800  # the post (every view but the Ramble) at 1200 px wide; claims with verdicts add ~250 px
VIEWS = ("post", "human", "ai", "ramble")
LABELS = ("Post", "Human contribution", "AI assistance", "Ramble")
HOSTILE_TITLE = "KV <b>cache</b> <img src=x onerror=alert(1)>"
_ESCAPED_SCRIPT = re.compile(r"(&lt;|&#x3C;|&#60;)script(&gt;|>)alert\(1\)(&lt;|&#x3C;|&#60;)/script")
KV_CLAIM = "The KV cache grows with every token you generate until it fills up the memory."

pytestmark = pytest.mark.skipif(site.node_tools() is None, reason="node and npm not installed")


@pytest.fixture(scope="session")
def node_cache():
    """One npm install per lockfile for the whole session (and later ones): .cache/node-modules."""
    old = os.environ.get(site.NODE_CACHE_ENV)
    os.environ[site.NODE_CACHE_ENV] = os.environ.get(
        "RAMBLE2POST_TEST_NODE_CACHE", str(REPO / ".cache" / "node-modules")
    )
    yield Path(os.environ[site.NODE_CACHE_ENV])
    if old is None:
        os.environ.pop(site.NODE_CACHE_ENV, None)
    else:
        os.environ[site.NODE_CACHE_ENV] = old


def _result_with_plot(name: str, tmp: Path) -> RunOutcome:
    """A stored real run of ``name`` (tests/data/results), its plot redrawn from it."""
    res = load_result(RESULTS / f"{name}.json")
    out = tmp / name
    out.mkdir(parents=True)
    plots = get(name).plot([res])
    for fname, data in plots.items():
        (out / fname).write_bytes(data)
    return RunOutcome(name, "ok", result=dataclasses.replace(res, plots=tuple(plots)), result_dir=str(out))


def _kv_transcript_and_post():
    t = make_transcript()
    seg = Segment(id=4, start=20.0, end=24.5, text=KV_CLAIM)
    t = type(t)(**{**t.__dict__, "segments": (*t.segments, seg), "duration": 25.0})
    post = post_json(title=HOSTILE_TITLE)
    post["layers"]["reason"].append(item(KV_CLAIM, sources=(4,)))
    post["sentences"].append({"id": 5, "text": KV_CLAIM, "segments": [4], "start": 20.0, "end": 24.5})
    return t, Post.from_dict(post)


@pytest.fixture(scope="module", params=["kv-cache-growth", "batching-speedup"])
def built(request, tmp_path_factory, node_cache):
    """A default blog with one draft carrying a real result, built through `ramble2post preview`."""
    tmp = tmp_path_factory.mktemp(request.param)
    root = tmp / "blog"
    create_blog_repo(root)
    transcript, post = _kv_transcript_and_post()
    d = create_draft(
        post=post,
        transcript=transcript,
        experiment_results=[_result_with_plot(request.param, tmp)],
        blog_repo=root,
        hardware=HARDWARE,
    )
    before = git(root, "status", "--porcelain", "--untracked-files=all")
    res = CliRunner().invoke(cli, ["preview", d.slug, "--blog-repo", str(root)], env={"RAMBLE2POST_HOME": str(tmp)})
    assert res.exit_code == 0, res.output
    page = Path(re.search(r"^Page: (.+)$", res.output, re.M).group(1))
    assert git(root, "status", "--porcelain", "--untracked-files=all") == before  # the checkout is untouched
    assert not (root / "node_modules").exists() and not (root / "dist").exists()
    return {"name": request.param, "draft": d, "page": page, "dist": page.parents[2], "output": res.output}


def test_built_page_has_every_view_the_plot_and_the_summary_table(built):
    page = built["page"].read_text()
    assert built["page"].relative_to(built["dist"]).as_posix() == f"posts/{built['draft'].slug}/index.html"
    for key, label in zip(VIEWS, LABELS):
        assert f'data-view="{key}"' in page and f">{label}</label>" in page, key
    assert "Human contribution</h2>" in page and "AI assistance</h2>" in page and "Ramble</h2>" in page
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert imgs and all(src.startswith("/_astro/") and src.endswith(".webp") for src in imgs), imgs  # sharp
    assert all((built["dist"] / src.lstrip("/")).is_file() for src in imgs)
    alt = re.search(r'<img [^>]*alt="([^"]+)"', page).group(1)
    assert not alt.endswith(".png") and len(alt) > 80  # the finding, not a file name
    tables = re.findall(r"<table>.*?</table>", page, re.S)
    assert len(tables) == 1
    rows = re.findall(r"<tr>", tables[0])
    assert 2 <= len(rows) <= 13  # header + at most 12 rows
    assert len(re.findall(r"<th", tables[0])) <= 7 and "[" in tables[0]  # units in headers
    assert "What it shows:" in page
    # the full results are linked and served beside the plot
    links = re.findall(r'<a href="([^"]+/results/[^"]+\.(?:csv|json))"', page)
    assert len(links) == 2
    for href in links:
        target = (built["page"].parent / href).resolve()
        assert target.is_file() and target.is_relative_to(built["dist"].resolve()), href
    assert '<details class="r2p-provenance">' in page  # provenance complete but collapsed, at the end
    assert page.index('data-view="ramble"') < page.index("r2p-provenance")


def test_measurement_follows_the_claim_it_supports(built):
    page = built["page"].read_text()
    post = page[page.index('data-view="post"') : page.index('<section class="r2p-view" data-view="human"')]
    if built["name"] == "kv-cache-growth":  # the claim is in "Why it exists": the numbers follow it, quoted
        assert post.index("Why it exists") < post.index("Measured on this machine") < post.index("An example")
        assert "the speaker, at 0:20" in post and "KV cache grows with every token" in post
    else:
        assert "Measured on this machine" in post


def test_transcript_and_title_cannot_inject_html(built):
    page = built["page"].read_text()
    assert "<script" not in page  # the site ships no script, and none can be added
    assert _ESCAPED_SCRIPT.search(page)  # the hostile ramble line, shown as text
    markup = re.sub(r'="[^"]*"', '=""', page)  # attribute values (quoted, escaped) hold text, not markup
    assert "<b>" not in markup and "<img src=x" not in markup
    assert not re.search(r"<[a-z][^>]*\sonerror=", markup)
    assert not re.search(r'href="(file:|javascript:|/etc)', page)
    assert "&lt;b&gt;cache&lt;/b&gt;" in page  # the title is text


def test_front_matter_dates_and_og_image(built):
    md = git(built["draft"].repo, "show", f"{built['draft'].branch}:{built['draft'].path}")
    assert re.search(r"^pubDatetime: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", md, re.M)
    assert re.search(r"^ogImage: \.\./\.\./assets/images/ramble2post/.+\.png$", md, re.M)
    page = built["page"].read_text()
    assert re.search(r'<meta property="og:image" content="[^"]+\.(png|webp)"', page)


# ------------------------------------------------------------------ headless Chromium

SELFTEST = """
<script>
window.addEventListener("load", function () {
  var out = {};
  var want = (location.hash.match(/view=([a-z]+)/) || [])[1];
  if (want) { document.getElementById("r2p-tab-" + want).checked = true; return; }
  document.querySelectorAll("label.r2p-tab").forEach(function (label) {
    label.click();
    var key = label.dataset.view;
    var visible = Array.from(document.querySelectorAll("section.r2p-view"))
      .filter(function (s) { return getComputedStyle(s).display !== "none"; })
      .map(function (s) { return s.dataset.view; });
    var tables = Array.from(document.querySelectorAll("section.r2p-view table"))
      .filter(function (t) { return t.offsetParent !== null; })
      .map(function (t) { return {scroll: t.scrollWidth, client: t.clientWidth}; });
    var imgs = Array.from(document.querySelectorAll("section.r2p-view img"))
      .filter(function (i) { return i.offsetParent !== null; })
      .map(function (i) { return {ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, shown: i.clientWidth}; });
    out[key] = {
      visible: visible,
      checked: document.getElementById("r2p-tab-" + key).checked,
      height: document.documentElement.scrollHeight,
      pageScrollX: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      tables: tables,
      images: imgs,
      text: visible.length ? document.querySelector("section.r2p-view[data-view=" + key + "]").innerText.slice(0, 3000) : ""
    };
  });
  var pre = document.createElement("pre");
  pre.id = "selftest";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture()
def served(built):
    """The built site on http://127.0.0.1:<free port>/ (as `astro preview` would serve it), plus a selftest copy."""
    page = built["page"]
    test_page = page.with_name("selftest.html")
    test_page.write_text(page.read_text().replace("</body>", SELFTEST + "</body>"))
    handler = functools.partial(_Quiet, directory=str(built["dist"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/posts/{built['draft'].slug}/"
    yield base
    server.shutdown()


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return run_chromium(tmp_path, *args)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_views_switch_table_fits_1200px_images_load(built, served, tmp_path):
    proc = _chromium(tmp_path, "--window-size=1200,900", "--dump-dom", served + "selftest.html")
    views = selftest_output(proc)
    assert set(views) == set(VIEWS)
    for key, v in views.items():
        assert v["visible"] == [key] and v["checked"], (key, v["visible"])
        assert v["pageScrollX"] <= 0, (key, v["pageScrollX"])  # no horizontal scrolling of the page
        for t in v["tables"]:
            assert t["scroll"] <= t["client"], (key, t)  # the summary table fits: no scrolling inside it either
        assert all(i["ok"] for i in v["images"]), (key, v["images"])
    assert views["post"]["images"] and views["post"]["tables"]
    for key in ("post", "human", "ai"):
        assert views[key]["height"] < MAX_HEIGHT_PX, (built["name"], key, views[key]["height"])
    assert "(AI-written)" in views["post"]["text"] and "AI assistance" in views["ai"]["text"]
    assert "100x speedup" in views["ai"]["text"] and "100x speedup" not in views["human"]["text"]
    assert "<script>alert(1)</script>" in views["ramble"]["text"]  # inert text
    shots = os.environ.get("RAMBLE2POST_SHOTS")
    if shots:  # screenshots for a human reviewer: RAMBLE2POST_SHOTS=/tmp/shots pytest ...
        Path(shots).mkdir(parents=True, exist_ok=True)
        heights = {k: v["height"] for k, v in views.items()}
        (Path(shots) / f"{built['name']}-heights.json").write_text(json.dumps(heights))
        for key in VIEWS:
            h = min(heights[key], 4000)
            out = Path(shots) / f"{built['name']}-{key}.png"
            _chromium(tmp_path, f"--window-size=1200,{h}", f"--screenshot={out}", f"{served}selftest.html#view={key}")


# ------------------------------------------------------------------ an AstroPaper-shaped site

ASTROPAPER_CONFIG = """import { defineCollection, z } from "astro:content";
import { glob } from "astro/loaders";

export const BLOG_PATH = "src/data/blog";

const blog = defineCollection({
  loader: glob({ pattern: "**/[^_]*.md", base: `./${BLOG_PATH}` }),
  schema: ({ image }) =>
    z.object({
      author: z.string().default("Someone"),
      pubDatetime: z.date(),
      modDatetime: z.date().optional().nullable(),
      title: z.string(),
      featured: z.boolean().optional(),
      draft: z.boolean().optional(),
      tags: z.array(z.string()).default(["others"]),
      ogImage: image().or(z.string()).optional(),
      description: z.string(),
      canonicalURL: z.string().optional(),
      hideEditPost: z.boolean().optional(),
      timezone: z.string().optional(),
    }),
});

export const collections = { blog };
"""
# AstroPaper's rule: drafts never listed, scheduled posts only once their time (minus a margin) has come
POST_FILTER = """import type { CollectionEntry } from "astro:content";
const MARGIN_MS = 15 * 60 * 1000;
export default function postFilter({ data }: CollectionEntry<"blog">) {
  const isPublishTimePassed = Date.now() > new Date(data.pubDatetime).getTime() - MARGIN_MS;
  return !data.draft && (import.meta.env.DEV || isPublishTimePassed);
}
"""
POST_PAGE = """---
import { getCollection, render } from "astro:content";
import postFilter from "../../../utils/postFilter";
export async function getStaticPaths() {
  const posts = (await getCollection("blog")).filter(postFilter);
  return posts.map((post) => ({ params: { slug: post.id }, props: { post } }));
}
const { post } = Astro.props;
const { Content } = await render(post);
---
<html lang="en"><head><meta charset="utf-8" /><title>{post.data.title}</title></head>
<body><main><h1>{post.data.title}</h1><article id="article"><Content /></article></main></body></html>
"""


def _astropaper_site(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):  # the same pinned Astro: the node cache is shared
        shutil.copy2(SKELETON_DIR / name, root / name)
    files = {
        "astro.config.mjs": 'import { defineConfig } from "astro/config";\nexport default defineConfig({ site: "https://astro-paper.example/" });\n',
        "src/content.config.ts": ASTROPAPER_CONFIG,
        "src/utils/postFilter.ts": POST_FILTER,
        "src/pages/posts/[...slug]/index.astro": POST_PAGE,
        "src/pages/index.astro": "---\n---\n<html><body>home</body></html>\n",
        "src/data/blog/adding-new-post.md": "---\ntitle: Adding new posts\ndescription: d\npubDatetime: 2022-09-23T15:22:00Z\ntags: [docs]\n---\nHello.\n",
        ".gitignore": "node_modules/\ndist/\n.astro/\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "AstroPaper-shaped site")
    return root


def test_draft_builds_and_previews_on_an_astropaper_shaped_site(tmp_path, node_cache):
    root = _astropaper_site(tmp_path / "astro-paper")
    transcript, post = _kv_transcript_and_post()
    d = create_draft(
        post=post,
        transcript=transcript,
        experiment_results=[_result_with_plot("kv-cache-growth", tmp_path)],
        blog_repo=root,
        hardware=HARDWARE,
    )
    res = CliRunner().invoke(
        cli, ["preview", d.slug, "--blog-repo", str(root)], env={"RAMBLE2POST_HOME": str(tmp_path / "home")}
    )
    assert res.exit_code == 0, res.output
    page_path = Path(re.search(r"^Page: (.+)$", res.output, re.M).group(1))
    assert page_path.as_posix().endswith(f"dist/posts/{d.slug}/index.html")  # shown although draft: true
    page = page_path.read_text()
    for heading in ("The point", "Measured on this machine", "Human contribution", "AI assistance", "Ramble"):
        assert heading in page, heading  # the plain-Markdown fallback: views as sections
    assert re.search(r'<img [^>]*src="/_astro/[^"]+\.webp"', page) and "<table>" in page
    assert "<script" not in page and _ESCAPED_SCRIPT.search(page)
    assert git(root, "status", "--porcelain") == ""
