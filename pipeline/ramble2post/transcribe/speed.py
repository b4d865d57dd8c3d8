"""This machine's transcription speed, learned from its own runs, for ``--plan``'s estimate.

``--plan`` multiplies a built-in real-time factor (measured on one 2-core box, ``stage.RTF_ESTIMATE``)
by the audio's length. Machines differ: two VMs of the same kind ran the same 67-min file in 100 s and
160 s, so a fixed factor was 21 % short on the slower one (issue 26). After each real decode the
command notes how long the work took against what the built-in estimate assumed (the whole
command: ``stage.COMMAND_OVERHEAD_S`` plus the audio's length times the factor); ``--plan`` then scales that
estimate by the median of the last ``KEPT_RUNS`` ratios on the same device. (A first version scaled only the
length term by the decode's own time: the 8-min clips came out 1.4-2.2x, the 13-min one 1.3x, and the
estimates for 8-min clips 14-26 % long.) The record is
``cache_dir()/timings.json``: deleting it goes back to the built-in figures.
"""

from __future__ import annotations

import json
import logging
import statistics
from typing import Any

from ramble2post.cache import atomic_write_json
from ramble2post.config import cache_dir

log = logging.getLogger(__name__)

KEPT_RUNS = 8  # runs per device; the median of their ratios is the machine's speed
MIN_AUDIO_S = 30.0  # s; shorter runs say more about start-up noise than speed, and are not noted
# a ratio outside this range is a broken run (a machine asleep, a debugger), not a speed
RATIO_RANGE = (0.1, 10.0)


def _path() -> Any:
    return cache_dir() / "timings.json"


def _read() -> dict[str, list[dict[str, Any]]]:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# s: what a command spends before the stage's own clock starts (Python, click, the CLI's modules; the
# 13-min sample: 34.5 s of wall time, 33.7 s measured by the stage)
OUTSIDE_S = 1.0


def note_run(*, device: str, model: str, engine: str, audio_s: float, work_s: float, assumed_s: float) -> None:
    """Keep one transcription's time against the built-in estimate; never fails the run that reports it.

    device: "cpu" or "cuda"; model, engine: what ran (kept for the reader of the file).
    audio_s: seconds of audio; work_s: seconds the stage took (audio decoding, model load, decoding).
    assumed_s: the built-in estimate of the whole command for this run (s), before any speed factor.
    """
    if audio_s < MIN_AUDIO_S or assumed_s <= 0:
        return
    ratio = (work_s + OUTSIDE_S) / assumed_s
    if not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
        return
    data = _read()
    runs = [r for r in data.get(device, []) if isinstance(r, dict)]
    runs.append({"model": model, "engine": engine, "audio_s": round(audio_s, 1), "work_s": round(work_s, 2)})
    runs[-1]["ratio"] = round(ratio, 4)
    data[device] = runs[-KEPT_RUNS:]
    try:
        atomic_write_json(_path(), data)
    except OSError as e:  # a read-only cache: the estimate stays the built-in one
        log.debug("speed record not written: %s", e)


def machine_factor(device: str) -> tuple[float, int]:
    """(factor, runs): the median ratio of measured to assumed time on ``device``; (1.0, 0) unmeasured."""
    ratios = [
        float(r["ratio"])
        for r in _read().get(device, [])
        if isinstance(r, dict)
        and isinstance(r.get("ratio"), int | float)
        and RATIO_RANGE[0] <= r["ratio"] <= RATIO_RANGE[1]
    ]
    return (round(statistics.median(ratios), 3), len(ratios)) if ratios else (1.0, 0)
