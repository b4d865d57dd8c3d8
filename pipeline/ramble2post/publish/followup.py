"""A follow-up recording for a draft: fill its open roles, keep the author's edits, one new commit.

``ramble2post follow-up SLUG audio.m4a`` transcribes and structures a second recording
(``api.follow_up``); this module puts its answers into the draft:

1. **Answers** (``structure.answers``): an AUTHOR NOTE's role the follow-up fills gets the
   new passage; likely items (VERIFY guesses) are replaced by a confident or named answer;
   new material for a filled role is added after what is there. Each new item names its
   recording and carries its own time stamp; the follow-up's segments get ids after the
   ramble's (and earlier follow-ups'), so every item still cites exactly one segment.
2. **Render**: the whole draft is rendered again from the merged records (same date,
   hardware, provenance, plus the follow-up), with both recordings in the Human view, both
   transcripts in the Ramble view and both audio hashes in provenance and front matter.
3. **Three-way merge** (``git merge-file``) of the draft as ramble2post last generated it
   (``source/generated-post.txt``; for a first follow-up, the branch's first commit), the
   branch tip (with the author's edits) and the new render: regions only the generator
   changed take the new text; the author's lines stay byte for byte. Where both changed the
   same lines, nothing is committed: one error names the section and how to proceed.
4. **Commit** with plumbing on top of the tip, compare-and-swap on the branch ref, under
   the repo lock (``gitops``): the user's checkout, index and current branch are untouched
   (a clean checkout of the draft branch itself is moved along, as ``rerun`` does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ramble2post.errors import BlogRepoError
from ramble2post.publish import gitops
from ramble2post.publish.blog import configured_blog_repo, default_blog_path, detect_layout
from ramble2post.publish.draft import find_post
from ramble2post.publish.measurements import (
    MEASUREMENTS_END,
    MEASUREMENTS_START,
    ExperimentRecord,
    _json_bytes,
    stage_experiment_files,
)
from ramble2post.publish.render import (
    count_author_notes,
    count_verify_marks,
    render_measurements,
    render_post,
    replace_measurements,
    split_front_matter,
)
from ramble2post.records import Hardware, Transcript
from ramble2post.structure.answers import ANSWERABLE, answers_for, confirmations
from ramble2post.structure.schema import Post, validate_post

log = logging.getLogger(__name__)

GENERATED = "source/generated-post.txt"  # the draft as last generated, before the author's edits (merge base)
_PROVENANCE = re.compile(
    r'<details class="r2p-provenance">\n<summary>[^\n]*</summary>\n\n(`{3,})yaml\n(.*?)\n\1\n', re.S
)
_HEADING = re.compile(r"^#{2,3} (.+)$", re.M)


@dataclasses.dataclass(frozen=True)
class FollowUp:
    """What a follow-up committed."""

    slug: str
    branch: str
    commit: str
    previous: str  # the branch tip it was committed on
    recording: int  # 1 for the first follow-up
    filled: tuple[str, ...]  # roles whose AUTHOR NOTE the follow-up replaced
    replaced: tuple[str, ...]  # roles whose likely items (guesses) a confident or named answer replaced
    added: tuple[str, ...]  # roles that got more material after what was there
    author_notes: int  # left in the draft after the follow-up
    verify_marks: int
    confirmed: tuple[str, ...] = ()  # roles whose guesses the speaker confirmed: shown plain now
    dropped: tuple[str, ...] = ()  # roles whose guesses the speaker rejected: an AUTHOR NOTE again
    measured: tuple[str, ...] = ()  # experiments the follow-up referred to, new to the draft's measurements

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def open_roles(post: Post) -> tuple[list[str], list[str]]:
    """(roles left empty: AUTHOR NOTEs, roles shown only as guesses: likely items) of a draft's post."""
    gaps = [r for r in ANSWERABLE if not post.layers.of(r)]
    likely = [r for r in ANSWERABLE if post.layers.of(r) and all(it.tier == "likely" for it in post.layers.of(r))]
    return gaps, likely


def open_repo_for(blog_repo: Path | str | None) -> gitops.git.Repo:
    path = configured_blog_repo(blog_repo) or default_blog_path()
    if not Path(path).exists():
        raise BlogRepoError(f"no blog repo at {path}", hint="pass --blog-repo DIR of the blog that has the draft")
    return gitops.open_repo(Path(path))


