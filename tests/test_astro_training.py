"""A ramble that talks about tensor cores and LoRA: both experiments run for real (quick), and the
built Astro page carries each measurement next to the claim it tests.

Needs node and npm (skips cleanly without them); slow: two real quick runs and an Astro build.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_astro_site import node_cache  # noqa: F401 - the session's npm cache fixture
from test_blog_common import HARDWARE, item, post_json, transcript_of

from ramble2post.cli.main import cli
from ramble2post.experiments.pipeline_hook import run_detected
from ramble2post.publish import site
from ramble2post.publish.blog import create_blog_repo
from ramble2post.publish.draft import create_draft
from ramble2post.structure.schema import Post

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(site.node_tools() is None, reason="node and npm not installed"),
]

TEXTS = [
    "So today I want to think out loud about what my hardware can actually do.",
    "Honestly all the teraflops on the spec sheet are the tensor cores doing bf16 matmuls, "
    "and decoding one token at a time cannot use them.",
    "It's a bit like a freight train that only pays off when it is full.",
    "And the other thing people say is that with LoRA you only train two small matrices per layer, "
    "so fine-tuning fits on my laptop.",
    "I want to see both of those on my own machine.",
]
MATMUL, LORA = 1, 3  # segments holding the claims (said at 0:10 and 0:30)


def _post() -> Post:
    post = post_json(title="Tensor cores and LoRA on my own machine")
    layers = post["layers"]
    layers["focus"] = [item(TEXTS[0], sources=(0,))]
    layers["reason"] = [item(TEXTS[MATMUL], sources=(MATMUL,))]
    layers["analogy"] = [item(TEXTS[2], sources=(2,))]
    layers["example"] = [item(TEXTS[LORA], sources=(LORA,))]
    layers["connections"], layers["tradeoffs"] = [], []
    post["gaps"] = ["connections", "tradeoffs"]
    post["sentences"] = [
        {"id": i + 1, "text": t, "segments": [i], "start": i * 10.0, "end": i * 10.0 + 9.5} for i, t in enumerate(TEXTS)
    ]
    post["verification"]["flagged"] = 0
    return Post.from_dict(post)


def test_tensor_core_and_lora_claims_carry_their_measurements(tmp_path, node_cache):  # noqa: F811
    transcript = transcript_of(TEXTS)
    outcomes = run_detected(transcript=transcript, output_dir=tmp_path / "exp", quick=True, whisper_model="tiny.en")
    by_name = {o.experiment: o for o in outcomes}
    assert {"low-precision-matmul", "lora-finetune"} <= set(by_name), [o.experiment for o in outcomes]
    for name in ("low-precision-matmul", "lora-finetune"):
        assert by_name[name].ok, by_name[name].error
    root = tmp_path / "blog"
    create_blog_repo(root)
    d = create_draft(
        post=_post(),
        transcript=transcript,
        experiment_results=[by_name["low-precision-matmul"], by_name["lora-finetune"]],
        blog_repo=root,
        hardware=HARDWARE,
    )
    res = CliRunner().invoke(
        cli, ["preview", d.slug, "--blog-repo", str(root)], env={"RAMBLE2POST_HOME": str(tmp_path)}
    )
    assert res.exit_code == 0, res.output
    page = Path(re.search(r"^Page: (.+)$", res.output, re.M).group(1)).read_text()
    post = page[page.index('data-view="post"') : page.index('<section class="r2p-view" data-view="human"')]
    # the measurements follow the layer holding the first claim; each quotes the claim it tests, with its time
    measured = post.index("Measured on this machine")
    assert post.index("tensor cores doing bf16 matmuls") < measured < post.index("An example")
    lowprec, lora = post.index("low-precision-matmul (v1)"), post.index("lora-finetune (v1)")
    assert measured < lowprec < lora
    assert "tensor cores doing bf16 matmuls" in post[lowprec:lora] and "the speaker, at 0:10" in post[lowprec:lora]
    assert "only train two small matrices" in post[lora:] and "the speaker, at 0:30" in post[lora:]
    assert "matrix-matrix speed-up" in post[lowprec:lora] and "TFLOP/s" in post[lowprec:lora]
    assert "not on this machine" in post[lowprec:lora]  # fp8/tf32 said in a row, not left empty on a CPU
    assert "gradients + optimizer" in post[lora:] and "LoRA r=8" in post[lora:]
    assert len(re.findall(r"<table>", post)) == 2
