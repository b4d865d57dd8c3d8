"""`ramble2post follow-up SLUG AUDIO`: a second recording fills a draft's open parts, the author's edits kept.

Fast tests use hand-made records (no model); the acceptance test at the end speaks both recordings
with espeak-ng and runs the real commands (Whisper, the structure stage with SmolLM2, git, Astro).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_blog_common import HARDWARE, git, make_post, make_repo, make_transcript, snapshot, transcript_of

from ramble2post.cli.main import cli
from ramble2post.publish.draft import create_draft, find_post, publish_draft
from ramble2post.publish.followup import follow_up_draft, open_roles
from ramble2post.publish.gitops import open_repo
from ramble2post.publish.render import AUTHOR_MARK
from ramble2post.structure.schema import Post

ANALOGY = "The analogy is a bus that costs the same to run with one passenger or with forty passengers."
TRADEOFF = "The trade-off is latency: each request waits for the whole batch to finish before it returns."
# the two sentences the author rewrites by hand (speaker items of the first draft)
EDITS = {
    "So the idea is that batching makes decoding nearly free.": "Batching, I claim, makes decoding almost free.",
    "Decoding is memory bound, you read all the weights for one token.": (
        "Decoding is memory-bound: every token reads *all* the weights — my edit, keep it."
    ),
}


def followup_post(texts: list[str], *, placed: dict[str, list[int]] | None = None) -> tuple[Post, object]:
    """A follow-up transcript and the Post the structure stage would make of it (sentence k = segment k)."""
    t = transcript_of(texts, seconds=6.0)
    t = type(t)(**{**t.__dict__, "audio_path": "/rec/followup.m4a", "audio_sha256": "f" * 64})
    layers: dict[str, list[dict]] = {r: [] for r in ("reason", "example", "analogy", "connections", "tradeoffs")}
    for role, ids in (placed or {}).items():
        layers[role] = [
            {
                "text": texts[i],
                "origin": "speaker",
                "sources": [i],
                "verified": True,
                "sentences": [i],
                "tier": "likely",
            }
            for i in ids
        ]
    post = {
        "schema_version": 2,
        "transcript_sha256": "e" * 64,
        "audio_sha256": "f" * 64,
        "title": {"text": "x", "origin": "speaker", "sources": [0]},
        "description": "x",
        "tags": [],
        "layers": {"focus": [{"text": texts[0], "origin": "speaker", "sources": [0], "verified": True}], **layers},
        "sentences": [
            {"id": i, "text": x, "segments": [i], "start": 6.0 * i, "end": 6.0 * i + 5.5} for i, x in enumerate(texts)
        ],
        "verification": {"items": 1, "passed": 1, "repaired": 0, "replaced": 0, "flagged": 0, "details": []},
        "llm": None,
        "prompts": {},
        "timing": {},
    }
    return Post.from_dict(post), t


@pytest.fixture
def drafted(tmp_path):
    """A draft lacking an analogy and a trade-off; the author rewrote two sentences and committed on its branch."""
    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(gaps=("analogy", "tradeoffs"), unverified=0),
        transcript=make_transcript(),
        experiment_results=[],
        blog_repo=root,
        hardware=HARDWARE,
    )
    text = git(root, "show", f"{d.branch}:{d.path}")
    for old, new in EDITS.items():
        assert text.count(old + " *(said") == 1
        text = text.replace(old + " *(said", new + " *(said")
    edited = commit_on_branch(root, d.branch, d.path, text, "my edits")
    return root, d, edited


def commit_on_branch(root: Path, branch: str, path: str, text: str, message: str) -> str:
    """Commit ``text`` as ``path`` on ``branch`` as the author would from a checkout (here: a worktree)."""
    wt = root.parent / f"wt-{abs(hash(message)) % 10000}"
    git(root, "worktree", "add", "-q", str(wt), branch)
    (wt / path).write_text(text, encoding="utf-8")
    git(wt, "commit", "-qam", message)
    git(root, "worktree", "remove", str(wt))
    return git(root, "rev-parse", branch).strip()


def test_followup_fills_both_notes_and_keeps_the_authors_sentences(drafted):
    root, d, edited = drafted
    before = git(root, "show", f"{d.branch}:{d.path}")
    snap = snapshot(root)
    post, t = followup_post(["Okay, two things I forgot to say.", ANALOGY, TRADEOFF])
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert (res.filled, res.replaced, res.recording) == (("analogy", "tradeoffs"), (), 1)
    assert git(root, "rev-parse", f"{res.commit}^").strip() == edited  # one commit on top of the author's
    after = git(root, "show", f"{d.branch}:{d.path}")
    for new in EDITS.values():
        assert before.count(new + " *(said") == after.count(new + " *(said") == 1  # byte for byte
    assert before.count(AUTHOR_MARK) == 2 and after.count(AUTHOR_MARK) == 0
    # each answer has its own time stamp and names its recording
    assert (
        "bus that costs the same to run with one passenger or with forty passengers. *(said at 0:06 in follow-up 1)*"
        in after
    )
    assert "- The trade-off is latency" in after and "*(said at 0:12 in follow-up 1)*" in after
    # both recordings in the Human view, both transcripts in the Ramble view, both hashes in provenance
    human = after.split('data-view="human"')[1].split("</section>")[0]
    assert "Recordings: the ramble (ramble.m4a, 0:20), follow-up 1 (followup.m4a, 0:18)." in human
    assert "An analogy, said at 0:06–0:12 in follow-up 1" in human
    ramble = after.split('data-view="ramble"')[1].split("</section>")[0]
    assert "### Follow-up 1: followup.m4a (0:18)" in ramble and "It's like a bus" in ramble
    assert "Okay, two things I forgot to say." in ramble
    prov = after.split('class="r2p-provenance"')[1]
    assert "audio_sha256: " + "a" * 64 in prov and "audio_sha256: " + "f" * 64 in prov
    assert "followup_audio_sha256:" in after.split("\n---\n")[0]
    # generated regions only: the diff from the author's version touches no line the author wrote
    diff = git(root, "diff", "-U0", edited, res.commit, "--", d.path)
    assert not any(new in line for line in diff.splitlines() for new in EDITS.values() if line.startswith("-"))
    assert snapshot(root) == snap  # the user's checkout is untouched
    info = find_post(open_repo(root), slug=d.slug)
    assert (info.author_notes, info.commit) == (0, res.commit)
    out = CliRunner().invoke(cli, ["drafts", "--blog-repo", str(root)])
    assert "NOTE" not in out.output


def test_second_followup_adds_after_the_first(drafted):
    root, d, _ = drafted
    post, t = followup_post(["Okay, two things I forgot to say.", ANALOGY, TRADEOFF])
    follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    post2, t2 = followup_post(
        ["One more thing.", "Another analogy is a ferry that leaves only when it is full of cars."]
    )
    res = follow_up_draft(slug=d.slug, transcript=t2, followup_post=post2, blog_repo=root)
    assert (res.recording, res.added, res.filled) == (2, ("analogy",), ())
    text = git(root, "show", f"{d.branch}:{d.path}")
    assert text.index("bus that costs") < text.index("ferry that leaves") < text.index("## How it connects")
    assert "in follow-up 2)*" in text and "### Follow-up 2: followup.m4a" in text
    for new in EDITS.values():
        assert text.count(new + " *(said") == 1


def test_a_likely_guess_is_replaced_by_a_named_answer(tmp_path):
    root = make_repo(tmp_path / "blog")
    pj = make_post(gaps=("tradeoffs",), unverified=0).to_dict()
    pj["layers"]["analogy"][0]["tier"] = "likely"
    d = create_draft(
        post=Post.from_dict(pj), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
    )
    assert open_roles(Post.from_dict(pj)) == (["tradeoffs"], ["analogy"])
    post, t = followup_post(["About the bus.", ANALOGY])
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert res.replaced == ("analogy",) and res.filled == ()
    text = git(root, "show", f"{d.branch}:{d.path}")
    section = text.split("## An analogy")[1].split("## How it connects")[0]
    assert "It's like a bus that costs the same" not in section and "in follow-up 1)*" in section
    assert res.verify_marks == find_post(open_repo(root), slug=d.slug).verify_marks


def _draft_with_a_guess(tmp_path, role: str = "analogy"):
    root = make_repo(tmp_path / "blog")
    pj = make_post(gaps=("tradeoffs",), unverified=0).to_dict()
    pj["layers"][role][0]["tier"] = "likely"
    d = create_draft(
        post=Post.from_dict(pj), transcript=make_transcript(), experiment_results=[], blog_repo=root, hardware=HARDWARE
    )
    return root, d


def test_a_confirmed_guess_becomes_plain(tmp_path):
    root, d = _draft_with_a_guess(tmp_path)
    before = find_post(open_repo(root), slug=d.slug).verify_marks
    post, t = followup_post(["Okay, checking the draft.", "Yes, the analogy is right."])
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert res.confirmed == ("analogy",) and res.replaced == () and res.filled == ()
    text = git(root, "show", f"{d.branch}:{d.path}")
    section = text.split("## An analogy")[1].split("## How it connects")[0]
    assert "It's like a bus that costs the same" in section and "VERIFY" not in section  # the speaker's words, plain
    assert "Yes, the analogy is right" not in section  # the verdict is not itself a passage
    assert res.verify_marks == before - 1


def test_a_rejected_guess_goes_and_its_note_comes_back(tmp_path):
    root, d = _draft_with_a_guess(tmp_path)
    post, t = followup_post(["Okay, checking the draft.", "No, the analogy is wrong."])
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert res.dropped == ("analogy",)
    section = git(root, "show", f"{d.branch}:{d.path}").split("## An analogy")[1].split("## How it connects")[0]
    assert "bus that costs" not in section and AUTHOR_MARK in section


def test_a_long_sentence_naming_the_part_is_an_answer_not_a_verdict(tmp_path):
    root, d = _draft_with_a_guess(tmp_path)
    post, t = followup_post(["About the bus.", ANALOGY])  # "The analogy is a bus that ...": content, not "is right"
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert res.replaced == ("analogy",) and res.confirmed == ()


def test_an_experiment_the_followup_refers_to_joins_the_measurements(tmp_path):
    """A follow-up that claims something the draft never measured: its result is added, its claim quoted."""
    import dataclasses

    from ramble2post.experiments.base import Result
    from ramble2post.experiments.detect import detect_experiments
    from ramble2post.experiments.pipeline_hook import RunOutcome

    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(gaps=("analogy",), unverified=0),
        transcript=make_transcript(),
        experiment_results=[],
        blog_repo=root,
        hardware=HARDWARE,
    )
    claim = "And speculative decoding, people say it is two to three times faster with exactly the same output."
    post, t = followup_post(["One more thing.", ANALOGY, claim])
    [det] = detect_experiments(transcript=t, semantic=False)
    data = Path(__file__).parent / "data" / "results" / "speculative-decoding.json"
    result = dataclasses.replace(Result.from_dict(json.loads(data.read_text())), plots=())
    run = RunOutcome(det.experiment, "ok", result=result, result_dir=str(tmp_path), detection=det)
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root, experiment_results=[run])
    assert res.measured == ("speculative-decoding",) and res.filled == ("analogy",)
    text = git(root, "show", f"{d.branch}:{d.path}")
    measured = text.split("## Measured on this machine")[1]
    assert "two to three times faster" in measured and "**Verdict: holds in part.**" in measured
    files = git(root, "ls-tree", "-r", "--name-only", d.branch)
    assert re.search(r"results/speculative-decoding--.+\.json", files)


def test_a_bullet_added_under_the_authors_edited_bullet_is_no_conflict(tmp_path):
    """Bullets are consecutive lines: an addition right after an edited one touches it, but overwrites nothing."""
    root = make_repo(tmp_path / "blog")
    d = create_draft(
        post=make_post(gaps=("analogy",), unverified=0),
        transcript=make_transcript(),
        experiment_results=[],
        blog_repo=root,
        hardware=HARDWARE,
    )
    text = git(root, "show", f"{d.branch}:{d.path}")
    old = next(ln for ln in text.splitlines() if ln.startswith("- Bigger batches add latency per request."))
    mine = "- Bigger batches add latency per request; I measured 40 ms more at batch 8 (my words)."
    commit_on_branch(root, d.branch, d.path, text.replace(old, mine), "my bullet")
    post, t = followup_post(["Okay, one thing I forgot to say.", TRADEOFF])
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert res.added == ("tradeoffs",)
    after = git(root, "show", f"{d.branch}:{d.path}")
    assert f"{mine}\n- The trade-off is latency" in after and old not in after


def test_conflict_with_a_hand_edit_stops_and_changes_nothing(drafted):
    root, d, edited = drafted
    text = git(root, "show", f"{d.branch}:{d.path}")
    note = next(line for line in text.splitlines() if line.startswith("> " + AUTHOR_MARK) and "analogy" in line)
    tip = commit_on_branch(
        root, d.branch, d.path, text.replace(note, "A KV cache is like a notebook, I think."), "mine"
    )
    snap, refs = snapshot(root), git(root, "for-each-ref")
    post, t = followup_post(["Okay, two things I forgot to say.", ANALOGY, TRADEOFF])
    with pytest.raises(Exception) as e:
        follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert "would overwrite text you edited" in str(e.value) and "“An analogy”" in str(e.value)
    assert git(root, "rev-parse", d.branch).strip() == tip and git(root, "for-each-ref") == refs
    assert snapshot(root) == snap and edited != tip


def test_a_followup_that_answers_nothing_changes_nothing(drafted):
    root, d, edited = drafted
    post, t = followup_post(["Okay so nothing new here really.", "I just wanted to say hello to everyone."])
    with pytest.raises(Exception, match="answers none of"):
        follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert git(root, "rev-parse", d.branch).strip() == edited


def test_checked_out_draft_branch_is_moved_along_when_clean_refused_when_dirty(drafted):
    root, d, edited = drafted
    git(root, "switch", "-q", d.branch)
    post, t = followup_post(["Okay, two things I forgot to say.", ANALOGY, TRADEOFF])
    (root / d.path).write_text((root / d.path).read_text() + "\nan unsaved thought\n")
    with pytest.raises(Exception, match="uncommitted changes"):
        follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert git(root, "rev-parse", d.branch).strip() == edited
    git(root, "checkout", "-q", "--", d.path)
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert git(root, "symbolic-ref", "HEAD").strip() == f"refs/heads/{d.branch}"
    assert git(root, "status", "--porcelain") == ""  # files and index now at the follow-up's commit
    assert (root / d.path).read_text() == git(root, "show", f"{res.commit}:{d.path}")


def test_followup_after_a_rerun_keeps_the_rerun_measurements(tmp_path):
    from test_rerun import FakeRunner, _stored_draft

    from ramble2post.publish.rerun import rerun_post

    root, d = _stored_draft(tmp_path)
    rerun_post(slug=d.slug, blog_repo=root, device="cpu", runner=FakeRunner(), say=lambda m: None)
    before = git(root, "show", f"{d.branch}:{d.path}")
    section = before[
        before.index("<!-- ramble2post:measurements -->") : before.index("<!-- /ramble2post:measurements -->")
    ]
    assert "Side by side, one column per machine" in section
    post, t = followup_post(["Okay, one thing I forgot to say.", TRADEOFF])
    res = follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    after = git(root, "show", f"{res.commit}:{d.path}")
    assert section in after and after.count("<!-- ramble2post:measurements -->") == 1
    assert res.added == ("tradeoffs",) and "The trade-off is latency" in after


def test_interrupt_before_the_ref_moves_leaves_nothing(drafted, monkeypatch):
    from ramble2post.publish import gitops

    root, d, edited = drafted
    snap, refs = snapshot(root), git(root, "for-each-ref")

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(gitops, "commit_tree", interrupted)
    post, t = followup_post(["Okay, two things I forgot to say.", ANALOGY, TRADEOFF])
    with pytest.raises(KeyboardInterrupt):
        follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    assert git(root, "for-each-ref") == refs and snapshot(root) == snap
    assert not (root / ".git" / gitops.LOCK_NAME).exists()


def test_hostile_followup_text_stays_inert(drafted):
    root, d, _ = drafted
    hostile = "The analogy is <script>alert(1)</script> a [link](file:///etc/passwd) bus with many seats."
    post, t = followup_post(["Okay.", hostile])
    follow_up_draft(slug=d.slug, transcript=t, followup_post=post, blog_repo=root)
    after = git(root, "show", f"{d.branch}:{d.path}")
    assert "<script>" not in after and "](file:" not in after
    assert "\\<script\\>alert\\(1\\)" in after


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("The analogy is a notebook you only write once.", "analogy"),
        ("Here is a trade off: memory for speed.", "tradeoffs"),
        ("The tradeoff is memory.", "tradeoffs"),
        ("For example, a prompt of a thousand tokens.", "example"),
        ("The reason is that attention needs every key.", "reason"),
        ("It connects to paging in operating systems.", "connections"),
        ("For example, the trade-off shows at batch eight.", None),  # names two parts: starts neither
        ("A KV cache is like a notebook.", None),  # not named: left to the structure stage
    ],
)
def test_named_role(text, role):
    from ramble2post.structure.answers import named_role

    assert named_role(text) == role


def _cli(root: Path, *args: str):
    return CliRunner().invoke(cli, ["follow-up", *args, "--blog-repo", str(root), "--llm", "none"])


def _one_error(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert res.exit_code != 0 and len(lines) == 1, res.output
    return lines[0]


def test_unknown_slug_unreadable_audio_and_published_post_each_fail_cleanly(drafted, tmp_path):
    root, d, edited = drafted
    audio = tmp_path / "followup.m4a"
    audio.write_text("not audio at all\n")
    snap, refs = snapshot(root), git(root, "for-each-ref")
    assert "no draft or post named 'no-such-post'" in _one_error(_cli(root, "no-such-post", str(audio)))
    assert "audio file not found" in _one_error(_cli(root, d.slug, str(tmp_path / "missing.m4a")))
    err = _one_error(_cli(root, d.slug, str(audio)))
    assert "ffmpeg" in err or "audio" in err, err
    assert snapshot(root) == snap and git(root, "for-each-ref") == refs
    git(root, "worktree", "add", "-q", str(tmp_path / "wt"), d.branch)  # so publish keeps the draft branch
    publish_draft(open_repo(root), slug=d.slug, force=True)
    assert git(root, "rev-parse", d.branch).strip() == edited
    refs = git(root, "for-each-ref")
    assert "already published" in _one_error(_cli(root, d.slug, str(audio)))
    git(root, "worktree", "remove", "--force", str(tmp_path / "wt"))
    git(root, "branch", "-q", "-D", d.branch)  # as publish leaves it when the branch is not checked out
    refs = git(root, "for-each-ref")
    assert "already published" in _one_error(_cli(root, d.slug, str(audio)))
    assert git(root, "for-each-ref") == refs


def test_cli_conflict_is_one_error_line_and_the_branch_stays(drafted, tmp_path, monkeypatch):
    """The command itself, its two model stages stubbed: a hand-written analogy in the note's place conflicts."""
    import ramble2post.structure.stage as structure_stage
    import ramble2post.transcribe.stage as transcribe_stage

    root, d, _ = drafted
    text = git(root, "show", f"{d.branch}:{d.path}")
    note = next(line for line in text.splitlines() if line.startswith("> " + AUTHOR_MARK) and "analogy" in line)
    tip = commit_on_branch(root, d.branch, d.path, text.replace(note, "My own analogy: a shared taxi."), "mine")
    post, t = followup_post(["Okay, two things I forgot to say.", ANALOGY, TRADEOFF])
    monkeypatch.setattr(transcribe_stage, "transcribe_file", lambda **kw: t)
    monkeypatch.setattr(structure_stage, "structure_transcript", lambda **kw: post)
    audio = tmp_path / "followup.m4a"
    audio.write_bytes(b"stub")
    snap, refs = snapshot(root), git(root, "for-each-ref")
    err = _one_error(_cli(root, d.slug, str(audio)))
    assert "would overwrite text you edited" in err and "An analogy" in err, err
    assert git(root, "rev-parse", d.branch).strip() == tip and git(root, "for-each-ref") == refs
    assert snapshot(root) == snap
    # with the hand-written analogy kept, the trade-off alone goes in when the speaker answers only that
    post, t = followup_post(["Okay, one thing I forgot to say.", TRADEOFF])
    ok = _cli(root, d.slug, str(audio))
    assert ok.exit_code == 0, ok.output
    after = git(root, "show", f"{d.branch}:{d.path}")
    assert "My own analogy: a shared taxi." in after and "The trade-off is latency" in after


