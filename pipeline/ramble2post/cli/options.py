"""Options shared by several commands, defined once, and the settings every command reads.

Precedence for each setting: flag > ``RAMBLE2POST_*`` environment variable > config file
(``$RAMBLE2POST_HOME/config.toml``) > default, resolved in one place:
``ramble2post.config.resolve``. Options here default to ``None`` so that the command can
fall back to :func:`settings` for what the user did not give.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ramble2post.config import (
    DEFAULT_LLM,
    DEFAULT_WHISPER,
    JARGON_PROMPT_DEFAULT,
    TERM_BIAS_DEFAULT,
    Settings,
    env_var,
    resolve,
)
from ramble2post.structure.models import LLMSpec, parse_llm_spec

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    """Environment > config file > default, resolved once per command (on first use, so ``--help`` never
    reads the file); the command's own flags go first (``flag or settings().x``)."""
    ctx = click.get_current_context().find_root()
    if "settings" not in ctx.meta:
        ctx.meta["settings"] = resolve()
    s: Settings = ctx.meta["settings"]
    return s


def or_setting(field: str, convert: Callable[[Any], Any] | None = None) -> Callable[..., Any]:
    """An option callback: the flag's value, else the resolved setting ``field`` (environment > config > default)."""

    def fill(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            value = getattr(settings(), field)
            return convert(value) if convert is not None and value is not None else value
        return value

    return fill


def device_option(f: F) -> F:
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default=None,
        callback=or_setting("device"),
        help=f"Where to run models: auto picks CUDA (fp16) when available, else CPU. Default: auto (${env_var('device')}).",
    )(f)


def whisper_model_option(f: F) -> F:
    return click.option(
        "--model",
        "-m",
        default=None,
        help="Whisper model: a name (base, tiny.en, ...) or a path to a .pt checkpoint "
        f"or a CTranslate2 model directory. Default: {DEFAULT_WHISPER} (${env_var('model')}).",
    )(f)


def llm_option(f: F) -> F:
    """``--llm`` and ``--llm-url``; the command reads the pair through :func:`llm_spec` or :func:`llm_choice`."""

    def keep_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        ctx.meta["llm_url"] = value

    f = click.option(
        "--llm-url",
        default=None,
        expose_value=False,
        callback=keep_url,
        metavar="URL",
        help="An OpenAI-compatible server you already run (llama-server, Ollama, vLLM, LM Studio), "
        f"e.g. http://127.0.0.1:8080/v1; --llm is then the model name it serves (${env_var('llm_url')}).",
    )(f)
    return click.option(
        "--llm",
        default=None,
        help="Language model: a GGUF path, a packaged name (smollm2, gemma3-270m), hf:OWNER/REPO:FILE.gguf "
        "to download one once, openai:http://127.0.0.1:8080/v1/MODEL for a model you serve, or 'none' "
        f"for the speaker's sentences only. Default: {DEFAULT_LLM} (${env_var('llm')}).",
    )(f)


def llm_choice(llm: str | None) -> LLMSpec:
    """The model to use: ``--llm`` (or its env var / config ``llm``), served at ``--llm-url`` when given."""
    conf = settings()
    url = click.get_current_context().meta.get("llm_url") or conf.llm_url  # meta is shared by nested contexts
    return parse_llm_spec(llm or conf.llm, url=url)


def llm_spec(llm: str | None) -> str:
    """:func:`llm_choice` in its one-string form, for the stages that take ``llm: str``."""
    return llm_choice(llm).text


def language_option(f: F) -> F:
    return click.option(
        "--language",
        default=None,
        help=f"Spoken language code (e.g. en). Default: detect; English-only models use en (${env_var('language')}).",
    )(f)


def blog_repo_option(f: F) -> F:
    return click.option(
        "--blog-repo",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        callback=or_setting("blog_repo", lambda v: Path(v).expanduser()),
        help=f"Your AstroPaper blog's git repo. Default: ${env_var('blog_repo')}, else blog_repo from the config "
        "file, else $RAMBLE2POST_HOME/blog (created by the first run).",
    )(f)


def posts_dir_option(f: F) -> F:
    return click.option(
        "--posts-dir",
        default=None,
        help="Posts folder inside the blog repo, when it is not AstroPaper's src/data/blog, "
        "src/content/blog or src/content/posts.",
    )(f)


def jargon_prompt_option(f: F) -> F:
    def fill(_ctx: click.Context, _param: click.Parameter, value: bool | None) -> bool:
        return settings().jargon_prompt if value is None else value

    return click.option(
        "--jargon-prompt/--no-jargon-prompt",
        default=None,
        callback=fill,
        help="Give Whisper the glossary's terms (built-in and yours) as its initial prompt, so that it "
        'writes "vLLM" and "FP8" rather than "VLM" and "F8". '
        f"Default: {'on' if JARGON_PROMPT_DEFAULT else 'off'} (${env_var('jargon_prompt')}).",
    )(f)


def term_bias_option(f: F) -> F:
    return click.option(
        "--term-bias",
        type=click.FloatRange(0, 10),
        default=None,
        callback=or_setting("term_bias"),
        metavar="NATS",
        help="While decoding, add NATS to the log-odds of the glossary's terms (built-in and yours), so that "
        '"GEMM" beats "gem" when the sound fits both; 0 turns it off. '
        f"Default: {TERM_BIAS_DEFAULT:g} (${env_var('term_bias')}).",
    )(f)


def quick_option(f: F) -> F:
    return click.option(
        "--quick",
        is_flag=True,
        callback=or_setting("quick"),
        help=f"Small experiment settings: each experiment under 2 minutes on 2 CPU cores (${env_var('quick')}=1).",
    )(f)
