"""Render a structured post into an AstroPaper Markdown draft (plus its files).

The Markdown comes from ``blog/templates/post.md.j2`` (Jinja2 with HTML
autoescape on). Every string that came from the transcript or the model goes
through ``md_escape`` (the ``md`` filter): whitespace collapsed to one line,
control/bidi characters dropped, Markdown and HTML punctuation backslash-escaped,
so it renders as the same visible text and cannot open a tag, a link, an image,
a heading or a list. Front matter is produced by ``yaml.safe_dump`` (never by
string pasting), so a title cannot add keys. Fenced blocks use a fence longer
than any backtick run inside them.

The template marks the three transparency views with HTML comments
``<!-- ramble2post:view NAME -->`` (invisible on the site); ``preview`` uses them
to build the switchable page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ramble2post.config import BLOG_TEMPLATE_DIR
from ramble2post.errors import Ramble2PostError
from ramble2post.publish.blog import BlogLayout
from ramble2post.publish.markdown import fence, fmt_time, md_escape
from ramble2post.publish.measurements import (
    MEASUREMENTS_END,
    MEASUREMENTS_START,
    ExperimentRecord,
    _json_bytes,
    anchor_layer,
    experiment_views,
    main_plot,
    stage_experiment_files,
)
from ramble2post.publish.slug import slugify
from ramble2post.records import Hardware, Transcript
from ramble2post.structure.schema import Item, Post

TEMPLATE_NAME = "post.md.j2"
TEMPLATES_DIR = BLOG_TEMPLATE_DIR / "templates"
VERIFY_MARK = "**⚠ VERIFY**"  # counted by `ramble2post drafts` / `publish`
AUTHOR_MARK = "**✎ AUTHOR NOTE**"  # a role the ramble does not fill; counted like VERIFY marks
GAP_NOTES = {  # in the place of a role the structure stage left empty
    "reason": "No reason found in the ramble: say why it exists or what problem it solves, or record a follow-up.",
    "example": "No example found in the ramble: add a concrete case a reader can walk through, or record a follow-up.",
    "analogy": "No analogy found in the ramble: add one, or record a follow-up.",
    "connections": "No connection found in the ramble: link it to an idea the reader knows, or say what to try "
    "next, or record a follow-up.",
    "tradeoffs": "No trade-off found in the ramble: name the options and what each costs, or record a follow-up.",
}
LIKELY_NOTES = {  # after the VERIFY mark of a likely item: what to check
    "focus": "a guess at the point: check it states what the post is about",
    "reason": "a guess: probably the reason; check it says why, then keep or replace it",
    "example": "a guess: probably an example; check it is a concrete case, then keep or replace it",
    "analogy": "a guess: probably an analogy; check it compares with something everyday, then keep or replace it",
    "connections": "a guess: probably a connection; check it links to another idea, then keep or replace it",
    "tradeoffs": "a guess: probably a trade-off; check it names a cost, then keep or replace it",
}
VIEW_MARK = "<!-- ramble2post:view {name} -->"
VIEWS = ("post", "human", "ai", "ramble", "provenance")
LAYER_TITLES = {
    "focus": "The point",
    "reason": "Why it exists",
    "example": "An example",
    "analogy": "An analogy",
    "connections": "How it connects",
    "tradeoffs": "Trade-offs",
}
MAX_TAGS = 8


class RenderError(Ramble2PostError):
    """The post cannot be rendered (bad input record)."""


@dataclasses.dataclass(frozen=True)
class RenderedDraft:
    """The files of one draft, by repo-relative POSIX path."""

    post_path: str
    markdown: str
    files: dict[str, bytes]
    verify_count: int
    author_count: int = 0  # AUTHOR NOTEs: roles the ramble left to the author


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = lambda v: Markup(md_escape(v))
    env.filters["t"] = fmt_time
    return env


def _clean_tags(tags: Any) -> list[str]:
    out: list[str] = []
    for t in tags or []:
        s = slugify(str(t), max_len=30)
        if s != "ramble" and s not in out:
            out.append(s)
    return out[:MAX_TAGS] or ["ramble"]


def _segment_times(transcript: Transcript) -> dict[int, tuple[float, float]]:
    return {int(s.id): (float(s.start), float(s.end)) for s in transcript.segments}


def _item_view(
    item: Item,
    times: dict[int, tuple[float, float]],
    labels: Sequence[str] = (),
    heard: Mapping[int, Sequence[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    """heard: sentence id -> (heard, written) of the terms the structure stage wrote from context."""
    sources = list(item.sources)
    spans = [times[s] for s in sources if s in times]
    k = int((item.model_extra or {}).get("recording") or 0)  # 0: the ramble; k: follow-up k
    return {
        "recording": labels[k - 1] if 0 < k <= len(labels) else None,
        "text": item.text,
        "origin": "speaker" if item.origin == "speaker" else "model",
        "sources": sources,
        "verified": item.verified,
        "note": item.note,
        "tier": item.tier,
        "start": min(a for a, _ in spans) if spans else None,
        "end": max(b for _, b in spans) if spans else None,
        # terms written from context where Whisper heard ordinary words: shown so the author can check
        "heard": [pair for sid in item.sentences or () for pair in (heard or {}).get(sid, ())]
        if item.origin == "speaker" and not k
        else [],
    }


def render_measurements(*, stored_results: Sequence[Mapping[str, Any]], layout: BlogLayout, slug: str) -> str:
    """The measurements section (with its markers) for results already stored in the repo.

    For ``rerun``: load every ``<assets>/results/*.json`` (old machines and the
    new one), render, and put it in place with ``replace_measurements``.
    """
    experiments = experiment_views(stored_results, layout=layout, slug=slug)
    return _env().get_template("measurements.md.j2").render(experiments=experiments, verify_mark=Markup(VERIFY_MARK))


def replace_measurements(markdown: str, section: str) -> str:
    """``markdown`` with the part between the measurement markers replaced (user edits elsewhere kept)."""
    a, b = markdown.find(MEASUREMENTS_START), markdown.find(MEASUREMENTS_END)
    if a < 0 or b < a:
        raise RenderError("the post has no ramble2post measurements markers")
    return markdown[:a] + section.rstrip("\n") + markdown[b + len(MEASUREMENTS_END) :]


def render_post(
    *,
    post: Post,
    transcript: Transcript,
    experiment_results: Sequence[ExperimentRecord],
    layout: BlogLayout,
    slug: str,
    hardware: Hardware,
    provenance: dict[str, Any],
    now: dt.datetime,
    followups: Sequence[Transcript] = (),
    stored_results: Sequence[Mapping[str, Any]] | None = None,
) -> RenderedDraft:
    """The post Markdown plus its image/result files, ready to commit.

    post: the structure stage's record (validated when it was made or read).
    transcript: the transcript the post was made from (times, quotes, corrections).
    experiment_results: runs (or stored results) whose tables and plots the post carries.
    layout: where the blog keeps posts and their assets.
    slug: the post's file name (without ``.md``) and assets folder name.
    hardware: the machine that drafted it.
    provenance: the complete record shown in the post's provenance block.
    now: the post's pubDatetime.
    followups: follow-up recordings' transcripts (``publish.followup``), their segment ids after
        the ramble's; an item with ``recording: k`` cites follow-up k's segments.
    stored_results: results already stored in the repo (instead of ``experiment_results``).
    """
    times = _segment_times(transcript)
    for f in followups:
        times |= _segment_times(f)
    labels = [f"follow-up {k}" for k in range(1, len(followups) + 1)]
    heard: dict[int, list[tuple[str, str]]] = {}
    for fix in post.jargon:
        heard.setdefault(int(fix["sentence"]), []).append((str(fix["heard"]), str(fix["written"])))
    layers = {k: [_item_view(i, times, labels, heard) for i in post.layers.of(k)] for k in LAYER_TITLES}
    hints = {  # a gap's closest passage: quoted in its author note as a place to start
        k: {
            "text": h.text,
            "start": min((times[s][0] for s in h.sources if s in times), default=None),
            "heard": [pair for sid in h.sentences for pair in heard.get(sid, ())],
        }
        for k, h in post.hints.items()
        if not layers.get(k)
    }
    title = " ".join(post.title.text.split()) or "Untitled ramble"
    description = " ".join(post.description.split()) or title
    files: dict[str, bytes] = {}
    if stored_results is not None:
        stored = [dict(r) for r in stored_results]
    else:
        stored, files = stage_experiment_files(
            [r.to_dict() for r in experiment_results], layout=layout, slug=slug, segments=transcript.segments
        )
    experiments = experiment_views(stored, layout=layout, slug=slug)
    source_dir = f"{layout.assets_dir(slug)}/source"  # inputs kept so a rerun can re-render exactly
    files[f"{source_dir}/post.json"] = _json_bytes(post.to_dict())
    files[f"{source_dir}/transcript.json"] = _json_bytes(transcript.to_dict())
    all_items = [it for items in layers.values() for it in items]
    # a likely item is a guess the author checks: it carries a VERIFY mark like an unverified one
    verify_count = sum(1 for it in all_items if not it["verified"] or it["tier"] == "likely") + sum(
        1 for e in experiments if e["error"]
    )
    verify_count += sum(1 for e in experiments for c in e["claims"] if c["fails"])  # a claim that did not hold
    likely_count = sum(1 for it in all_items if it["tier"] == "likely")
    author_count = sum(1 for k in GAP_NOTES if not layers[k])
    pub = now.astimezone(dt.UTC).replace(microsecond=0)
    front: dict[str, Any] = {
        "title": title,
        "description": description,
        "pubDatetime": pub,  # a YAML timestamp (ISO 8601, 'T', 'Z'), as AstroPaper's z.date() expects
        "tags": _clean_tags(post.tags),
        "draft": True,
    }
    og = main_plot(stored)
    if og:  # AstroPaper: image() resolves a path relative to the post; the plot is the post's picture
        front["ogImage"] = layout.asset_ref(slug, og.rsplit("/", 1)[-1])
    front |= {
        "ramble2post": {
            "schema_version": 1,
            "slug": slug,
            "audio_sha256": post.audio_sha256 or transcript.audio_sha256,
            "transcript_sha256": post.transcript_sha256,
            "verify_marks": verify_count,
            "author_notes": author_count,
            "hardware": hardware.label,
            "assets": layout.assets_dir(slug),
        },
    }
    if followups:
        front["ramble2post"]["followup_audio_sha256"] = [f.audio_sha256 for f in followups]
    front_yaml = dump_front_matter(front)
    llm = {
        "name": None,
        "quantization": None,
        "sha256": None,
        "source": None,
        "n_ctx": None,
        **(post.llm or {}),
    }  # --llm none: no model
    ctx = {
        "front_matter": Markup(front_yaml),
        "slug": slug,
        "title": title,
        "title_origin": post.title.origin,
        "layers": layers,
        "layer_titles": LAYER_TITLES,
        "experiments": experiments,
        # the claims are the ramble's: a follow-up's items (another recording's times) never move them
        "measure_after": anchor_layer(
            [e["claim"] for e in experiments], {k: [it for it in v if not it["recording"]] for k, v in layers.items()}
        )
        if experiments
        else None,
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                # glossary corrections after decoding, shown beside what was heard (transcribe/glossary.py)
                "corrections": [c for c in transcript.corrections if c.segment == k],
            }
            for k, s in enumerate(transcript.segments)
        ],
        "audio_name": _file_name(transcript.audio_path),
        "followups": [
            {
                "label": label,
                "name": _file_name(f.audio_path),
                "duration": f.duration,
                "segments": [
                    {
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "corrections": [c for c in f.corrections if c.segment == k],
                    }
                    for k, s in enumerate(f.segments)
                ],
            }
            for label, f in zip(labels, followups, strict=True)
        ],
        "speaker_items": [(k, it) for k, items in layers.items() for it in items if it["origin"] == "speaker"],
        "model_items": [(k, it) for k, items in layers.items() for it in items if it["origin"] == "model"],
        "verify_mark": Markup(VERIFY_MARK),
        "verify_count": verify_count,
        "author_mark": Markup(AUTHOR_MARK),
        "author_count": author_count,
        "likely_count": likely_count,
        "likely_notes": LIKELY_NOTES,
        "gap_notes": GAP_NOTES,
        "hints": hints,
        "title_suggestion": post.title_suggestion,
        "verification": post.verification.model_dump(exclude_unset=True),
        "llm": llm,
        "whisper": transcript.model,
        "prompts": post.prompts,
        "hardware": hardware,
        "duration": transcript.duration,
        "provenance_block": Markup(
            fence(yaml.safe_dump(provenance, sort_keys=False, allow_unicode=True, width=1000), "yaml")
        ),
        "view": lambda name: Markup(VIEW_MARK.format(name=name)),
    }
    markdown = _env().get_template(TEMPLATE_NAME).render(**ctx)
    post_path = layout.post_path(slug)
    files = {post_path: markdown.encode("utf-8"), **files}
    return RenderedDraft(
        post_path=post_path, markdown=markdown, files=files, verify_count=verify_count, author_count=author_count
    )


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path


class _FrontMatterDumper(yaml.SafeDumper):
    """safe_dump, but a datetime is written ISO 8601 with 'T' and 'Z' (AstroPaper's own spelling)."""


def _represent_datetime(dumper: yaml.SafeDumper, value: dt.datetime) -> yaml.Node:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    text = value.replace(tzinfo=None).isoformat() + "Z"  # plain scalar: YAML still reads it as a timestamp
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", text)


_FrontMatterDumper.add_representer(dt.datetime, _represent_datetime)


def dump_front_matter(front: Mapping[str, Any]) -> str:
    """YAML front matter (never string pasting, so a title cannot add keys)."""
    return yaml.dump(front, Dumper=_FrontMatterDumper, sort_keys=False, allow_unicode=True, width=1000)


def split_front_matter(markdown: str) -> tuple[dict[str, Any], str]:
    """(front matter dict, body) of a post; ({}, text) when there is none."""
    if not markdown.startswith("---\n"):
        return {}, markdown
    end = markdown.find("\n---\n", 4)
    if end < 0:
        return {}, markdown
    try:
        data = yaml.safe_load(markdown[4:end]) or {}
    except yaml.YAMLError:
        return {}, markdown
    return (data if isinstance(data, dict) else {}), markdown[end + 5 :]


def count_verify_marks(markdown: str) -> int:
    """VERIFY marks left in a post body (what `publish` refuses on)."""
    return split_front_matter(markdown)[1].count(VERIFY_MARK)


def count_author_notes(markdown: str) -> int:
    """AUTHOR NOTE marks left in a post body: roles the author still has to fill (`publish` refuses on them too)."""
    return split_front_matter(markdown)[1].count(AUTHOR_MARK)


def set_draft_flag(markdown: str, *, draft: bool, pub: dt.datetime | None = None) -> str:
    """Rewrite the front matter's ``draft`` (and optionally pubDatetime), safely."""
    front, body = split_front_matter(markdown)
    if not front:
        raise RenderError("post has no front matter")
    front["draft"] = draft
    if pub is not None:
        front["pubDatetime"] = pub.astimezone(dt.UTC).replace(microsecond=0)
    return f"---\n{dump_front_matter(front)}---\n{body}"


# ---------------------------------------------------------------- preview

PREVIEW_TEMPLATE = "preview.html.j2"
PREVIEW_VIEWS = (  # (key, tab label, which Markdown views it shows)
    ("human", "Human contribution", ("human",)),
    ("ai", "AI assistance", ("post", "ai", "provenance")),
    ("ramble", "Ramble", ("ramble",)),
)
_DATA_TYPES = {".csv": "text/csv", ".json": "application/json"}  # result files a post links to
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
# The raw-HTML lines post.md.j2 writes around views and the provenance (exactly these; any
# transcript text is escaped, so it cannot produce one).
_WRAPPER_LINE = re.compile(
    r'^(?:<section class="r2p-view" data-view="[a-z]+">|</section>|<details class="r2p-provenance">'
    r"|<summary>[^<>]*</summary>|</details>)$",
    re.MULTILINE,
)
_VIEW_SPLIT = re.compile(r"^<!-- ramble2post:view ([a-z]+) -->$", re.MULTILINE)


def split_views(body: str) -> dict[str, str]:
    """Markdown of each ``<!-- ramble2post:view NAME -->`` part of a post body."""
    parts = _VIEW_SPLIT.split(body)
    views = {"post": parts[0]} if parts[0].strip() else {}
    for name, text in zip(parts[1::2], parts[2::2]):
        views[name] = views.get(name, "") + text
    return views


def render_preview(*, markdown: str, post_path: str, read_file: Callable[[str], bytes | None], source: str = "") -> str:
    """A standalone HTML page with the three switchable views, images inlined.

    ``read_file(repo_path) -> bytes | None`` reads the post's images from git.
    Markdown is rendered with raw HTML *disabled* (so nothing in the post can
    add tags or scripts); image sources are resolved relative to the post and
    replaced by data URIs, or dropped when they are not an image in the repo.
    A Content-Security-Policy forbids loading anything from outside the page.
    """
    import base64
    import posixpath
    import secrets

    from markdown_it import MarkdownIt

    front, body = split_front_matter(markdown)
    body = body.replace(MEASUREMENTS_START, "").replace(MEASUREMENTS_END, "")
    body = _WRAPPER_LINE.sub("", body)  # the site's view wrappers; this page switches views itself
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    post_dir = posixpath.dirname(post_path)

    def image_rule(_renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = token.attrGet("src") or ""
        data_uri = None
        if not re.match(r"^[a-z][a-z0-9+.-]*:", src, re.I) and not src.startswith("/"):
            target = posixpath.normpath(posixpath.join(post_dir, src))
            mime = _IMAGE_TYPES.get(posixpath.splitext(target)[1].lower())
            if mime and not target.startswith("../"):
                blob = read_file(target)
                if blob:
                    data_uri = f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}"
        token.attrSet("src", data_uri or "")
        if not data_uri:
            token.attrSet("data-missing", src)
        token.attrSet("loading", "eager")
        return _render_img(token, md, options, env)

    def link_rule(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        # a link to a result file beside the plot becomes a data: URI (the page stays standalone);
        # any other relative link is dropped (it would point at the reader's disk)
        token = tokens[idx]
        href = token.attrGet("href") or ""
        if not re.match(r"^(https?:|mailto:|#)", href, re.I):
            target = posixpath.normpath(posixpath.join(post_dir, href))
            mime = _DATA_TYPES.get(posixpath.splitext(target)[1].lower())
            blob = read_file(target) if mime and not target.startswith("../") and not href.startswith("/") else None
            token.attrSet("href", f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}" if blob else "#")
        html: str = renderer.renderToken(tokens, idx, options, env)
        return html

    md.add_render_rule("image", image_rule)
    md.add_render_rule("link_open", link_rule)
    views = split_views(body)
    sections = {
        key: Markup(md.render("\n\n".join(views.get(v, "") for v in parts))) for key, _label, parts in PREVIEW_VIEWS
    }
    env = _env()
    return env.get_template(PREVIEW_TEMPLATE).render(
        title=str(front.get("title", "Untitled")),
        date=str(front.get("pubDatetime", "")),
        tags=[str(t) for t in front.get("tags") or []],
        draft=bool(front.get("draft", False)),
        verify_marks=count_verify_marks(markdown),
        source=source,
        views=[(k, label) for k, label, _ in PREVIEW_VIEWS],
        default_view="ai",
        sections=sections,
        nonce=secrets.token_urlsafe(16),
    )


def _render_img(token: Any, md: Any, options: Any, env: Any) -> str:
    from markupsafe import escape

    alt = md.renderer.renderInlineAsText(token.children or [], options, env)
    attrs = "".join(f' {k}="{escape(v)}"' for k, v in token.attrs.items() if k != "alt")
    return f'<img alt="{escape(alt)}"{attrs}>'
