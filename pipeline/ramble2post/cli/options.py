"""Options shared by several commands, defined once, and the settings every command reads.

Precedence for each setting: flag > ``RAMBLE2POST_*`` environment variable (click
``envvar``) > config file (``$RAMBLE2POST_HOME/config.toml``) > default
(``ramble2post.config.Settings``). Options here default to ``None`` so that the
command can fall back to :func:`settings` for what the user did not give.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ramble2post.config import DEFAULT_LLM, DEFAULT_WHISPER, Settings, load_settings
from ramble2post.publish.blog import BLOG_ENVVAR
from ramble2post.structure.server import is_server_spec, server_spec

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    """The config file's settings, read once per command (on first use, so ``--help`` never reads it)."""
    ctx = click.get_current_context().find_root()
    if "settings" not in ctx.meta:
        ctx.meta["settings"] = load_settings()
    s: Settings = ctx.meta["settings"]
    return s


def device_option(f: F) -> F:
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default=None,
        envvar="RAMBLE2POST_DEVICE",
        help="Where to run models: auto picks CUDA (fp16) when available, else CPU. Default: auto.",
    )(f)


def whisper_model_option(f: F) -> F:
    return click.option(
        "--model",
        "-m",
        default=None,
        envvar="RAMBLE2POST_MODEL",
        help="Whisper model: a name (base, tiny.en, ...) or a path to a .pt checkpoint "
        f"or a CTranslate2 model directory. Default: {DEFAULT_WHISPER}.",
    )(f)


def llm_option(f: F) -> F:
    """``--llm`` and ``--llm-url``; the command reads the pair through :func:`llm_spec`."""

    def keep_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        ctx.meta["llm_url"] = value

    f = click.option(
        "--llm-url",
        default=None,
        envvar="RAMBLE2POST_LLM_URL",
        expose_value=False,
        callback=keep_url,
        metavar="URL",
        help="An OpenAI-compatible server you already run (llama-server, Ollama, vLLM, LM Studio), "
        "e.g. http://127.0.0.1:8080/v1; --llm is then the model name it serves.",
    )(f)
    return click.option(
        "--llm",
        default=None,
        envvar="RAMBLE2POST_LLM",
        help="Language model: a GGUF path, a packaged name (smollm2, gemma3-270m), hf:OWNER/REPO:FILE.gguf "
        "to download one once, openai:http://127.0.0.1:8080/v1/MODEL for a model you serve, or 'none' "
        f"for the speaker's sentences only. Default: {DEFAULT_LLM}.",
    )(f)


def llm_spec(llm: str | None) -> str:
    """The model to use: ``--llm`` (or its env var / config ``llm``), served at ``--llm-url`` when given."""
    conf = settings()
    name = llm or conf.llm
    url = click.get_current_context().meta.get("llm_url") or conf.llm_url  # meta is shared by nested contexts
    if url and name != "none" and not is_server_spec(name):
        return server_spec(url=url, model=name)
    return name


def language_option(f: F) -> F:
    return click.option(
        "--language",
        default=None,
        envvar="RAMBLE2POST_LANGUAGE",
        help="Spoken language code (e.g. en). Default: detect; English-only models use en.",
    )(f)


def blog_repo_option(f: F) -> F:
    return click.option(
        "--blog-repo",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        envvar=BLOG_ENVVAR,
        help="Your AstroPaper blog's git repo. Default: blog_repo from the config file, else "
        "$RAMBLE2POST_HOME/blog (created by the first run).",
    )(f)


def posts_dir_option(f: F) -> F:
    return click.option(
        "--posts-dir",
        default=None,
        help="Posts folder inside the blog repo, when it is not AstroPaper's src/data/blog, "
        "src/content/blog or src/content/posts.",
    )(f)


def quick_option(f: F) -> F:
    return click.option(
        "--quick",
        is_flag=True,
        envvar="RAMBLE2POST_QUICK",
        help="Small experiment settings: each experiment under 2 minutes on 2 CPU cores.",
    )(f)
