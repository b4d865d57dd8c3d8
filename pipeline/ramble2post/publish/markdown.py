"""Inert Markdown from untrusted text: escaping, fences, table cells, times.

Shared by the post renderer (``render``) and the measurements section (``measurements``),
so neither imports the other for these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_ESCAPE_CHARS = set("\\`*_{}[]()#+!|~<>&$")
_LINE_START = re.compile(r"^(\s*)([-+=>:]|\d+[.)])")
_DROP = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def md_escape(text: Any, *, line_start: bool = True) -> str:
    """One line of inert Markdown text showing exactly ``text``.

    ``line_start=False`` skips escaping list/heading markers at the start (for
    table cells, which never start a block).
    """
    s = " ".join(_DROP.sub("", str(text if text is not None else "")).split())
    s = "".join("\\" + c if c in _ESCAPE_CHARS else c for c in s)
    if not line_start:
        return s
    # a leading "-", "+", "=", ">", ":" or "1." would start a list/heading/quote: escape its punctuation
    return _LINE_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], s)


def fence(text: str, info: str = "") -> str:
    """A fenced code block whose fence cannot be closed by ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * max(3, longest + 1)
    return f"{tick}{info}\n{text.rstrip()}\n{tick}"


def fmt_time(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a time in seconds."""
    if seconds is None:
        return "?"
    s = int(round(float(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def fmt_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return str(value)


def md_table(columns: list[str], rows: Iterable[Any]) -> str:
    """A GFM table; every cell escaped (``|`` included)."""
    cols = [str(c) for c in columns]
    out = ["| " + " | ".join(md_escape(c, line_start=False) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [row.get(c) for c in cols] if isinstance(row, dict) else list(row)
        cells = (cells + [None] * len(cols))[: len(cols)]
        out.append("| " + " | ".join(md_escape(fmt_cell(c), line_start=False) for c in cells) + " |")
    return "\n".join(out)
