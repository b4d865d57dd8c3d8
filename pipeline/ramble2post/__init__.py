"""ramble2post: a spoken ramble in, a three-layer blog post draft out.

``ramble2post.run(audio=..., blog_repo=...)`` drafts a post (``ramble2post.api``); it is
imported on first use, so ``import ramble2post`` stays light (no models, no git).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ramble2post.version import __version__

__all__ = ["RunResult", "__version__", "run"]

if TYPE_CHECKING:
    from ramble2post.api import RunResult, run


def __getattr__(name: str) -> Any:
    """``run`` and ``RunResult`` from ``ramble2post.api``, imported when first asked for."""
    if name in ("run", "RunResult"):
        from ramble2post import api

        return getattr(api, name)
    raise AttributeError(f"module 'ramble2post' has no attribute {name!r}")
