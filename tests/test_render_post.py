"""The rendered Markdown: AstroPaper front matter, layers, transparency, escaping."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt
from test_blog_common import HARDWARE, git, make_post, make_repo, make_result, make_transcript, post_json, stored

from ramble2post.publish.blog import BlogLayout
from ramble2post.publish.draft import create_draft
from ramble2post.publish.markdown import fence, md_escape
from ramble2post.publish.render import (
    VERIFY_MARK,
    count_verify_marks,
    render_post,
    set_draft_flag,
    split_front_matter,
)
from ramble2post.records import Correction, Segment
from ramble2post.structure.schema import Post

NOW = dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)
LAYOUT = BlogLayout(name="astropaper-v5", posts_dir="src/data/blog")
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](file:///etc/passwd)",
    "![leak](../../../../etc/passwd)",
    "<file:///etc/passwd>",
    "---\ndraft: false\nevil: 1\n---",
    "# heading\n- list\n1. item",
    "`code` **bold** ~~strike~~ | pipe | &lt; &#60;",
    "{{ jinja }} {% raw %}",
]


def render(post=None, transcript=None, results=(), slug="a-post"):
    """``render_post`` on a Post (or its JSON) and result JSON."""
    return render_post(
        post=Post.from_dict(post) if isinstance(post, dict) else post or make_post(),
        transcript=transcript or make_transcript(),
        experiment_results=stored(*results),
        layout=LAYOUT,
        slug=slug,
        hardware=HARDWARE,
        provenance={"pipeline_commit": "abc"},
        now=NOW,
    )


def to_html(markdown: str) -> str:
    """Render like Astro does: raw HTML allowed (the dangerous setting)."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(split_front_matter(markdown)[1])


def test_front_matter_is_valid_astropaper():
    r = render()
    front, body = split_front_matter(r.markdown)
    assert front["title"] == "Batching makes decoding nearly free"
    assert front["description"].startswith("Why batching")
    assert front["pubDatetime"] == NOW  # a YAML timestamp, not a string
    assert "\npubDatetime: 2026-11-24T06:00:00Z\n" in r.markdown  # ISO 8601 with 'T', as AstroPaper writes it
    republished = set_draft_flag(r.markdown, draft=False, pub=NOW + dt.timedelta(hours=1))
    assert "\npubDatetime: 2026-11-24T07:00:00Z\n" in republished and "\ndraft: false\n" in republished
    assert front["draft"] is True
    assert front["tags"] == ["gpu", "batching", "etc"]
    assert set(front) == {"title", "description", "pubDatetime", "tags", "draft", "ramble2post"}
    assert front["ramble2post"]["verify_marks"] == 1
    assert "## Table of contents" in body


def test_layers_and_transparency_sections_are_present():
    r = render()
    body = split_front_matter(r.markdown)[1]
    for heading in (
        "## The point",
        "## Why it exists",
        "## An example",
        "## An analogy",
        "## How it connects",
        "## Trade-offs",
        "## Human contribution",
        "## AI assistance",
        "## Ramble",
        "## Provenance",
    ):
        assert heading in body, heading
    human = body.split("## Human contribution")[1].split("## AI assistance")[0]
    ai = body.split("## AI assistance")[1].split("## Ramble")[0]
    assert "So the idea is that batching makes decoding nearly free" in human
    assert "said at 0:00–0:04" in human
    assert "100x speedup" not in human and "100x speedup" in ai  # model text is marked as the model's
    assert "SmolLM2\\-135M\\-Instruct" in ai or "SmolLM2-135M-Instruct" in ai
    assert "d" * 64 in ai and "b" * 64 in ai  # checksums of both models
    assert "structure v3" in ai
    ramble = body.split("## Ramble")[1]
    assert "**[0:05]** Decoding is memory bound" in ramble
    assert "```yaml" in body.split("## Provenance")[1]
    assert "*(AI-written)*" in body and "*(said at 0:10)*" in body


