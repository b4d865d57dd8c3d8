"""Where things live, and the one place settings are resolved.

Precedence for every setting: command-line flag > ``RAMBLE2POST_*`` environment
variable > config file (``$RAMBLE2POST_HOME/config.toml``) > the dataclass default
below, all in :func:`resolve`. The CLI passes its flags; library code reads the
resolved settings through :func:`current` (environment and config file only) instead
of reading ``os.environ`` itself. :data:`ENVIRONMENT` lists every variable, shown in
``ramble2post --help`` and the README.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ramble2post.errors import InputError

DEFAULT_WHISPER = "base"  # Whisper model name
# packaged GGUF (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, from part packages): the one model here that judges
# roles above chance (docs/STRUCTURE_QUALITY.md); --llm smollm2 is the 135M model, 10x faster and blind to roles
DEFAULT_LLM = "qwen2.5-coder-1.5b"
# what an experiment measures with when no model is named (the main command passes the user's --llm when one is
# named): the 135M model keeps a hardware measurement quick; the claims measured do not depend on its quality
EXPERIMENT_LLM = "smollm2"


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

    ``RAMBLE2POST_HOME`` overrides it (tests point it at a temp dir); it holds the config
    file, so it is an environment variable only.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "ramble2post"


def cache_dir() -> Path:
    """Stage outputs and converted models, keyed by their inputs (``cache`` setting, else HOME/cache)."""
    configured = current().cache
    return Path(configured).expanduser() if configured else home_dir() / "cache"


def config_path() -> Path:
    return home_dir() / "config.toml"


JARGON_PROMPT_DEFAULT = True  # see Settings.jargon_prompt
# nats added to the logits of the glossary's terms' tokens while Whisper decodes (transcribe/bias.py;
# off: on the short-clip sets it wrote more terms nobody said, docs/PERFORMANCE.md "Terms favoured while decoding")
TERM_BIAS_DEFAULT = 0.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every user-facing setting; each may come from a flag, its variable (:data:`ENVIRONMENT`) or the config file."""

    model: str = DEFAULT_WHISPER  # Whisper model name or path
    llm: str = DEFAULT_LLM  # GGUF name or path, or the model name served at llm_url
    llm_url: str | None = None  # an OpenAI-compatible server's base URL (http://127.0.0.1:8080/v1)
    llm_timeout: float = 300.0  # s per request to llm_url: a 70B model on a busy GPU can take minutes
    llm_api_key: str = ""  # bearer token for llm_url (also read from OPENAI_API_KEY)
    llm_threads: int | None = None  # llama.cpp threads; None = physical cores minus busy ones
    device: str = "auto"  # auto | cpu | cuda
    blog_repo: str | None = None  # default: $RAMBLE2POST_HOME/blog
    language: str | None = None  # None = detect (English-only models force "en")
    experiments: str = "auto"
    prompts: str | None = None  # a folder with your own copies of prompts/*.txt
    quick: bool = False  # small experiment settings
    # jargon added to the built-in glossary: ["Groq", "Cerebras"] or {"Groq" = ["grok"], ...}
    # (ramble2post/transcribe/glossary.py); an empty list keeps only the built-in terms
    glossary: Any = None
    use_glossary: bool = True  # false: transcripts keep Whisper's spelling
    # true: Whisper's initial prompt lists the glossary's terms (glossary.jargon_prompt), biasing the decoder
    # toward them (docs/PERFORMANCE.md, "Jargon": recall and WER with and without it on unseen rambles)
    jargon_prompt: bool = JARGON_PROMPT_DEFAULT
    term_bias: float = TERM_BIAS_DEFAULT  # nats toward the glossary's terms while decoding; 0 = off
    ffmpeg: str | None = None  # ffmpeg binary; default: PATH, then imageio-ffmpeg's build
    offline: bool = False  # never download a Whisper model
    cache: str | None = None  # stage outputs and converted models; default: $RAMBLE2POST_HOME/cache
    node_cache: str | None = None  # Astro's node_modules; default: the cache folder's node_modules
    debug: bool = False  # Python tracebacks instead of one Error: line


HOME_ENV = "RAMBLE2POST_HOME"


