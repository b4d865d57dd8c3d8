"""What a reader sees of a result: a few rows with units and one sentence (``ReaderTable``).

Kept apart from ``base`` (which re-exports it) so the framework module stays small; it needs
only the shape of a ``Result`` (``columns``, ``units``, ``rows``, ``reading``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol


class Result(Protocol):
    """The shape of ``ramble2post.experiments.base.Result`` a reader table needs (no import back: no cycle)."""

    @property
    def columns(self) -> Sequence[str]: ...
    @property
    def rows(self) -> Sequence[Sequence[Any]]: ...
    @property
    def units(self) -> Mapping[str, Any]: ...
    @property
    def reading(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class ReaderTable:
    """The few rows of a result that answer the ramble's claim, shown in the post.

    The full table stays in result.json / results.csv beside the plot; this is what a
    reader takes in at a glance: at most ``MAX_ROWS`` rows and ``MAX_COLUMNS`` columns,
    the unit in each header ("tokens/s", "KiB"), and one sentence saying what they show.
    """

    columns: tuple[str, ...]  # headers, unit included: "batch", "throughput [tokens/s]"
    rows: tuple[tuple[Any, ...], ...]
    finding: str  # one sentence, templated from the numbers

    MAX_ROWS: ClassVar[int] = 12
    MAX_COLUMNS: ClassVar[int] = 7

    @classmethod
    def pick(
        cls, result: Result, columns: Mapping[str, str], *, finding: str, rows: Sequence[Sequence[Any]] | None = None
    ) -> ReaderTable:
        """Some of ``result``'s columns (result column -> header with unit), first ``MAX_ROWS`` of ``rows``."""
        idx = [result.columns.index(c) for c in columns]
        chosen = result.rows if rows is None else rows
        return cls(
            columns=tuple(columns.values()),
            rows=tuple(tuple(r[i] for i in idx) for r in chosen[: cls.MAX_ROWS]),
            finding=finding,
        )

    def __post_init__(self) -> None:
        if len(self.columns) > self.MAX_COLUMNS or len(self.rows) > self.MAX_ROWS:
            raise ValueError(
                f"reader table is {len(self.rows)}x{len(self.columns)}; at most {self.MAX_ROWS}x{self.MAX_COLUMNS}"
            )
        if any(len(r) != len(self.columns) for r in self.rows):
            raise ValueError("reader table: every row needs one value per column")


def sample_rows(rows: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` rows, first and last kept, the rest evenly spaced."""
    if len(rows) <= n:
        return list(rows)
    step = (len(rows) - 1) / (n - 1)
    return [rows[i] for i in sorted({round(i * step) for i in range(n)})]


def header(column: str, units: Mapping[str, Any]) -> str:
    """A column name with its unit in brackets: "throughput [tokens/s]"."""
    unit = units.get(column)
    return f"{column} [{unit}]" if unit else str(column)


def default_reader_table(result: Result) -> ReaderTable:
    """A generic reader table: the first columns, rows sampled evenly (first and last kept)."""
    cols = list(result.columns[: ReaderTable.MAX_COLUMNS])
    rows = tuple(tuple(r[: len(cols)]) for r in sample_rows(result.rows, ReaderTable.MAX_ROWS))
    return ReaderTable(columns=tuple(header(c, result.units) for c in cols), rows=rows, finding=result.reading)