def check_draft(repo: gitops.git.Repo, *, slug: str, posts_dir: str | None = None) -> tuple[list[str], list[str]]:
    """Refuse an unknown slug or a published post before any slow stage; the draft's open roles."""
    default = gitops.default_branch(repo)
    base = gitops.base_sha(repo, default)
    # a draft branch left behind by publish (it was checked out then) is merged: published too
    tip = gitops.ref_sha(repo, f"refs/heads/{gitops.DRAFT_PREFIX}{slug}")
    merged = tip is not None and repo.git.merge_base(tip, base) == tip
    info = None if merged else find_post(repo, slug=slug, posts_dir=posts_dir)
    if info is None or not info.branch.startswith(gitops.DRAFT_PREFIX):
        raise BlogRepoError(
            f"{slug} is already published on {default}: a follow-up updates drafts only",
            hint="edit the published post by hand, or draft a new post from the recording: ramble2post AUDIO",
        )
    layout = detect_layout(repo, base=base, posts_dir=posts_dir)
    return open_roles(_read_post(repo, info.commit, layout.assets_dir(slug)))


def follow_up_draft(
    *,
    slug: str,
    transcript: Transcript,
    followup_post: Post,
    blog_repo: Path | str | None,
    posts_dir: str | None = None,
    say: Callable[[str], None] = log.info,
    lock_wait_s: float = gitops.LOCK_WAIT_S,
    experiment_results: Sequence[ExperimentRecord] = (),
) -> FollowUp:
    """Put the follow-up's answers into draft ``slug`` (module doc); BlogRepoError changes nothing.

    transcript: the follow-up recording's transcript.
    followup_post: the structure stage's record of it.
    experiment_results: experiments the follow-up refers to, run on this machine; those the draft
        has not measured yet join its measurements (their claims quoted from the follow-up).
    """
    repo = open_repo_for(blog_repo)
    with gitops.repo_lock(repo, wait_s=lock_wait_s):
        check_draft(repo, slug=slug, posts_dir=posts_dir)
        info = find_post(repo, slug=slug, posts_dir=posts_dir)
        tip, branch = info.commit, info.branch
        layout = detect_layout(repo, base=gitops.base_sha(repo, gitops.default_branch(repo)), posts_dir=posts_dir)
        src = f"{layout.assets_dir(slug)}/source"
        post = _read_post(repo, tip, layout.assets_dir(slug))
        main = Transcript.from_dict(_read_json(repo, tip, f"{src}/transcript.json"))
        earlier = _followups(repo, tip, src)
        k = len(earlier) + 1
        offset = 1 + max(s.id for t in (main, *earlier) for s in t.segments)
        sent_offset = 1 + max(s.id for s in post.sentences)
        shifted = _shift(transcript, offset)
        gaps, likely = open_roles(post)
        answers = answers_for(followup_post, open_roles=gaps + likely)
        judged = {r: ok for r, ok in confirmations(followup_post).items() if r in likely and r not in answers}
        stored = _stored_results(repo, tip, layout.assets_dir(slug))
        fresh = [r.to_dict() for r in experiment_results]
        fresh = [
            r for r in fresh if not r.get("error") and r.get("experiment") not in {x.get("experiment") for x in stored}
        ]
        if not answers and not judged and not fresh:
            open_now = ", ".join(gaps + likely) or "none"
            raise BlogRepoError(
                f"the follow-up answers none of {slug}'s parts (open: {open_now}); nothing changed",
                hint='name the part you answer as you speak ("the analogy is ...", "a trade-off: ...") and record again',
            )
        merged, filled, replaced, added = merge_answers(
            post, followup_post, answers, recording=k, seg_offset=offset, sent_offset=sent_offset, judged=judged
        )
        confirmed = [r for r, ok in judged.items() if ok]
        dropped = [r for r, ok in judged.items() if not ok]
        ours = _text(repo, tip, info.path)
        base = _generated(repo, tip=tip, path=info.path, src=src)
        front, _ = split_front_matter(base)
        provenance = _provenance_of(base)
        provenance["followups"] = [
            *(provenance.get("followups") or []),
            _followup_provenance(transcript, followup_post, k, offset),
        ]
        when = front.get("pubDatetime")
        theirs = render_post(
            post=merged,
            transcript=main,
            experiment_results=(),
            layout=layout,
            slug=slug,
            hardware=Hardware(**(provenance.get("hardware") or {"label": "unknown"})),
            provenance=provenance,
            now=when if isinstance(when, dt.datetime) else dt.datetime.now(dt.UTC),
            followups=(*earlier, shifted),
            stored_results=stored,
        )
        generated = _keep_measurements(theirs.markdown, base)
        text = merge3(ours=ours, base=base, theirs=generated, path=info.path, slug=slug)
        new_files: dict[str, bytes] = {}
        if fresh:  # the follow-up's experiments join the measurements, as a rerun's do
            # claims are quoted from the follow-up, at its own times (the detection ran on its transcript)
            new_stored, new_files = stage_experiment_files(
                fresh, layout=layout, slug=slug, segments=transcript.segments
            )
            section = render_measurements(stored_results=stored + new_stored, layout=layout, slug=slug)
            text, generated = replace_measurements(text, section), replace_measurements(generated, section)
        files = {
            **new_files,
            info.path: text.encode("utf-8"),
            f"{src}/post.json": _json_bytes(merged.to_dict()),
            f"{src}/followup-{k}.json": _json_bytes(shifted.to_dict()),
            f"{layout.assets_dir(slug)}/{GENERATED}": generated.encode("utf-8"),
        }
        measured = [str(r.get("experiment")) for r in fresh]
        roles = ", ".join(dict.fromkeys(filled + replaced + added + confirmed + dropped + measured))
        message = (
            f"Follow-up {k}: {roles}\n\nAnswers from the follow-up recording {_name(transcript.audio_path)} "
            f"(ramble2post): filled {', '.join(filled) or 'nothing'}; replaced guesses for "
            f"{', '.join(replaced) or 'nothing'}; added to {', '.join(added) or 'nothing'}; confirmed guesses for "
            f"{', '.join(confirmed) or 'nothing'}; dropped guesses for {', '.join(dropped) or 'nothing'}; "
            f"measured {', '.join(measured) or 'nothing new'}.\n\n"
            f"Ramble2post-Slug: {slug}\nRamble2post-Path: {info.path}\n"
        )
        commit = _commit(repo, branch=branch, parent=tip, files=files, message=message)
    return FollowUp(
        slug=slug,
        branch=branch,
        commit=commit,
        previous=tip,
        recording=k,
        filled=tuple(filled),
        replaced=tuple(replaced),
        added=tuple(added),
        confirmed=tuple(confirmed),
        dropped=tuple(dropped),
        measured=tuple(measured),
        author_notes=count_author_notes(text),
        verify_marks=count_verify_marks(text),
    )