def test_unverified_items_get_a_visible_verify_mark():
    r = render()
    assert r.verify_count == 1 == count_verify_marks(r.markdown)
    line = next(ln for ln in r.markdown.splitlines() if "100x speedup" in ln and VERIFY_MARK in ln)
    assert "number not in the ramble" in line
    assert count_verify_marks(render(make_post(unverified=0)).markdown) == 0


@pytest.mark.parametrize("evil", HOSTILE)
def test_hostile_text_is_inert_everywhere(evil):
    post = post_json(title=evil)
    post["description"] = evil
    post["tags"] = [evil]
    for layer in post["layers"].values():
        for item in layer:
            item["text"] = evil
            item["note"] = evil
            item["verified"] = False
    t = make_transcript()
    t = type(t)(
        **{**t.__dict__, "segments": tuple(Segment(id=s.id, start=s.start, end=s.end, text=evil) for s in t.segments)}
    )
    r = render(post, t)
    front, body = split_front_matter(r.markdown)
    assert set(front) == {"title", "description", "pubDatetime", "tags", "draft", "ramble2post"}
    assert front["draft"] is True
    assert front["title"] == " ".join(evil.split())
    html = to_html(r.markdown)
    assert "<script" not in html
    assert not re.search(r"<[a-z][^>]*\sonerror=", html)
    assert not re.search(r"href=\"(file:|\.\./|/etc)", html)
    assert not re.search(r"<img[^>]*etc/passwd", html)
    assert "<h1" not in html  # no heading injected (AstroPaper uses the title as h1)
    assert "{{" not in r.markdown or "\\{\\{" in r.markdown


def test_md_escape_keeps_visible_text():
    for evil in HOSTILE:
        html = MarkdownIt("commonmark", {"html": True}).render(md_escape(evil))
        visible = re.sub(r"<[^>]+>", "", html).strip()
        import html as h

        assert h.unescape(visible) == " ".join(evil.split())


def test_fence_cannot_be_closed_from_inside():
    text = "a\n```\n<script>x</script>\n````"
    block = fence(text, "yaml")
    html = MarkdownIt("commonmark", {"html": True}).render(block)
    assert html.count("<pre>") == 1 and "<script>" not in html


def test_experiment_tables_plots_and_raw_results(tmp_path):
    res = make_result(tmp_path)
    res["units"] = {"tokens/s": "tok/s"}
    res["notes"] = ["measured with llama.cpp"]
    res["reading"] = "Throughput grows with batch size | pipes"
    res["rows"].append(["x | y", 1.0, 1.0])
    r = render(results=[res])
    body = split_front_matter(r.markdown)[1]
    assert "## Measured on this machine" in body
    assert "| batch | tokens/s \\[tok/s\\] | speedup |" in body  # the unit in the header
    assert "| 4 | 350.5 | 3.505 |" in body
    assert "**What it shows:** Throughput grows with batch size \\| pipes" in body  # the finding, one sentence
    assert "| x \\| y | 1 | 1 |" in body  # a pipe from data cannot break the table
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body)
    assert len(refs) == 1 and refs[0].startswith("../../assets/images/ramble2post/a-post/")
    png = [p for p in r.files if p.endswith(".png")]
    assert png == ["src/assets/images/ramble2post/a-post/" + refs[0].rsplit("/", 1)[1]]
    stored = [p for p in r.files if p.endswith(".json") and "/results/" in p]
    assert stored and stored[0].startswith("src/assets/images/ramble2post/a-post/results/")
    csv_path = stored[0][: -len(".json")] + ".csv"
    assert r.files[csv_path].decode().splitlines()[:2] == ["batch,tokens/s [tok/s],speedup", "1,100.0,1.0"]
    links = re.findall(r"\[(CSV|JSON)\]\(([^)]+)\)", body)  # the full results, linked beside the plot
    assert [k for k, _ in links] == ["CSV", "JSON"]
    assert all(ref.startswith("../../assets/images/ramble2post/a-post/results/") for _, ref in links)
    front = split_front_matter(r.markdown)[0]
    assert front["ogImage"] == refs[0]  # the main plot is the post's picture
    data = json.loads(r.files[stored[0]])
    assert data["rows"][:2] == [[1, 100.0, 1.0], [4, 350.5, 3.505]] and data["plots"] == png


