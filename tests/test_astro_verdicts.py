"""Claims checked against the measurement on built Astro pages: the bundled 13-minute ramble and two
rambles of our own (speculative decoding, batching), each with a real stored result of its experiment.

Each measurement section shows the speaker's claim quoted with its time, a plain verdict and the
reason; a claim that does not hold carries a VERIFY mark, counted in the "Review left" bar.
Needs node and npm (skips cleanly without them).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_astro_site import node_cache  # noqa: F401 - the session's npm cache fixture
from test_blog_common import HARDWARE, git, post_json

from ramble2post.cli.main import cli
from ramble2post.experiments.base import Result, get
from ramble2post.experiments.detect import detect_experiments
from ramble2post.experiments.pipeline_hook import RunOutcome
from ramble2post.publish import site
from ramble2post.publish.blog import create_blog_repo
from ramble2post.publish.draft import create_draft
from ramble2post.records import Transcript
from ramble2post.structure.schema import Post

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(site.node_tools() is None, reason="node and npm not installed"),
]
DATA = Path(__file__).resolve().parent / "data"
RAMBLES = {  # gold ramble -> (experiment, a verdict its page must show)
    "speculative-decoding": ("speculative-decoding", "does not hold here"),
    "batching": ("batching-speedup", "holds here"),
    "explain-format": ("kv-cache-growth", "holds here"),
}


@pytest.mark.parametrize("ramble", sorted(RAMBLES))
def test_each_measurement_section_shows_claim_verdict_and_reason(ramble, tmp_path, node_cache):  # noqa: F811
    name, verdict = RAMBLES[ramble]
    transcript = Transcript.from_dict(json.loads((DATA / "structure_gold" / ramble / "transcript.json").read_text()))
    [detection] = detect_experiments(transcript=transcript, experiments=[get(name)])
    result = Result.from_dict(json.loads((DATA / "results" / f"{name}.json").read_text()))
    result = dataclasses.replace(result, plots=())
    outcome = RunOutcome(name, "ok", result=result, result_dir=str(tmp_path), detection=detection)
    root = tmp_path / "blog"
    create_blog_repo(root)
    d = create_draft(
        post=Post.from_dict(post_json(title=f"{ramble} on my machine")),
        transcript=transcript,
        experiment_results=[outcome],
        blog_repo=root,
        hardware=HARDWARE,
    )
    res = CliRunner().invoke(
        cli, ["preview", d.slug, "--blog-repo", str(root)], env={"RAMBLE2POST_HOME": str(tmp_path)}
    )
    assert res.exit_code == 0, res.output
    page = Path(re.search(r"^Page: (.+)$", res.output, re.M).group(1)).read_text()
    section = page[page.index("Measured on this machine") : page.index('<section class="r2p-view" data-view="human"')]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section))
    assert re.search(r"“[^”]{20,}” — the speaker, at \d+:\d\d", text), text[:600]  # the claim, quoted with its time
    assert f"Verdict: {verdict}." in text and "Claimed:" in text and "measured:" in text and "Why:" in text
    md = git(root, "show", f"{d.branch}:{d.path}")
    fails = len(re.findall(r"did not hold on \d+ machine", md))
    marks = int(re.search(r"^\s*verify_marks: (\d+)$", md, re.M).group(1))
    assert marks >= fails  # every claim that did not hold is counted in the "Review left" bar
    if verdict == "does not hold here":
        assert fails >= 1 and "Review left:" in page
