"""``ramble2post structure TRANSCRIPT.json``: transcript -> three-layer Post JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ramble2post.cache import atomic_write_json
from ramble2post.cli.options import llm_option, llm_spec, or_setting
from ramble2post.records import load_transcript


@click.command("structure")
@click.argument("transcript", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the Post JSON (default: print it to stdout).",
)
@llm_option
@click.option(
    "--prompts",
    "prompts_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    callback=or_setting("prompts", Path),
    help="Folder with your own copies of the prompts/*.txt files.",
)
@click.option(
    "--context",
    type=click.Choice(["auto", "full", "excerpts"]),
    default="auto",
    show_default=True,
    help="What the LLM reads: the full transcript, only candidate sentences, or auto.",
)
@click.option(
    "--llm-budget",
    "llm_budget_s",
    type=float,
    default=None,
    help="Seconds the LLM may spend on questions; items left keep the speaker's words. Default: 200.",
)
@click.option("--no-cache", is_flag=True, help="Recompute even if a cached result exists.")
def structure_cmd(
    transcript: Path,
    output: Path | None,
    llm: str | None,
    prompts_dir: Path | None,
    context: str,
    llm_budget_s: float | None,
    no_cache: bool,
) -> None:
    """Structure TRANSCRIPT.json into a three-layer post (Post JSON), grounded in the speaker's words.

    Roles the ramble does not fill stay empty (the draft asks the author for them);
    model-written sentences are checked against what was said and replaced when they fail.

    \b
    Examples:
        ramble2post structure talk.json -o post.json
        ramble2post structure talk.json --llm none
        ramble2post structure talk.json --llm openai:http://127.0.0.1:11434/v1/qwen2.5:7b
    """
    from ramble2post.structure.stage import structure_transcript

    t = load_transcript(transcript)
    llm = llm_spec(llm)
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        click.echo(f"[{time.perf_counter() - t0:6.1f}s] {msg}", err=True)

    post = structure_transcript(
        transcript=t,
        llm=llm,
        prompts_dir=prompts_dir,
        progress=progress,
        use_cache=not no_cache,
        llm_budget_s=llm_budget_s,
        context=context,
    )
    v = post.verification
    tm = post.timing
    click.echo(f"title: {post.title.text}  ({post.title.origin})", err=True)
    click.echo(
        f"verification: {v.items} items, {v.passed} passed, {v.repaired} repaired, "
        f"{v.replaced} replaced, {v.flagged} flagged",
        err=True,
    )
    click.echo(
        f"timing: {tm['total_s']:.1f} s total, prompt {tm['prompt_tok_per_s']} tok/s, "
        f"generation {tm['gen_tok_per_s']} tok/s",
        err=True,
    )
    if output:
        atomic_write_json(output, post.to_dict())
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(json.dumps(post.to_dict(), indent=2, ensure_ascii=False) + "\n")