def test_help_has_an_example():
    res = CliRunner().invoke(cli, ["follow-up", "--help"])
    assert res.exit_code == 0 and "ramble2post follow-up my-post-slug followup.m4a" in res.output
    assert "follow-up" in CliRunner().invoke(cli, ["--help"]).output


# ---------------------------------------------------------------- acceptance: spoken, end to end

RAMBLE = (
    "Today I want to explain the KV cache in transformer inference. "
    "When a language model generates text, it produces one token at a time. "
    "For every new token, attention needs the keys and values of all the earlier tokens. "
    "The KV cache stores those keys and values in memory, so the model does not compute them again. "
    "Without the cache, every step would compute the whole prefix from scratch. "
    "So the KV cache is what makes generating long answers fast."
)
FOLLOW_UP = (
    "I forgot two parts, so here they are. "
    "The analogy is a notebook. You write each word down once, and later you only read it back "
    "instead of working it out again. "
    "The trade-off is memory. The cache grows with every token, so long contexts fill the GPU memory "
    "and leave less room for a bigger batch."
)


def speak(text: str, out: Path) -> Path:
    """``text`` spoken by espeak-ng, as AAC in an .m4a (what a phone's voice memo app records)."""
    from ramble2post.transcribe.audio import find_ffmpeg

    wav = out.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
    subprocess.run(
        [find_ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "64k", str(out)], check=True
    )
    return out