def test_failed_experiment_is_recorded_with_verify_mark():
    r = render(results=[{"experiment": "batching-speedup", "error": "out of memory"}])
    assert "this experiment failed" in r.markdown and "out of memory" in r.markdown
    assert r.verify_count == 2


def test_only_existing_png_plots_are_copied(tmp_path):
    res = make_result(tmp_path)
    secret = tmp_path / "id_rsa"
    secret.write_text("secret")
    res["plots"] = [str(secret), str(tmp_path / "missing.png"), res["plots"][0]]
    r = render(results=[res])
    assert not any(b == b"secret" for b in r.files.values())
    assert sum(p.endswith(".png") for p in r.files) == 1


def test_plots_relative_to_result_dir(tmp_path):
    res = make_result(tmp_path)
    res["plots"] = [res["plots"][0].rsplit("/", 1)[1]]
    res["result_dir"] = str(tmp_path)
    r = render(results=[res])
    assert sum(p.endswith(".png") for p in r.files) == 1


def test_set_draft_flag_keeps_body():
    r = render()
    out = set_draft_flag(r.markdown, draft=False)
    front, body = split_front_matter(out)
    assert front["draft"] is False and body == split_front_matter(r.markdown)[1]


def test_committed_images_resolve_from_the_post(tmp_path):
    root = make_repo(tmp_path / "blog", posts_dir="src/content/posts")
    d = create_draft(
        post=make_post(),
        transcript=make_transcript(),
        experiment_results=stored(make_result(tmp_path)),
        blog_repo=root,
        hardware=HARDWARE,
        now=NOW,
    )
    text = git(root, "show", f"{d.branch}:{d.path}")
    import posixpath

    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert refs, "the draft carries the experiment's plot"
    for ref in refs:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(d.path), ref))
        assert git(root, "cat-file", "-t", f"{d.branch}:{target}").strip() == "blob"
    yaml.safe_load(text.split("---\n")[1])


def test_rerun_can_rerender_measurements_with_two_machines(tmp_path):
    from ramble2post.publish.render import render_measurements, replace_measurements

    r = render(results=[make_result(tmp_path)])
    stored = [json.loads(b) for p, b in r.files.items() if "/results/" in p and p.endswith(".json")]
    assert "## Measured on this machine" in r.markdown
    edited = r.markdown.replace("## The point", "## The point (edited by hand)")
    gpu = make_result(tmp_path, label="NVIDIA H100 80GB HBM3", started="2026-11-25T09:00:00Z")
    section = render_measurements(stored_results=stored + [gpu], layout=LAYOUT, slug="a-post")
    out = replace_measurements(edited, section)
    assert "## The point (edited by hand)" in out  # edits outside the section survive
    assert "## Measured on these machines" in out
    assert out.index("on Test CPU, 2 cores") < out.index("on NVIDIA H100 80GB HBM3")
    assert out.count("| batch | tokens/s | speedup |") == 2
    assert out.count("<!-- ramble2post:measurements -->") == 1


def test_sources_are_kept_next_to_the_results():
    r = render()
    src = "src/assets/images/ramble2post/a-post/source/"
    assert json.loads(r.files[src + "post.json"])["title"]["text"] == "Batching makes decoding nearly free"
    assert json.loads(r.files[src + "transcript.json"])["segments"][0]["id"] == 0


def test_a_role_the_ramble_lacks_is_an_author_note_not_a_faked_sentence():
    from ramble2post.publish.render import AUTHOR_MARK, count_author_notes

    r = render(post=make_post(gaps=("analogy", "tradeoffs"), unverified=0))
    body = split_front_matter(r.markdown)[1]
    post_view = body.split("<!-- ramble2post:view human -->")[0]
    analogy = post_view.split("## An analogy", 1)[1].split("\n## ", 1)[0]
    assert AUTHOR_MARK in analogy and "No analogy found in the ramble: add one" in analogy
    assert "bus" not in analogy  # nothing else stands in for the missing analogy
    assert "No trade-off found in the ramble" in post_view.split("## Trade-offs", 1)[1]
    assert count_author_notes(r.markdown) == 2 == r.author_count
    assert split_front_matter(r.markdown)[0]["ramble2post"]["author_notes"] == 2
    full = render(post=make_post(unverified=0))
    assert count_author_notes(full.markdown) == 0 and AUTHOR_MARK not in full.markdown


