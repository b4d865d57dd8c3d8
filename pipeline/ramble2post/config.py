"""Where things live, and settings resolution.

Precedence for every setting: command-line flag > ``RAMBLE2POST_*`` environment
variable (click ``envvar=``) > config file (``$RAMBLE2POST_HOME/config.toml``)
> the dataclass default below.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import tomllib
from pathlib import Path
from typing import Any

from ramble2post.errors import InputError

DEFAULT_WHISPER = "base"  # Whisper model name
DEFAULT_LLM = "smollm2"  # packaged GGUF (SmolLM2-135M-Instruct)


def _data_dir(package: str) -> Path:
    """A folder of package data (prompts, blog templates, samples), from a wheel or the checkout.

    The top-level folders ``prompts/``, ``blog/`` and ``samples/`` are installed as
    the packages ``ramble2post.prompts``, ``ramble2post.blog`` and ``ramble2post.samples``
    (pyproject ``package-dir``); an editable install maps them back to the checkout.
    """
    return Path(str(importlib.resources.files(package)))


PROMPTS_DIR = _data_dir("ramble2post.prompts")
BLOG_TEMPLATE_DIR = _data_dir("ramble2post.blog")
SAMPLE_AUDIO = _data_dir("ramble2post.samples") / "explain-format-ramble-1min.m4a"
CHECKOUT_DIR = (
    Path(__file__).resolve().parents[2]
)  # the git checkout (pipeline/ramble2post/config.py), for an editable install


def home_dir() -> Path:
    """The one folder ramble2post owns: config, caches, default blog repo.

    ``RAMBLE2POST_HOME`` overrides it (tests point it at a temp dir).
    """
    env = os.environ.get("RAMBLE2POST_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "ramble2post"


def cache_dir() -> Path:
    """Stage outputs and converted models, keyed by their inputs."""
    env = os.environ.get("RAMBLE2POST_CACHE")
    return Path(env).expanduser() if env else home_dir() / "cache"


def config_path() -> Path:
    return home_dir() / "config.toml"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Defaults for options that may also come from the config file."""

    model: str = DEFAULT_WHISPER  # Whisper model name or path
    llm: str = DEFAULT_LLM  # GGUF name or path, or the model name served at llm_url
    llm_url: str | None = None  # an OpenAI-compatible server's base URL (http://127.0.0.1:8080/v1)
    device: str = "auto"  # auto | cpu | cuda
    blog_repo: str | None = None  # default: $RAMBLE2POST_HOME/blog
    language: str | None = None  # None = detect (English-only models force "en")
    experiments: str = "auto"
    # jargon added to the built-in glossary: ["Groq", "Cerebras"] or {"Groq" = ["grok"], ...}
    # (ramble2post/transcribe/glossary.py); an empty list keeps only the built-in terms
    glossary: Any = None
    use_glossary: bool = True  # false: transcripts keep Whisper's spelling


def load_settings(path: Path | None = None) -> Settings:
    """Read the TOML config file (if any) over the dataclass defaults."""
    path = path or config_path()
    if not path.exists():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"config file {path} is not valid TOML: {e}") from e
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(
            f"config file {path} has unknown keys: {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(known))}",
        )
    return Settings(**{k: v for k, v in data.items() if v is not None})