def _notes(root: Path) -> dict[str, int]:
    res = CliRunner().invoke(cli, ["drafts", "--blog-repo", str(root), "--json"])
    assert res.exit_code == 0, res.output
    return {d["slug"]: d["author_notes"] for d in json.loads(res.output)}


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """The ramble and its follow-up, spoken with espeak-ng (made once per module)."""
    folder = tmp_path_factory.mktemp("spoken")
    return speak(RAMBLE, folder / "ramble.m4a"), speak(FOLLOW_UP, folder / "followup.m4a")


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng (apt-get install espeak-ng)")
def test_spoken_followup_fills_the_notes_of_a_spoken_draft(spoken, tmp_path, monkeypatch):
    """Record -> draft -> hand edits -> follow-up -> drafts -> Astro build, with the real commands."""
    from ramble2post.publish import site
    from ramble2post.publish.blog import create_blog_repo

    monkeypatch.setenv("RAMBLE2POST_LLM", "smollm2")  # the small model: the answers are named, not judged
    ramble, followup = spoken
    root = tmp_path / "blog"
    create_blog_repo(root)
    made = CliRunner().invoke(cli, [str(ramble), "--blog-repo", str(root), "--experiments", "none", "--json"])
    assert made.exit_code == 0, made.output
    d = json.loads(made.output.strip().splitlines()[-1])
    slug, branch, path = d["slug"], d["branch"], d["path"]
    text = git(root, "show", f"{branch}:{path}")
    assert "No analogy found" in text and "No trade-off found" in text, text
    assert _notes(root)[slug] == d["author_notes"] >= 2
    # the author rewrites the point by hand and writes the reason in place of its note, and commits
    point = next(ln for ln in text.splitlines() if " *(said at " in ln and not ln.startswith(">"))
    reason = next(ln for ln in text.splitlines() if ln.startswith("> ") and "No reason found" in ln)
    mine = [
        point.split(" *(said at ")[0] + ", as I would put it by hand." + " *(said at " + point.split(" *(said at ")[1],
        "Recomputing every earlier token's keys and values at each step is quadratic work — my words, keep them.",
    ]
    text = text.replace(point, mine[0]).replace(reason, mine[1])
    edited = commit_on_branch(root, branch, path, text, "hand edits")
    snap, notes = snapshot(root), _notes(root)[slug]

    res = CliRunner().invoke(cli, ["follow-up", slug, str(followup), "--blog-repo", str(root)])
    assert res.exit_code == 0, res.output
    assert git(root, "rev-parse", f"{branch}^").strip() == edited
    after = git(root, "show", f"{branch}:{path}")
    for new in mine:
        assert after.count(new) == 1  # the author's sentences, byte for byte
    assert "No analogy found" not in after and "No trade-off found" not in after
    analogy = after.split("## An analogy")[1].split("\n## ")[0]
    assert "notebook" in analogy.lower() and "in follow-up 1)*" in analogy, analogy
    tradeoffs = after.split("## Trade-offs")[1].split("<!-- ramble2post:measurements -->")[0]
    assert "memory" in tradeoffs.lower() and "in follow-up 1)*" in tradeoffs, tradeoffs
    assert _notes(root)[slug] == notes - 2
    assert "Recordings: the ramble (ramble.m4a" in after and "### Follow-up 1: followup.m4a" in after
    assert snapshot(root) == snap  # the user's checkout and current branch are untouched

    if site.node_tools() is None:
        pytest.skip("node and npm not installed: the Astro build of the updated draft is not checked")
    cache = os.environ.get(
        "RAMBLE2POST_TEST_NODE_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "node-modules")
    )
    monkeypatch.setenv(site.NODE_CACHE_ENV, cache)
    built = CliRunner().invoke(cli, ["preview", slug, "--blog-repo", str(root)])
    assert built.exit_code == 0, built.output
    page = Path(re.search(r"^Page: (.+)$", built.output, re.M).group(1)).read_text(encoding="utf-8")
    assert "notebook" in page and "follow-up 1" in page
