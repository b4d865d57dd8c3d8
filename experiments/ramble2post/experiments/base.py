"""The experiment interface, the registry, and results (JSON + CSV + plots).

An experiment measures one claim that a ramble makes about hardware or models
("int4 barely hurts", "batching is nearly free") on *this* machine. Each one is
a subclass of :class:`Experiment` registered with ``@register``::

    @register
    class MyExperiment(Experiment):
        name = "my-experiment"
        version = "1"
        claim = "One line saying what is tested."
        triggers = (Trigger(r"\\bbatch(?:ing|ed)?\\b", label="batching"),)
        descriptions = ("batching requests multiplies tokens per second",)  # matched by meaning
        params = {"sizes": Param(default=(1, 2, 4), quick=(1, 2), help="batch sizes")}

        def run(self, context: Context) -> Result:
            p = self.resolve_params(context)
            ...
            return self.make_result(context, params=p, columns=..., rows=..., ...)

        def plot(self, results) -> dict[str, bytes]:   # optional
            ...

Results are plain data (``Result.to_dict`` validates against
:data:`RESULT_SCHEMA`); plots are re-drawn from results, so a later rerun on
another machine can draw all machines side by side from the stored JSON.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ramble2post.cache import atomic_write_bytes, atomic_write_json, atomic_write_text
from ramble2post.config import DEFAULT_WHISPER, EXPERIMENT_LLM
from ramble2post.errors import ExperimentError
from ramble2post.experiments.tables import ReaderTable, default_reader_table, header

RESULT_SCHEMA_VERSION = 1

# ---------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class Param:
    """One experiment parameter: its full-mode default and its ``--quick`` value."""

    default: Any
    help: str
    quick: Any = None  # None: same as default in quick mode


@dataclasses.dataclass(frozen=True)
class Trigger:
    """A phrase (regular expression, matched case-insensitively) that points at an experiment.

    ``weight`` adds up over a window of neighbouring segments; the experiment is
    detected when the window's score reaches 1.0. ``context=True`` marks a
    supporting word ("perplexity", "worse") that only counts next to a non-context hit.
    ``shared=True`` marks a word other claims use too (a dtype name, "eight bit").
    """

    pattern: str
    weight: float = 1.0
    label: str = ""
    context: bool = False
    # a word several claims use ("int8", "bf16", "four bit"): a detection resting only on shared words
    # yields to another experiment's own words in the same window (see experiments.detect)
    shared: bool = False


# ------------------------------------------------------------------- context


@dataclasses.dataclass(frozen=True)
class Context:
    """What an experiment runs on: the ramble's own models, audio and hardware."""

    device: str = "cpu"  # "cpu" | "cuda" (already resolved, see resolve_device)
    quick: bool = False
    whisper_model: str = DEFAULT_WHISPER  # Whisper name or checkpoint path
    llm: str = EXPERIMENT_LLM  # GGUF name or path
    audio_path: Path | None = None  # None: the experiment's own default (sample audio)
    reference_text: str | None = None  # what was said in audio_path, if known
    output_dir: Path | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # overrides
    progress: Callable[[str], None] | None = None

    def report(self, message: str) -> None:
        """Send a progress line to the caller (CLI spinner, log), if it listens."""
        if self.progress is not None:
            self.progress(message)


# -------------------------------------------------------------------- result


@dataclasses.dataclass(frozen=True)
class ModelUsed:
    """A model an experiment measured, with the checksum of the file loaded."""

    role: str  # "whisper" | "llm" | ...
    name: str
    path: str
    sha256: str
    source_sha256: str | None = None  # of the original download/package (e.g. CTranslate2 model.bin)