def merge_answers(
    post: Post,
    followup: Post,
    answers: Mapping[str, list[dict[str, Any]]],
    *,
    recording: int,
    seg_offset: int,
    sent_offset: int,
    judged: Mapping[str, bool] | None = None,
) -> tuple[Post, list[str], list[str], list[str]]:
    """The draft's post with the answers in (ids shifted after the draft's); (post, filled, replaced, added).

    judged: roles whose guesses the speaker confirmed (True: they become plain) or rejected (False: removed).
    """
    d = post.to_dict()
    for role, ok in (judged or {}).items():
        guesses = d["layers"].get(role) or []
        d["layers"][role] = [{**it, "tier": "confident"} for it in guesses] if ok else []
    filled: list[str] = []
    replaced: list[str] = []
    added: list[str] = []
    for role, new in answers.items():
        items = [
            {
                **it,
                "sources": [s + seg_offset for s in it["sources"]],
                "sentences": [s + sent_offset for s in it["sentences"]],
                "recording": recording,
            }
            for it in new
        ]
        old = d["layers"].get(role) or []
        if not old:
            d["layers"][role] = items
            filled.append(role)
        elif all(it.get("tier") == "likely" for it in old) and any(it["tier"] == "confident" for it in items):
            d["layers"][role] = items
            replaced.append(role)
        else:
            d["layers"][role] = old + items
            added.append(role)
    d["gaps"] = [r for r in d.get("gaps") or [] if not d["layers"].get(r)]
    d["gaps"] = [*d["gaps"], *(r for r in judged or {} if not d["layers"].get(r) and r not in d["gaps"])]
    if d.get("hints"):  # a filled gap no longer needs its closest passage
        d["hints"] = {r: h for r, h in d["hints"].items() if not d["layers"].get(r)}
    d["sentences"] = [
        *d["sentences"],
        *(
            {**s.model_dump(), "id": s.id + sent_offset, "segments": [g + seg_offset for g in s.segments]}
            for s in followup.sentences
        ),
    ]
    d["followups"] = [
        *(d.get("followups") or []),
        {
            "recording": recording,
            "audio_sha256": followup.audio_sha256,
            "transcript_sha256": followup.transcript_sha256,
        },
    ]
    return validate_post(d), filled, replaced, added


