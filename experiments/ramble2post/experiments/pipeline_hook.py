"""How the main command runs the experiments a ramble refers to.

``run_detected`` picks experiments (detected, none, or named), runs each on the
ramble's own audio and models, and saves every result under
``output_dir/<experiment>/``. An experiment that raises or runs out of memory
becomes a recorded failure; the draft still gets written.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ramble2post.config import DEFAULT_WHISPER, EXPERIMENT_LLM
from ramble2post.errors import ExperimentError, Ramble2PostError
from ramble2post.experiments.base import Context, Result, all_experiments, get, save_result
from ramble2post.experiments.detect import Detection, detect_experiments
from ramble2post.records import Transcript


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """One experiment's fate in a pipeline run."""

    experiment: str
    status: str  # "ok" | "failed"
    result: Result | None = None
    result_dir: str | None = None
    error: str | None = None  # one line for the user
    detail: str | None = None  # traceback tail, for the run log
    detection: Detection | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """What the draft renders: the result's JSON plus ``result_dir`` (plots are named
        relative to it); a failure is ``{"experiment", "error", "machine", ...}``."""
        if self.result is not None:
            d = self.result.to_dict()
            d["result_dir"] = self.result_dir
        else:
            from ramble2post.experiments.hardware import machine_label

            d = {
                "experiment": self.experiment,
                "error": self.error,
                "machine": machine_label(),
                "columns": [],
                "rows": [],
                "plots": [],
            }
        if self.detection is not None:
            d["detection"] = self.detection.to_dict()
        return d


def select(*, transcript: Transcript | str, selection: str = "auto") -> list[tuple[str, Detection | None]]:
    """Names to run: ``auto`` (detected), ``none``, ``all``, or a comma list ``a,b``.

    transcript: the ramble (or its text) that detection reads.
    selection: ``auto``, ``none``, ``all`` or comma-separated experiment names.
    """
    sel = (selection or "auto").strip().lower()
    if sel == "none":
        return []
    if sel == "auto":
        kept, _mentioned = with_claims(detect_experiments(transcript=transcript), transcript=transcript)
        return [(d.experiment, d) for d in kept]
    if sel == "all":
        return [(e.name, None) for e in all_experiments()]
    names = [n.strip() for n in sel.split(",") if n.strip()]
    for n in names:
        get(n)  # ExperimentError naming the known experiments
    detected = {d.experiment: d for d in detect_experiments(transcript=transcript)}
    return [(n, detected.get(n)) for n in dict.fromkeys(names)]


def with_claims(
    detections: Sequence[Detection], *, transcript: Transcript | str
) -> tuple[list[Detection], list[Detection]]:
    """(measured, mentioned): the detections near which the speaker claims something the experiment can
    test (``claims.claims_near`` with the other detections as rivals, ``verdicts.testable``), and those
    whose subject is only mentioned. A measurement answers a claim, not a topic: on 38 labelled rambles the
    rule runs 24 of 72 detected experiments, 13 of the 17 the labels back (``scripts/bench_quotes.py``)."""
    from ramble2post.experiments.claims import claims_near
    from ramble2post.experiments.detect import _segments
    from ramble2post.experiments.verdicts import JUDGES, testable

    segments = _segments(transcript)
    ids = {d.experiment: [e.segment_id for e in d.evidence if not e.context] for d in detections}
    kept: list[Detection] = []
    mentioned: list[Detection] = []
    for d in detections:
        rivals = [v for k, v in ids.items() if k != d.experiment]
        near = claims_near(segments, evidence=ids[d.experiment], rivals=rivals)
        judged = d.experiment in JUDGES  # an experiment without verdict rules runs whenever detected
        (kept if not judged or any(testable(d.experiment, c) for c, _ in near) else mentioned).append(d)
    return kept, mentioned


def run_detected(
    *,
    transcript: Transcript | str,
    output_dir: str | Path,
    selection: str = "auto",
    device: str | None = "cpu",
    quick: bool = False,
    whisper_model: str | None = None,
    llm: str | None = None,
    audio_path: str | Path | None = None,
    reference_text: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RunOutcome]:
    """Run the selected experiments; never raises for an experiment's own failure.

    transcript: the ramble (Transcript, or text) used for detection.
    output_dir: results go to ``output_dir/<experiment>/result.json`` (+ csv, png).
    selection: ``auto`` (what the ramble refers to), ``none``, ``all`` or comma-separated names.
    device: "cpu", "cuda", or "auto"/None (resolved here).
    quick: smaller parameter grids (a first look in minutes).
    whisper_model: Whisper model name or path; None = the project default.
    llm: LLM spec; None = the project default.
    audio_path: the ramble's audio (default: the transcript's audio_path).
    reference_text: a reference transcript for experiments that measure word error rate.
    progress: called with one line per step, prefixed with the experiment's name.
    """
    if audio_path is None and isinstance(transcript, Transcript):
        audio_path = transcript.audio_path
    if device in (None, "", "auto"):
        from ramble2post.machine import resolve_device

        device = resolve_device(device)
    if (selection or "auto").strip().lower() == "auto":
        kept, mentioned = with_claims(detect_experiments(transcript=transcript), transcript=transcript)
        chosen: list[tuple[str, Detection | None]] = [(d.experiment, d) for d in kept]
        for d in mentioned:
            if progress is not None:
                progress(
                    f"{d.experiment}: its subject is mentioned, but no claim it could test: not measured"
                    f" (--experiments {d.experiment} measures it anyway)"
                )
    else:
        chosen = select(transcript=transcript, selection=selection)
    outcomes: list[RunOutcome] = []
    for name, detection in chosen:
        exp = get(name)
        say = functools.partial(_prefixed, progress, name) if progress else None
        ctx = Context(
            device=device,
            quick=quick,
            whisper_model=whisper_model or DEFAULT_WHISPER,
            llm=llm or EXPERIMENT_LLM,
            audio_path=Path(audio_path) if audio_path else None,
            reference_text=reference_text,
            output_dir=Path(output_dir) / name,
            progress=say,
        )
        t0 = time.perf_counter()
        try:
            result = exp.measure(ctx)
            assert ctx.output_dir is not None  # set above, one folder per experiment
            result = save_result(result, ctx.output_dir)
            outcomes.append(
                RunOutcome(
                    name,
                    "ok",
                    result=result,
                    result_dir=str(ctx.output_dir),
                    detection=detection,
                    wall_s=time.perf_counter() - t0,
                )
            )
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - OOM, CUDA and bugs alike become a recorded failure
            if isinstance(e, SystemExit):
                raise
            outcomes.append(
                RunOutcome(
                    name,
                    "failed",
                    error=_one_line(e),
                    detail="".join(traceback.format_exception(e))[-4000:],
                    detection=detection,
                    wall_s=time.perf_counter() - t0,
                )
            )
            _free_memory()
    return outcomes


def _prefixed(progress: Callable[[str], None], name: str, msg: str) -> None:
    progress(f"{name}: {msg}")


def _one_line(e: BaseException) -> str:
    kind = "out of memory" if _is_oom(e) else type(e).__name__
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, Ramble2PostError):
        return msg + (f" ({e.hint})" if e.hint else "")
    return f"{kind}: {msg}" if msg else kind


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    try:
        import torch

        if isinstance(e, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return "out of memory" in str(e).lower()


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def failures(outcomes: Sequence[RunOutcome]) -> list[RunOutcome]:
    """The outcomes that did not produce a result."""
    return [o for o in outcomes if not o.ok]


__all__ = ["RunOutcome", "run_detected", "select", "failures", "ExperimentError"]
