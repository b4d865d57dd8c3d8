"""The model registry: ``--llm`` text -> :class:`LLMSpec` (parsed once) -> a loaded backend.

Kinds of spec (first match wins; see ``ramble2post.structure.llm``'s docstring):

=============  ==============================================  =============================
kind           ``--llm``                                        backend
=============  ==============================================  =============================
none           ``none``                                         no model: the speaker's words
registered     a name given to :func:`register_backend`         its factory (test doubles)
openai         ``openai:http://HOST:PORT/v1/MODEL``, or MODEL   ``server.ServerLLM``
               with ``--llm-url http://HOST:PORT/v1``
hf             ``hf:OWNER/REPO:FILE.gguf``                       downloaded once, then llama.cpp
path           an existing file, or a name ending in ``.gguf``   ``llm.LlamaCppLLM``
               or holding ``/``
packaged       ``smollm2``, ``gemma3-270m`` (``gemma3``)          ``llm.LlamaCppLLM``
=============  ==============================================  =============================

Kept apart from ``llm`` (the in-process GGUF backend) and ``server`` (a served model) so that
neither imports the other: both hand their backends to this module, which picks one by kind.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ramble2post.config import DEFAULT_LLM, cache_dir
from ramble2post.errors import DependencyError, ModelError
from ramble2post.structure.llm import HOW_TO_GET, LLM, PACKAGED, LlamaCppLLM, check_gguf, resolve_gguf
from ramble2post.structure.server import PREFIX as SERVER_PREFIX
from ramble2post.structure.server import ServerLLM

LLMKind = Literal["none", "registered", "openai", "hf", "path", "packaged"]
HF_PREFIX = "hf:"
NONE = "none"  # --llm none: no model, the speaker's sentences only
ALIASES = {"gemma3": "gemma3-270m"}  # other names of packaged models
SERVER_HINT = "use openai:http://127.0.0.1:8080/v1/MODEL_NAME"

_BACKENDS: dict[str, Callable[..., LLM]] = {}


@dataclasses.dataclass(frozen=True)
class LLMSpec:
    """Which language model, parsed from ``--llm`` (and ``--llm-url``) by :func:`parse_llm_spec`."""

    kind: LLMKind
    text: str  # the one-string form (``--llm`` accepts it back): logs, cache keys, experiment context
    name: str = ""  # registered or packaged name, GGUF path, the model a server serves, or OWNER/REPO
    url: str = ""  # openai: the server's base URL (``http://127.0.0.1:8080/v1``)
    file: str = ""  # hf: the GGUF file in the repo

    def __str__(self) -> str:
        return self.text


def register_backend(name: str, factory: Callable[..., LLM]) -> None:
    """Make ``--llm NAME`` return ``factory(reuse_prefix=...)`` (tests register their doubles: tests/fakes.py)."""
    _BACKENDS[name] = factory


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def registered(name: str) -> bool:
    """True if ``name`` is a registered backend (not a GGUF path or packaged name)."""
    return name in _BACKENDS


def parse_llm_spec(text: str | None, url: str | None = None) -> LLMSpec:
    """The one parser of ``--llm``: ``text`` (None: the default model), served at ``url`` when given.

    text: what ``--llm`` / ``RAMBLE2POST_LLM`` / config ``llm`` says.
    url: ``--llm-url``; with it, a plain ``text`` is the name of the model that server serves.
    A malformed server spec is a ``ModelError``; an unknown name or missing file is one when loaded.
    """
    text = (text or DEFAULT_LLM).strip()
    if text == NONE:
        return LLMSpec(kind="none", text=NONE)
    if url and not text.startswith(SERVER_PREFIX):
        text = f"{SERVER_PREFIX}{url.rstrip('/')}/{text}"
    if text in _BACKENDS:
        return LLMSpec(kind="registered", text=text, name=text)
    if text.startswith(SERVER_PREFIX):
        base, model = _split_server(text)
        return LLMSpec(kind="openai", text=text, name=model, url=base)
    if text.startswith(HF_PREFIX):
        try:
            _, repo_id, filename = text.split(":", 2)
        except ValueError as e:
            raise ModelError(f"bad --llm {text!r}", hint="use hf:OWNER/REPO:FILE.gguf") from e
        return LLMSpec(kind="hf", text=text, name=repo_id, file=filename)
    packaged = ALIASES.get(text, text)
    if packaged in PACKAGED and not Path(text).expanduser().is_file():
        return LLMSpec(kind="packaged", text=text, name=packaged)
    return LLMSpec(kind="path", text=text, name=text)


def _split_server(text: str) -> tuple[str, str]:
    """``openai:http://host:port/v1/MODEL`` -> (base URL, model name).

    The model name is what follows ``/v1/`` (it may hold ``:`` and ``/``: ``qwen2.5:7b``,
    ``meta-llama/Llama-3.1-8B-Instruct``); without ``/v1/``, what follows the last ``/``.
    """
    rest = text.removeprefix(SERVER_PREFIX)
    if not re.match(r"https?://[^/]+", rest):
        raise ModelError(f"bad server model {text!r}", hint=SERVER_HINT)
    if "/v1/" in rest:
        base, model = rest.split("/v1/", 1)
        base += "/v1"
    else:
        base, _, model = rest.rpartition("/")
    if not model or "//" in model or base.endswith(":/"):
        raise ModelError(f"no model name in {text!r}", hint=SERVER_HINT)
    return base.rstrip("/"), model


def load_llm(spec: LLMSpec | str | None, *, reuse_prefix: bool = True, system: str = "") -> LLM:
    """Load the model ``spec`` names (a string is parsed with :func:`parse_llm_spec` first).

    reuse_prefix: keep the KV cache of the shared prefix across questions (False: benchmarks).
    system: the system prompt.
    """
    if not isinstance(spec, LLMSpec):
        spec = parse_llm_spec(spec)
    if spec.kind == "registered":
        return _BACKENDS[spec.name](reuse_prefix=reuse_prefix)
    if spec.kind == "openai":  # a model the user already serves
        return ServerLLM(url=spec.url, model=spec.name, system=system, reuse_prefix=reuse_prefix)
    if spec.kind == "hf":
        return _from_pretrained(spec, reuse_prefix=reuse_prefix, system=system)
    name, path, source, expected = resolve_gguf(spec.text)  # path, packaged; "none" is an unknown LLM
    return LlamaCppLLM(
        name=name, path=path, source=source, expected_sha256=expected, reuse_prefix=reuse_prefix, system=system
    )


def _from_pretrained(spec: LLMSpec, *, reuse_prefix: bool, system: str) -> LLM:
    """``hf:owner/repo:file.gguf`` -> download once with huggingface_hub, then load."""
    repo_id, filename = spec.name, spec.file
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise DependencyError(
            "downloading a GGUF needs huggingface_hub",
            hint="pip install huggingface_hub, or pass --llm PATH/TO/model.gguf",
        ) from e
    try:  # the same download Llama.from_pretrained does, kept under our cache dir
        path = Path(hf_hub_download(repo_id=repo_id, filename=filename, cache_dir=str(cache_dir() / "hf")))
    except Exception as e:  # noqa: BLE001 - network/auth errors vary by hub version
        raise ModelError(f"cannot download {filename} from {repo_id}: {e}", hint=HOW_TO_GET) from e
    check_gguf(path)
    return LlamaCppLLM(
        name=f"{repo_id}/{filename}", path=path, source="download", reuse_prefix=reuse_prefix, system=system
    )
