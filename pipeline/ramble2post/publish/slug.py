"""Slugs: safe as a file name and a branch name, and unique in the blog repo.

A slug is ASCII ``[a-z0-9-]``, at most ``MAX_SLUG_LEN`` characters, never empty,
never starts or ends with ``-``, and so can never contain ``/``, ``..`` or a
character git refuses in a ref name. Uniqueness is checked by the caller's
``exists`` predicate (the post path or the ``drafts/<slug>`` branch exists), and
collisions get ``-2``, ``-3``... appended.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

MAX_SLUG_LEN = 60  # characters, before a "-N" suffix
FALLBACK_SLUG = "ramble"
_MAX_TRIES = 1000  # collisions before giving up

_NON_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def slugify(text: str, *, max_len: int = MAX_SLUG_LEN) -> str:
    """Turn any text (a title) into a path-safe slug; never returns ''."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    slug = _NON_SLUG.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        # cut at a word boundary when there is one in the second half
        if "-" in cut[max_len // 2 :]:
            cut = cut[: cut.rfind("-")]
        slug = cut.strip("-")
    return slug or FALLBACK_SLUG


def is_valid_slug(slug: str) -> bool:
    """True if ``slug`` is already in the safe form (used on user-given slugs)."""
    return bool(_SLUG_RE.match(slug)) and len(slug) <= MAX_SLUG_LEN + 6


def unique_slug(text: str, *, exists: Callable[[str], bool], max_len: int = MAX_SLUG_LEN) -> str:
    """``slugify(text)``, with ``-2``, ``-3``... appended while ``exists(slug)``."""
    base = slugify(text, max_len=max_len)
    if not exists(base):
        return base
    for n in range(2, _MAX_TRIES):
        candidate = f"{base}-{n}"
        if not exists(candidate):
            return candidate
    raise RuntimeError(f"no free slug for {base!r} after {_MAX_TRIES} tries")