@dataclasses.dataclass(frozen=True)
class EnvVar:
    """One environment variable: the setting it gives (None: read where it is used) and what it does."""

    name: str
    setting: str | None
    help: str
    internal: bool = False  # for tests and benchmarks, not users


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar(
        HOME_ENV,
        None,
        "the folder holding config.toml, the cache and the default blog (default: "
        "$XDG_DATA_HOME/ramble2post or ~/.local/share/ramble2post)",
    ),
    EnvVar("RAMBLE2POST_MODEL", "model", "Whisper model, as --model"),
    EnvVar("RAMBLE2POST_LLM", "llm", "language model, as --llm"),
    EnvVar("RAMBLE2POST_LLM_URL", "llm_url", "an OpenAI-compatible server, as --llm-url"),
    EnvVar("RAMBLE2POST_LLM_TIMEOUT", "llm_timeout", "seconds to wait for that server per request (300)"),
    EnvVar("RAMBLE2POST_LLM_API_KEY", "llm_api_key", "bearer token for that server (else OPENAI_API_KEY)"),
    EnvVar("RAMBLE2POST_LLM_THREADS", "llm_threads", "llama.cpp threads (default: free physical cores)"),
    EnvVar("RAMBLE2POST_DEVICE", "device", "auto, cpu or cuda, as --device"),
    EnvVar("RAMBLE2POST_BLOG_REPO", "blog_repo", "your blog's git repo, as --blog-repo"),
    EnvVar("RAMBLE2POST_LANGUAGE", "language", "spoken language, as --language"),
    EnvVar("RAMBLE2POST_EXPERIMENTS", "experiments", "auto, none or names, as --experiments"),
    EnvVar("RAMBLE2POST_PROMPTS", "prompts", "your own prompts folder, as structure --prompts"),
    EnvVar("RAMBLE2POST_QUICK", "quick", "1: small experiment settings, as --quick"),
    EnvVar(
        "RAMBLE2POST_JARGON_PROMPT",
        "jargon_prompt",
        "1/0: Whisper's initial prompt lists the glossary's terms, as --jargon-prompt/--no-jargon-prompt",
    ),
    EnvVar(
        "RAMBLE2POST_TERM_BIAS",
        "term_bias",
        "nats added to the glossary's terms' tokens while Whisper decodes (0 = off), as --term-bias",
    ),
    EnvVar("RAMBLE2POST_FFMPEG", "ffmpeg", "the ffmpeg binary (default: PATH, then imageio-ffmpeg's)"),
    EnvVar("RAMBLE2POST_OFFLINE", "offline", "1: never download a Whisper model"),
    EnvVar("RAMBLE2POST_CACHE", "cache", "the cache folder (default: $RAMBLE2POST_HOME/cache)"),
    EnvVar("RAMBLE2POST_NODE_CACHE", "node_cache", "Astro's node_modules cache (default: in the cache folder)"),
    EnvVar("RAMBLE2POST_DEBUG", "debug", "1: Python tracebacks on errors, as --debug"),
    EnvVar("RAMBLE2POST_ROLE_WEIGHTS", None, "another role model file (benchmarks' held-out folds)", internal=True),
    EnvVar("RAMBLE2POST_TIERS", None, "another tier calibration file (benchmarks, tests)", internal=True),
    EnvVar(
        "RAMBLE2POST_PROBE", None, "another judge probe file, or none: the letters alone (benchmarks)", internal=True
    ),
    EnvVar("RAMBLE2POST_FAULT_TABLE", None, "write the fault matrix as Markdown here (tests/faults)", internal=True),
    EnvVar("RAMBLE2POST_TEST_NODE_CACHE", None, "node_modules cache for the Astro tests", internal=True),
    EnvVar("RAMBLE2POST_SHOTS", None, "screenshot folder for the Astro tests", internal=True),
    EnvVar(
        "RAMBLE2POST_SKIPPED_LOG",
        None,
        "file where the tests write the ids they skipped (.ci/run reruns them)",
        internal=True,
    ),
)
_BY_SETTING = {v.setting: v.name for v in ENVIRONMENT if v.setting}
_FALSE = ("", "0", "false", "no", "off")  # an environment variable's "no" (click's spellings)


def env_var(setting: str) -> str:
    """The environment variable of a setting: ``env_var("llm") == "RAMBLE2POST_LLM"``."""
    return _BY_SETTING[setting]


def environment_help(*, internal: bool = False) -> str:
    """The variables as help text lines (``NAME  what it does``)."""
    rows = [v for v in ENVIRONMENT if v.internal == internal]
    width = max(len(v.name) for v in rows)
    return "\n".join(f"{v.name:<{width}}  {v.help}" for v in rows)


def _convert(name: str, raw: Any, source: str) -> Any:
    """A raw value (string from the environment, TOML value from the file) as the field's type."""
    default = next(f.default for f in dataclasses.fields(Settings) if f.name == name)
    if name in ("glossary",) or raw is None:
        return raw
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() not in _FALSE
    try:
        if name == "llm_timeout":
            return float(raw)
        if name == "term_bias":
            value = float(raw)
            if not 0 <= value <= 10:  # nats; beyond ~5 the terms drown what was said
                where = f"${env_var(name)}" if source == "env" else f"{source}: term_bias ="
                raise InputError(f"{where} {raw!r} must be from 0 to 10 (nats; 0 = off)")
            return value
        if name == "llm_threads":
            value = int(raw)
            return value if value > 0 else None
    except (TypeError, ValueError):
        if source == "env":  # a malformed variable falls back to the default, as before
            return default
        raise InputError(f"{source}: {name} = {raw!r} is not a number") from None
    return raw


def load_settings(path: Path | None = None) -> Settings:
    """Read the TOML config file (if any) over the dataclass defaults (no environment, no flags)."""
    return Settings(**_file_values(path or config_path()))


def _file_values(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
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
    return {k: _convert(k, v, f"config file {path}") for k, v in data.items() if v is not None}


def resolve(
    flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None, config: Path | None = None
) -> Settings:
    """The settings: flag > environment variable > config file > default, for every field.

    flags: setting name -> value given on the command line (None: not given).
    env: the environment (default ``os.environ``); empty variables count as unset.
    config: the TOML file (default ``config_path()``); a missing file is no error.
    """
    env = os.environ if env is None else env
    values = _file_values(config or config_path())
    for field in dataclasses.fields(Settings):
        name = _BY_SETTING.get(field.name)
        raw = env.get(name, "") if name else ""
        if field.name == "llm_api_key" and not raw:
            raw = env.get("OPENAI_API_KEY", "")
        if raw != "":
            values[field.name] = _convert(field.name, raw, "env")
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    return Settings(**values)


_current: dict[tuple[Any, ...], Settings] = {}


def current() -> Settings:
    """The settings library code reads: environment > config file > default, resolved once per environment.

    Memoised on the variables and the config file's identity, so a test that changes a
    variable (or writes a config file) sees the change.
    """
    path = config_path()
    try:
        st = path.stat()
        stamp: tuple[Any, ...] = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = ()
    key = (str(path), stamp, *(os.environ.get(v.name, "") for v in ENVIRONMENT), os.environ.get("OPENAI_API_KEY", ""))
    if key not in _current:
        if len(_current) > 32:
            _current.clear()
        _current[key] = resolve(config=path)
    return _current[key]
