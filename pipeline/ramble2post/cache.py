"""Content-addressed on-disk cache and atomic file writes.

Every stage output is stored under ``cache_dir()/<stage>/<key>.json`` where the
key is a SHA-256 over the stage's inputs (audio hash, model checksum, options,
prompt versions). A rerun with the same inputs returns at once, and a run cut
short resumes at the first stage whose entry is missing. Files are written to a
temporary name in the same folder and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ramble2post.config import cache_dir

_CHUNK = 1 << 20  # 1 MiB read size for hashing


def sha256_file(path: str | os.PathLike, *, chunk: int = _CHUNK) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_key(data: Any) -> str:
    """SHA-256 of a JSON-serialisable value, independent of dict order."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _default_mode() -> int:
    """0o666 minus the process umask: what ``open()`` would have created (mkstemp uses 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file + fsync + rename, with normal file permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


class StageCache:
    """JSON results of one stage, keyed by the stage's inputs."""

    def __init__(self, stage: str, root: Path | None = None):
        self.stage = stage
        self.root = (root or cache_dir()) / stage

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            p.unlink(missing_ok=True)  # corrupt entry: recompute rather than fail
            return None

    def put(self, key: str, value: dict) -> Path:
        return atomic_write_json(self.path(key), value)