@dataclasses.dataclass(frozen=True)
class Result:
    """One run of one experiment on one machine."""

    experiment: str
    version: str
    params: Mapping[str, Any]
    models: tuple[ModelUsed, ...]
    hardware: Mapping[str, Any]  # experiments.hardware.fingerprint()
    machine: str  # short stable label, one column per machine in reruns
    started_at: str  # ISO 8601 UTC
    duration_s: float
    columns: tuple[str, ...]
    units: Mapping[str, str]  # column -> unit ("" for none)
    rows: tuple[tuple[Any, ...], ...]
    summary: Mapping[str, Any]  # key numbers, JSON scalars
    reading: str  # plain-language sentence templated from the numbers
    plots: tuple[str, ...] = ()  # file names next to result.json
    notes: tuple[str, ...] = ()
    device: str = "cpu"
    schema_version: int = RESULT_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rows"] = [[_json_scalar(v) for v in row] for row in self.rows]
        d["columns"] = list(self.columns)
        d["plots"] = list(self.plots)
        d["notes"] = list(self.notes)
        d["models"] = [dataclasses.asdict(m) for m in self.models]
        d["summary"] = {k: _json_scalar(v) for k, v in self.summary.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        d = dict(d)
        d["models"] = tuple(ModelUsed(**m) for m in d.get("models", ()))
        d["rows"] = tuple(tuple(r) for r in d["rows"])
        for key in ("columns", "plots", "notes"):
            d[key] = tuple(d.get(key, ()))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_csv(self) -> str:
        """The table as CSV, the unit in brackets after each column name."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([header(c, self.units) for c in self.columns])
        for row in self.rows:
            w.writerow(["" if v is None else v for v in row])
        return buf.getvalue()

    def column(self, name: str) -> list[Any]:
        """Values of one column, in row order."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


def _json_scalar(v: Any) -> Any:
    """NaN/inf are not JSON: store them as None. numpy scalars become Python ones."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


_SCALAR = {"type": ["string", "number", "integer", "boolean", "null"]}

RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ramble2post experiment result",
    "type": "object",
    "required": [
        "experiment",
        "version",
        "params",
        "models",
        "hardware",
        "machine",
        "started_at",
        "duration_s",
        "columns",
        "units",
        "rows",
        "summary",
        "reading",
        "plots",
        "device",
        "schema_version",
    ],
    "additionalProperties": False,
    "properties": {
        "experiment": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "version": {"type": "string", "minLength": 1},
        "params": {"type": "object"},
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "name", "path", "sha256"],
                "additionalProperties": False,
                "properties": {
                    "role": {"type": "string"},
                    "name": {"type": "string"},
                    "path": {"type": "string"},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "source_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                },
            },
        },
        "hardware": {
            "type": "object",
            "required": [
                "cpu_model",
                "cpu_cores_physical",
                "cpu_cores_logical",
                "ram_bytes",
                "gpus",
                "torch",
                "os",
                "python",
            ],
        },
        "machine": {"type": "string", "minLength": 1},
        "started_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$"},
        "duration_s": {"type": "number", "minimum": 0},
        "columns": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "units": {"type": "object", "additionalProperties": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "array", "items": _SCALAR}},
        "summary": {"type": "object", "additionalProperties": _SCALAR},
        "reading": {"type": "string", "minLength": 1},
        "plots": {"type": "array", "items": {"type": "string", "pattern": r"^[\w.-]+\.png$"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "device": {"type": "string", "enum": ["cpu", "cuda"]},
        "schema_version": {"const": RESULT_SCHEMA_VERSION},
    },
}


# ---------------------------------------------------------------- experiment


class Experiment:
    """Base class: subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    version: ClassVar[str]
    claim: ClassVar[str]
    triggers: ClassVar[tuple[Trigger, ...]] = ()
    params: ClassVar[Mapping[str, Param]] = {}
    # short plain-language statements of the claim, matched by meaning (experiments.detect_semantic)
    descriptions: ClassVar[tuple[str, ...]] = ()

    def run(self, context: Context) -> Result:  # pragma: no cover - interface
        raise NotImplementedError

    def measure(self, context: Context) -> Result:
        """Run the experiment; the framework stamps its start time and wall duration.

        Call this rather than ``run``: an experiment's ``run`` does the measuring only.
        """
        started, t0 = utc_now_iso(), time.perf_counter()
        result = self.run(context)
        return dataclasses.replace(result, started_at=started, duration_s=round(time.perf_counter() - t0, 3))

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        """PNG files (name -> bytes) drawn from one or more results (one per machine)."""
        return {}

    def reader_table(self, result: Result) -> ReaderTable:
        """The rows of ``result`` that answer the claim, for the post (override per experiment)."""
        return default_reader_table(result)

    def plot_alt(self, result: Result) -> str:
        """Alt text for the main plot: the finding in words, not a file name (override per experiment)."""
        return result.reading

    # helpers for subclasses -------------------------------------------------
    def resolve_params(self, context: Context) -> dict[str, Any]:
        """Defaults (quick values in quick mode), then the context's overrides."""
        unknown = sorted(set(context.params) - set(self.params))
        if unknown:
            raise ExperimentError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(self.params)) or 'none'}",
            )
        out = {}
        for key, p in self.params.items():
            out[key] = p.quick if (context.quick and p.quick is not None) else p.default
        out.update(context.params)
        return out

    def make_result(
        self,
        context: Context,
        *,
        params: Mapping[str, Any],
        models: Iterable[ModelUsed],
        columns: Sequence[str],
        units: Mapping[str, str],
        rows: Iterable[Sequence[Any]],
        summary: Mapping[str, Any],
        reading: str,
        notes: Iterable[str] = (),
        started_at: str | None = None,
        duration_s: float = 0.0,
    ) -> Result:
        """Build a :class:`Result` stamped with this machine's fingerprint.

        started_at, duration_s: left to :meth:`measure`, which stamps the real ones.
        """
        from ramble2post.experiments.hardware import fingerprint, machine_label

        fp = fingerprint()
        rows = tuple(tuple(r) for r in rows)
        for r in rows:
            if len(r) != len(columns):
                raise ExperimentError(f"{self.name}: row {r!r} does not match columns {columns!r}")
        return Result(
            experiment=self.name,
            version=self.version,
            params={k: _jsonable(v) for k, v in params.items()},
            models=tuple(models),
            hardware=fp,
            machine=machine_label(fp, device=context.device),
            started_at=started_at or utc_now_iso(),
            duration_s=round(float(duration_s), 3),
            columns=tuple(columns),
            units={c: units.get(c, "") for c in columns},
            rows=tuple(tuple(r) for r in rows),
            summary=dict(summary),
            reading=reading,
            notes=tuple(notes),
            device=context.device,
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def utc_now_iso() -> str:
    """Start time of a run, ISO 8601 in UTC with a Z, to the millisecond.

    Milliseconds because the time names the stored result file: two quick runs of
    one experiment on one machine can start within the same second.
    """
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.seconds`` (wall clock, perf_counter)."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


# ------------------------------------------------------------------ registry

_REGISTRY: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: add an experiment to the registry (names are unique)."""
    for attr in ("name", "version", "claim"):
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr):
            raise TypeError(f"{cls.__name__} must set a non-empty str {attr!r}")
    if "\n" in cls.claim:
        raise TypeError(f"{cls.__name__}.claim must be one line")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise TypeError(f"experiment name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


_IMPORT_ERRORS: dict[str, str] = {}  # module -> why it could not be imported


ENTRY_POINT_GROUP = "ramble2post.experiments"  # third-party packages register experiments here
_LOADED = False


def _experiment_modules() -> list[str]:
    """Every module of this package (an experiment registers itself when imported), plus plugins.

    No hand-kept list: a new module in ``experiments/`` that applies ``@register`` is found.
    Plugins name a module in the ``ramble2post.experiments`` entry-point group.
    """
    import importlib.metadata
    import pkgutil

    package = __name__.rsplit(".", 1)[0]
    here = sys.modules[package].__path__
    names = [f"{package}.{m.name}" for m in pkgutil.iter_modules(here) if not m.name.startswith("_")]
    names += [ep.value.split(":")[0] for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return names


def _load_builtin() -> None:
    """Import the modules that register experiments (once per process).

    A module that fails to import (a missing optional dependency, a bug) is
    recorded in ``_IMPORT_ERRORS`` instead of breaking every other experiment;
    ``get`` names the reason when its experiment is asked for.
    """
    import importlib

    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in _experiment_modules():
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - see docstring
            _IMPORT_ERRORS[mod] = f"{type(e).__name__}: {e}"


def all_experiments() -> list[Experiment]:
    """Every registered experiment, sorted by name."""
    _load_builtin()
    return [_REGISTRY[n]() for n in sorted(_REGISTRY)]


def get(name: str) -> Experiment:
    """The experiment called ``name`` (raises ExperimentError with the known names)."""
    _load_builtin()
    cls = _REGISTRY.get(name)
    if cls is None:
        broken = "; ".join(f"{m} failed to load ({why})" for m, why in _IMPORT_ERRORS.items())
        raise ExperimentError(
            f"no experiment called {name!r}" + (f" ({broken})" if broken else ""),
            hint=f"known experiments: {', '.join(sorted(_REGISTRY)) or 'none'} (see `ramble2post experiments list`)",
        )
    return cls()


# -------------------------------------------------------------------- saving


def save_result(result: Result, out_dir: str | Path) -> Result:
    """Write plots (PNG), ``result.csv`` and ``result.json`` (last) into ``out_dir``.

    Every file is written atomically; ``result.json`` comes last, so its presence
    means the run is complete. Returns the result with ``plots`` filled in.
    """
    out = Path(out_dir)
    names: list[str] = []
    try:
        exp = get(result.experiment)
    except ExperimentError:
        exp = None
    notes = result.notes
    if exp is not None:
        try:
            pngs = exp.plot([result])
        except Exception as e:  # noqa: BLE001 - a broken plot must not lose the measured numbers
            pngs = {}
            notes = (*notes, f"plot failed: {type(e).__name__}: {e}")
        for fname, data in pngs.items():
            atomic_write_bytes(out / fname, data)
            names.append(fname)
    result = dataclasses.replace(result, plots=tuple(names) or result.plots, notes=notes)
    atomic_write_text(out / "result.csv", result.to_csv())
    atomic_write_json(out / "result.json", result.to_dict())
    return result


def load_result(path: str | Path) -> Result:
    """Read a ``result.json`` (or a folder holding one) back into a Result."""
    import json

    p = Path(path)
    if p.is_dir():
        p = p / "result.json"
    try:
        return Result.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExperimentError(f"cannot read experiment result {p}: {e}") from e