def test_a_record_that_is_not_a_post_is_refused_where_it_is_read():
    from ramble2post.errors import InputError

    bad = post_json()
    bad["layers"]["focus"] = []  # layer 1 can never be empty
    with pytest.raises(InputError, match="post JSON is not valid"):
        Post.from_dict(bad)  # render_post takes a Post: JSON is checked at the edge that reads it


def test_measurements_follow_the_layer_with_the_claim_quoted_with_its_time(tmp_path):
    res = make_result(tmp_path)
    real = json.loads((Path(__file__).parent / "data" / "results" / "batching-speedup.json").read_text())
    res["summary"] = real["summary"]  # a real run's figures, so the claim can be judged
    res["detection"] = {
        "experiment": "batching-speedup",
        "claim": "c",
        "score": 1.0,
        "evidence": [
            {"segment_id": 2, "start": 10.0, "end": 14.5, "quote": "bus", "label": "x", "weight": 1.0},
            {"segment_id": 0, "start": 0.0, "end": 4.5, "quote": "free", "label": "w", "weight": 0.25, "context": True},
        ],
    }
    body = split_front_matter(render(results=[res]).markdown)[1]
    post = body.split("## Human contribution")[0]
    assert post.index("## An analogy") < post.index("## Measured on this machine") < post.index("## How it connects")
    # the claims near the detection are quoted with their time and a verdict; the analogy is no claim
    assert "> “Decoding is memory bound, you read all the weights for one token.” — *the speaker, at 0:05*" in post
    assert "**Verdict: " in post and "Why: " in post
    assert "“It's like a bus" not in post.split("## Measured on this machine")[1]
    # without a detection, the experiment's own detector finds the claim in the transcript
    del res["detection"]
    post = split_front_matter(render(results=[res]).markdown)[1].split("## Human contribution")[0]
    assert post.index("## The point") < post.index("## Measured on this machine") < post.index("## Why it exists")
    assert "— *the speaker, at 0:00*" in post


def test_views_are_sections_and_the_provenance_is_collapsed_at_the_end():
    body = split_front_matter(render().markdown)[1]
    opens = re.findall(r'^<section class="r2p-view" data-view="([a-z]+)">$', body, re.M)
    assert opens == ["post", "human", "ai", "ramble"] and body.count("\n</section>\n") == 4
    assert body.index("## Ramble") < body.index('<details class="r2p-provenance">') < body.index("```yaml")
    ai = body.split("## AI assistance")[1].split("## Ramble")[0]
    html = to_html("---\ntitle: t\n---\n" + ai)
    assert html.count("<ul>") == 2  # the model's sentences and the models/prompts are two lists, not one


def test_ramble_view_shows_what_was_heard_beside_a_glossary_correction():
    import dataclasses

    t = make_transcript()
    seg = dataclasses.replace(t.segments[1], text="Decoding is memory bound, the KV cache grows with every token.")
    fixed = dataclasses.replace(
        t,
        segments=(t.segments[0], seg, *t.segments[2:]),
        corrections=(Correction(original="kv cash", corrected="KV cache", start=5.0, end=9.5, segment=1),),
    )
    ramble = render(transcript=fixed).markdown.split("## Ramble", 1)[1].split("## Provenance", 1)[0]
    assert "spelled right marked" in ramble
    line = next(x for x in ramble.splitlines() if "KV cache grows" in x)
    assert '*(heard: "kv cash", glossary: KV cache)*' in line
    assert "heard:" not in render().markdown.split("## Ramble", 1)[1].split("## Provenance", 1)[0]  # none: no marks
