"""``ramble2post transcribe``: audio -> transcript (json, txt, srt or vtt)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from ramble2post.cache import atomic_write_text
from ramble2post.cli.options import (
    device_option,
    jargon_prompt_option,
    language_option,
    settings,
    term_bias_option,
    whisper_model_option,
)
from ramble2post.transcribe.glossary import glossary_setting, prompt_setting
from ramble2post.transcribe.stage import TranscribeOptions, plan_transcription, transcribe_file
from ramble2post.transcribe.writers import WRITERS


@click.command(name="transcribe")
@click.argument("audio", type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here instead of standard output (written atomically).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(WRITERS)),
    default="json",
    show_default=True,
    help="Output format: json carries segments, model, device and timing.",
)
@whisper_model_option
@device_option
@language_option
@click.option(
    "--prompt",
    default=None,
    help='Your own initial prompt, instead of the jargon prompt, e.g. "Groq, Cerebras, KV cache".',
)
@jargon_prompt_option
@term_bias_option
@click.option(
    "--beam-size",
    type=click.IntRange(1, 10),
    default=None,
    help="Beam search width; 1 = greedy (fastest). Default: 2 in the batched engine (lower WER than "
    "greedy on 27 of 36 measured files, at ~1.13x the time), greedy in the sequential one.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "batched", "sequential"]),
    default="auto",
    show_default=True,
    help="batched: cut at pauses, decode <=30-s windows in batches, decoder int8 on CPU (fastest "
    "on long audio); sequential: whisper's own loop, each window conditioned on the previous "
    "text; auto: batched from 5 minutes of audio, else both, keeping per window the likelier text.",
)
@click.option(
    "--no-glossary",
    is_flag=True,
    help="Keep Whisper's spelling of jargon (default: built-in glossary plus the config file's "
    "glossary; corrections are listed in the JSON).",
)
@click.option("--no-cache", is_flag=True, help="Transcribe again even if a cached transcript exists.")
@click.option(
    "--plan",
    is_flag=True,
    help="Only print the audio length, the estimated time (scaled to this machine's speed once it has "
    "transcribed something) and the temporary disk the decoded audio needs (reads the header, decodes nothing).",
)
def transcribe_cmd(
    audio,
    output,
    fmt,
    model,
    device,
    language,
    prompt,
    jargon_prompt,
    term_bias,
    beam_size,
    engine,
    no_glossary,
    no_cache,
    plan,
):
    """Transcribe AUDIO (any format ffmpeg reads) with Whisper, locally.

    \b
    Examples:
        ramble2post transcribe ramble.m4a -o ramble.json
        ramble2post transcribe ramble.m4a --format srt --model tiny.en
    """
    conf = dataclasses.replace(settings(), jargon_prompt=jargon_prompt)
    options = TranscribeOptions(
        model=model or conf.model,
        device=device or conf.device,
        language=language or conf.language,
        prompt=prompt or prompt_setting(conf),
        beam_size=beam_size,
        engine=engine,
        glossary=None if no_glossary else glossary_setting(conf),
        term_bias=term_bias,
    )
    if plan:
        p = plan_transcription(audio_path=audio, options=options)
        wall = f"{p.estimated_wall_s:.0f} s" if p.estimated_wall_s < 120 else f"{p.estimated_wall_s / 60:.1f} min"
        click.echo(
            f"{audio}: {p.duration_s / 60:.1f} min of audio; {p.model} on {p.device} ({p.engine}) "
            f"needs about {wall} and "
            f"{p.estimated_audio_disk_bytes / 2**20:.0f} MiB of temporary disk for the decoded audio"
        )
        speed = (
            f"this machine's speed from its last {p.speed_runs} run{'s' if p.speed_runs != 1 else ''}: "
            f"x{p.speed_factor:.2f} the built-in figures"
            if p.speed_runs
            else "built-in figures (a 2-core box); the estimate learns this machine's speed from its runs"
        )
        click.echo(f"  ({speed})")
        return
    transcript = transcribe_file(audio_path=audio, options=options, use_cache=not no_cache)
    text = WRITERS[fmt](transcript)
    if output:
        atomic_write_text(output, text)
        t = transcript.timing
        click.echo(
            f"Wrote {output} ({len(transcript.segments)} segments, {transcript.duration:.0f} s of audio, "
            f"model {transcript.model.name} on {transcript.device}, RTF {t['real_time_factor']:.3f})",
            err=True,
        )
    else:
        sys.stdout.write(text)
