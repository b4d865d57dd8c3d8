"""The model registry: ``--llm`` spec -> a loaded backend (see ``ramble2post.structure.llm``'s docstring).

Kept apart from ``llm`` (the in-process GGUF backend) and ``server`` (a served model) so that
neither imports the other: both hand their backends to this module, which picks one by spec.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ramble2post.config import DEFAULT_LLM, cache_dir
from ramble2post.errors import DependencyError, ModelError
from ramble2post.structure.llm import HOW_TO_GET, LLM, LlamaCppLLM, check_gguf, resolve_gguf
from ramble2post.structure.server import ServerLLM, parse_spec

_BACKENDS: dict[str, Callable[..., LLM]] = {}


def register_backend(name: str, factory: Callable[..., LLM]) -> None:
    """Make ``--llm NAME`` return ``factory(reuse_prefix=...)`` (used by tests for ``fake``)."""
    _BACKENDS[name] = factory


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def registered(name: str) -> bool:
    """True if ``name`` is a registered backend (not a GGUF path or packaged name)."""
    return name in _BACKENDS


def load_llm(spec: str | None, *, reuse_prefix: bool = True, system: str = "") -> LLM:
    """Resolve ``--llm`` (see module docstring) and load it."""
    spec = (spec or DEFAULT_LLM).strip()
    if spec in _BACKENDS:
        return _BACKENDS[spec](reuse_prefix=reuse_prefix)
    if spec.startswith("openai:"):  # a model the user already serves
        url, model = parse_spec(spec)
        return ServerLLM(url=url, model=model, system=system, reuse_prefix=reuse_prefix)
    if spec.startswith("hf:"):
        return _from_pretrained(spec, reuse_prefix=reuse_prefix, system=system)
    name, path, source, expected = resolve_gguf(spec)
    return LlamaCppLLM(
        name=name, path=path, source=source, expected_sha256=expected, reuse_prefix=reuse_prefix, system=system
    )


def _from_pretrained(spec: str, *, reuse_prefix: bool, system: str) -> LLM:
    """``hf:owner/repo:file.gguf`` -> download once with huggingface_hub, then load."""
    try:
        _, repo_id, filename = spec.split(":", 2)
    except ValueError as e:
        raise ModelError(f"bad --llm {spec!r}", hint="use hf:OWNER/REPO:FILE.gguf") from e
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