def merge3(*, ours: str, base: str, theirs: str, path: str, slug: str) -> str:
    """``git merge-file`` of the author's version and the new render over the last generated one.

    A clash where the new render only adds lines before or after the generated ones the author
    edited (a bullet appended under the author's edited last bullet) keeps the author's lines and
    adds the new ones: nothing of theirs is overwritten. Any other clash raises BlogRepoError.
    """
    with tempfile.TemporaryDirectory(prefix="ramble2post-followup-") as tmp:
        names = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = Path(tmp) / name
            p.write_text(text, encoding="utf-8", newline="")
            names.append(str(p))
        proc = subprocess.run(
            ["git", "merge-file", "-p", "--diff3", "--marker-size", str(_MARKER), *_LABELS, *names],
            capture_output=True,
            check=False,
            cwd=tmp,  # outside any repository: no repo config applies
        )
    if proc.returncode < 0 or proc.returncode > 127:
        raise BlogRepoError(f"git merge-file failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    out, clashes = _resolve_additions(proc.stdout.decode("utf-8"))
    if clashes:
        raise BlogRepoError(
            f"the follow-up would overwrite text you edited in {path} ({len(clashes)} place(s): "
            f"{', '.join(dict.fromkeys(clashes))}); nothing changed",
            hint="undo or move your edit there, or finish that part by hand and delete its note; "
            f"then commit on drafts/{slug} and run the follow-up again",
        )
    return out


_MARKER = 31  # conflict marker length: no Markdown line of a post starts with 31 of '<', '|', '=' or '>'
_LABELS = ("-L", "yours", "-L", "generated", "-L", "follow-up")


def _resolve_additions(merged: str) -> tuple[str, list[str]]:
    """(text, sections that truly clash): additions-only clashes resolved as the author's lines plus the new."""
    start, mid_base, mid, end = ("<" * _MARKER, "|" * _MARKER, "=" * _MARKER, ">" * _MARKER)
    out: list[str] = []
    clashes: list[str] = []
    heading = "the front matter"
    lines = merged.splitlines(keepends=True)
    k = 0
    while k < len(lines):
        line = lines[k]
        if not line.startswith(start):
            if m := _HEADING.match(line.rstrip("\n")):
                heading = f"“{m.group(1).strip()}”"
            out.append(line)
            k += 1
            continue
        parts: dict[str, list[str]] = {"ours": [], "base": [], "theirs": []}
        part = "ours"
        k += 1
        while k < len(lines) and not lines[k].startswith(end):
            tag = lines[k]
            if tag.startswith(mid_base):
                part = "base"
            elif tag.startswith(mid):
                part = "theirs"
            else:
                parts[part].append(tag)
            k += 1
        k += 1  # the end marker
        ours, base, theirs = parts["ours"], parts["base"], parts["theirs"]
        n = len(base)
        if n and theirs[:n] == base:  # lines appended after what the author edited
            out += ours + theirs[n:]
        elif n and theirs[len(theirs) - n :] == base:  # lines put before it
            out += theirs[: len(theirs) - n] + ours
        else:
            clashes.append(heading)
            out += ours
    return "".join(out), clashes


def _keep_measurements(rendered: str, base: str) -> str:
    """The new render with the generated measurements section of ``base`` (a rerun's update stays the author's side)."""
    a, b = base.find(MEASUREMENTS_START), base.find(MEASUREMENTS_END)
    x, y = rendered.find(MEASUREMENTS_START), rendered.find(MEASUREMENTS_END)
    if min(a, b, x, y) < 0:
        return rendered
    return rendered[:x] + base[a:b] + rendered[y:]


def _shift(t: Transcript, offset: int) -> Transcript:
    segs = tuple(dataclasses.replace(s, id=s.id + offset) for s in t.segments)
    return dataclasses.replace(t, segments=segs)


def _followup_provenance(t: Transcript, post: Post, k: int, offset: int) -> dict[str, Any]:
    llm = post.llm or {}
    return {
        "recording": k,
        "audio": _name(t.audio_path),
        "audio_sha256": t.audio_sha256,
        "transcript_sha256": post.transcript_sha256,
        "segment_id_offset": offset,
        "whisper": {"model": t.model.name, "sha256": t.model.sha256, "device": t.device},
        "llm": {x: llm.get(x) for x in ("name", "sha256", "quantization") if x in llm} or None,
        "timing_s": {"transcribe": t.timing, "structure": post.timing},
    }


def _provenance_of(markdown: str) -> dict[str, Any]:
    m = _PROVENANCE.search(markdown)
    try:
        data = yaml.safe_load(m.group(2)) if m else None
    except yaml.YAMLError:
        data = None
    return data if isinstance(data, dict) else {}


def _generated(repo: gitops.git.Repo, *, tip: str, path: str, src: str) -> str:
    """The draft as ramble2post last generated it: the stored copy, else the branch's first commit."""
    stored = gitops.read_blob(repo, tip, f"{src.rsplit('/', 1)[0]}/{GENERATED}")
    if stored is not None:
        return stored.decode("utf-8")
    base = gitops.base_sha(repo, gitops.default_branch(repo))
    mb = repo.git.merge_base(base, tip)
    first = repo.git.rev_list("--first-parent", "--reverse", f"{mb}..{tip}").split()
    if not first:
        raise BlogRepoError(f"the draft branch of {path} has no commit of its own")
    return _text(repo, first[0], path)


def _followups(repo: gitops.git.Repo, tip: str, src: str) -> list[Transcript]:
    out = []
    k = 1
    while (raw := gitops.read_blob(repo, tip, f"{src}/followup-{k}.json")) is not None:
        out.append(Transcript.from_dict(json.loads(raw)))
        k += 1
    return out


def measured_experiments(blog_repo: Path | str | None, *, slug: str, posts_dir: str | None = None) -> set[str]:
    """Experiments draft ``slug`` already carries results of (a follow-up does not run them again)."""
    repo = open_repo_for(blog_repo)
    info = find_post(repo, slug=slug, posts_dir=posts_dir)
    layout = detect_layout(repo, base=gitops.base_sha(repo, gitops.default_branch(repo)), posts_dir=posts_dir)
    return {str(r.get("experiment")) for r in _stored_results(repo, info.commit, layout.assets_dir(slug))}


def _stored_results(repo: gitops.git.Repo, commit: str, assets: str) -> list[dict[str, Any]]:
    out = []
    for p in gitops.list_files(repo, commit, f"{assets}/results"):
        if p.endswith(".json"):
            out.append(_read_json(repo, commit, p))
    return sorted(out, key=lambda r: str(r.get("started_at", "")))


def _read_post(repo: gitops.git.Repo, commit: str, assets: str) -> Post:
    return validate_post(_read_json(repo, commit, f"{assets}/source/post.json"))


def _read_json(repo: gitops.git.Repo, commit: str, path: str) -> dict[str, Any]:
    raw = gitops.read_blob(repo, commit, path)
    if raw is None:
        raise BlogRepoError(f"{path} is missing on the draft branch: a follow-up needs the draft's source records")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise BlogRepoError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise BlogRepoError(f"{path} is not a JSON object")
    return data


def _text(repo: gitops.git.Repo, commit: str, path: str) -> str:
    raw = gitops.read_blob(repo, commit, path)
    if raw is None:
        raise BlogRepoError(f"{path} is missing from commit {commit[:12]}")
    return raw.decode("utf-8")


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path


def _commit(repo: gitops.git.Repo, *, branch: str, parent: str, files: Mapping[str, bytes], message: str) -> str:
    """Commit on top of ``parent`` and move ``branch`` there only if it is still at ``parent``."""
    if gitops.branch_checked_out_elsewhere(repo, branch):
        raise BlogRepoError(f"{branch} is checked out in another worktree: not moving it under you")
    checked_out = gitops.current_branch(repo) == branch
    if checked_out and not gitops.worktree_is_clean(repo):
        raise BlogRepoError(
            f"{branch} is checked out with uncommitted changes: the follow-up would not see them",
            hint="commit your edits on the branch (or stash them), then run the follow-up again",
        )
    tree = gitops.build_tree(repo, parent, files)
    commit = gitops.commit_tree(repo, tree, [parent], message)
    gitops._git(repo, "update-ref", "-m", "ramble2post: follow-up", f"refs/heads/{branch}", commit, parent)
    if checked_out:
        gitops._git(repo, "read-tree", "-m", "-u", parent, commit)
    return commit
