"""Prompts as editable, versioned text files.

Each prompt is ``<dir>/<name>.txt``; its first line is ``# version: N`` (further
leading ``#`` lines are comments). Placeholders are ``{name}``: they are replaced
literally (no ``str.format``), so braces in transcripts are harmless. On load every
prompt is checked for a version and for exactly the placeholders the code fills;
all problems are reported in one error. ``--prompts DIR`` points at a user's copies
(files missing there fall back to the bundled ``prompts/``).

Lists (``structure_tags_list``: ``tag: keyword, keyword``; ``structure_roles``:
``role: description``) use the same header.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

from ramble2post.config import PROMPTS_DIR
from ramble2post.errors import InputError

_VERSION = re.compile(r"^#\s*version:\s*(\S+)\s*$", re.I)
_VAR = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

# prompt name -> placeholders the structure stage fills
REQUIRED: dict[str, set[str]] = {
    "structure_system": set(),
    "structure_context": {"sentences"},
    "structure_title": {"focus"},
    "structure_tags": {"tags", "focus"},
    "structure_rerank": {"role", "role_description", "candidates"},
    "structure_rewrite": {"role", "role_description", "source", "max_words"},
    "structure_point": {"talk"},
    "structure_tags_list": set(),
    "structure_roles": set(),
}


@dataclasses.dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    text: str  # body without the header lines
    path: str
    sha256: str  # of the file's bytes

    def render(self, **values: str) -> str:
        """Fill every ``{placeholder}``; a missing value is an error."""
        missing = sorted(set(_VAR.findall(self.text)) - set(values))
        if missing:
            raise InputError(f"prompt {self.name} needs values for: {', '.join(missing)}")
        return _VAR.sub(lambda m: str(values[m.group(1)]), self.text)

    def entries(self) -> dict[str, str]:
        """``key: value`` lines of a list file (blank lines ignored)."""
        out = {}
        for line in self.text.splitlines():
            if line.strip() and ":" in line:
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip()
        return out


def _read(name: str, path: Path) -> tuple[Prompt | None, list[str]]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return None, [f"{name}: file {path} is missing"]
    except (OSError, UnicodeDecodeError) as e:
        return None, [f"{name}: cannot read {path}: {e}"]
    lines = text.splitlines()
    m = _VERSION.match(lines[0]) if lines else None
    errors = []
    if not m:
        errors.append(f"{name}: first line must be '# version: N' ({path})")
    body_start = 0
    while body_start < len(lines) and lines[body_start].startswith("#"):
        body_start += 1
    body = "\n".join(lines[body_start:]).strip("\n") + "\n"
    used = set(_VAR.findall(body))
    need = REQUIRED.get(name, set())
    if need - used:
        errors.append(f"{name}: missing variables {', '.join('{' + v + '}' for v in sorted(need - used))}")
    if name in REQUIRED and used - need and need:
        errors.append(f"{name}: unknown variables {', '.join('{' + v + '}' for v in sorted(used - need))}")
    p = Prompt(name, m.group(1) if m else "?", body, str(path), hashlib.sha256(raw).hexdigest())
    return p, errors


def load_prompts(prompts_dir: str | Path | None = None, names=None) -> dict[str, Prompt]:
    """Load and validate prompts (user dir first, then the bundled ``prompts/``)."""
    user = Path(prompts_dir).expanduser() if prompts_dir else None
    if user is not None and not user.is_dir():
        raise InputError(f"--prompts {user} is not a folder")
    out: dict[str, Prompt] = {}
    errors: list[str] = []
    for name in names or REQUIRED:
        path = user / f"{name}.txt" if user and (user / f"{name}.txt").exists() else PROMPTS_DIR / f"{name}.txt"
        p, errs = _read(name, path)
        errors.extend(errs)
        if p:
            out[name] = p
    if errors:
        raise InputError(
            "invalid prompts: " + "; ".join(errors), hint=f"compare with the bundled files in {PROMPTS_DIR}"
        )
    return out


def versions(prompts: dict[str, Prompt]) -> dict[str, str]:
    return {n: p.version for n, p in sorted(prompts.items())}
