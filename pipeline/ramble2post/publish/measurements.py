"""The measurements a post carries: a reader's view of each experiment result.

A stored result is the full table (a ``kv-cache-growth`` run is ~100 rows by 12
columns). The post shows what a reader can take in: the claims the speaker made,
quoted with their time, each with a plain verdict per machine (``experiments.verdicts``:
holds here, holds in part, does not hold here, not testable on this machine); one sentence saying what the numbers show; the few rows that
answer it (``Experiment.reader_table``: at most 12 rows by 7 columns, units in the
headers); the plot, with alt text that states the finding (``Experiment.plot_alt``);
and links to the full results (``results/<name>.csv`` and ``.json``, committed
beside the plot).

The section sits right after the layer of the post that the claim supports (the
layer holding a sentence from the segment the claim was detected in), between the
``<!-- ramble2post:measurements -->`` markers so that ``rerun`` can replace it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ramble2post.experiments.tables import ReaderTable, header, sample_rows
from ramble2post.publish.blog import BlogLayout
from ramble2post.publish.markdown import fmt_cell, md_table
from ramble2post.publish.slug import slugify

log = logging.getLogger(__name__)

MEASUREMENTS_START = "<!-- ramble2post:measurements -->"
MEASUREMENTS_END = "<!-- /ramble2post:measurements -->"
MAX_SUMMARY_LINES = 6  # key numbers listed when a result has no table
MAX_NOTES = 3  # notes shown in the post; every note stays in the JSON


class ExperimentRecord(Protocol):
    """An experiment result on its way into a post: a fresh run (``experiments.pipeline_hook.RunOutcome``)
    or a result already stored as JSON (``StoredResult``). ``to_dict`` is the JSON the post keeps."""

    def to_dict(self) -> dict[str, Any]:
        """The result's JSON plus ``result_dir`` (plots named relative to it) and its ``detection``."""
        ...


@dataclasses.dataclass(frozen=True)
class StoredResult:
    """A result that is JSON already: read back from a blog repo, or written by another version."""

    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A copy of the stored JSON."""
        return dict(self.data)


def machine_name(result: Mapping[str, Any]) -> str:
    """Human name of the machine a result was measured on."""
    hw = result.get("hardware") or {}
    if hw.get("label"):
        return str(hw["label"])
    if hw.get("cpu_model"):  # an experiments.hardware fingerprint
        try:
            from ramble2post.experiments.hardware import describe

            return f"{describe(hw)} ({result.get('machine', '')})".replace(" ()", "")
        except Exception:  # noqa: BLE001 - a label is cosmetic; fall back to the short name
            pass
    return str(result.get("machine") or hw.get("cpu_model") or "unknown machine")


def generic_reader_table(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]], str]:
    """(headers, rows, finding) for a result no experiment class can read: first columns, rows sampled evenly."""
    columns = [str(c) for c in result.get("columns") or []][: ReaderTable.MAX_COLUMNS]
    units = result.get("units") or {}
    rows = [list(r) if not isinstance(r, Mapping) else [r.get(c) for c in columns] for r in result.get("rows") or []]
    return (
        [header(c, units) for c in columns],
        [r[: len(columns)] for r in sample_rows(rows, ReaderTable.MAX_ROWS)],
        str(result.get("reading") or ""),
    )


def reader_view(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]], str, str]:
    """(headers, rows, finding, plot alt) through the experiment's own hooks, else the generic table."""
    from ramble2post.experiments.base import Result, get

    try:
        exp = get(str(result.get("experiment")))
        r = Result.from_dict({k: v for k, v in result.items() if k not in ("detection", "claim", "result_dir")})
        table = exp.reader_table(r)
        alt = exp.plot_alt(r)
        return list(table.columns), [list(row) for row in table.rows], table.finding, alt
    except Exception as e:  # noqa: BLE001 - a result an experiment cannot read still gets a table
        log.debug("reader table for %s: generic (%s)", result.get("experiment"), e)
        headers, rows, finding = generic_reader_table(result)
        return headers, rows, finding, finding or f"{result.get('experiment', 'experiment')} plot"


def result_csv(result: Mapping[str, Any]) -> str:
    """The full table as CSV, the unit in brackets after each column name (as Result.to_csv)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    columns = [str(c) for c in result.get("columns") or []]
    w.writerow([header(c, result.get("units") or {}) for c in columns])
    for row in result.get("rows") or []:
        cells = [row.get(c) for c in columns] if isinstance(row, Mapping) else list(row)
        w.writerow(["" if v is None else v for v in cells])
    return buf.getvalue()


# ------------------------------------------------------------ the claim


def find_claim(result: Mapping[str, Any], segments: Sequence[Any]) -> dict[str, Any] | None:
    """The ramble's sentence that made the claim: ``{"segment_id", "start", "end", "text"}`` or None.

    From the result's detection evidence (the strongest non-context hit, earliest
    first); without one, the experiment's detector is run on the transcript.
    """
    evidence = list(((result.get("detection") or {}).get("evidence")) or [])
    if not evidence and segments:
        try:
            from ramble2post.experiments.base import get
            from ramble2post.experiments.detect import detect_experiments

            exp = get(str(result.get("experiment")))
            for d in detect_experiments(transcript=list(segments), experiments=[exp]):
                evidence = [e.__dict__ for e in d.evidence]
        except Exception as e:  # noqa: BLE001 - no quote is better than no post
            log.debug("claim detection for %s failed: %s", result.get("experiment"), e)
    hits = [e for e in evidence if not e.get("context")] or evidence
    if not hits:
        return None
    best = sorted(hits, key=lambda e: (-float(e.get("weight") or 0), float(e.get("start") or 0)))[0]
    by_id = {int(s.id): s for s in segments}
    seg = by_id.get(int(best.get("segment_id", -1)))
    return {
        "segment_id": int(best.get("segment_id", -1)),
        "start": float(seg.start if seg else best.get("start") or 0.0),
        "end": float(seg.end if seg else best.get("end") or 0.0),
        "text": str(seg.text if seg else best.get("quote") or ""),
    }


MAX_CLAIMS = 2  # claims quoted per experiment: the ones nearest the detection first


def _evidence_ids(result: Mapping[str, Any]) -> list[int]:
    """Segment ids whose own words detected ``result``'s experiment (its quoted claim's, without them)."""
    evidence = list(((result.get("detection") or {}).get("evidence")) or [])
    near = [int(e["segment_id"]) for e in evidence if not e.get("context") and "segment_id" in e]
    claim = result.get("claim") or {}
    if not near and int(claim.get("segment_id", -1)) >= 0:
        near = [int(claim["segment_id"])]
    return near


def claims_for(
    result: Mapping[str, Any], segments: Sequence[Any], *, rivals: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The speaker's testable claims about this experiment (``experiments.claims.claims_near``: near the
    evidence its detection rests on, nearer it than the other measured experiments' in ``rivals``) that the
    result can judge: a stated multiple first, then a guarantee, then the nearest; one it cannot test here
    last. None: a mention only."""
    from ramble2post.experiments.claims import claims_near
    from ramble2post.experiments.verdicts import UNTESTABLE, judge

    if not segments:
        return []
    name = result.get("experiment")
    others = [_evidence_ids(r) for r in rivals if r.get("experiment") != name and not r.get("error")]
    ranked = []
    for c, distance in claims_near(segments, evidence=_evidence_ids(result), rivals=others):
        v = judge(result, c)
        if v is not None:
            strength = 0 if c.factor is not None else 1 if c.kind == "guarantee" else 2
            ranked.append(((v.verdict == UNTESTABLE, strength, distance, c.start), c))
    ranked.sort(key=lambda x: x[0])
    return [c.to_dict() for _, c in ranked[:MAX_CLAIMS]]


def verdict_views(claims: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each claim with one verdict per machine's result (experiments.verdicts); a claim the experiment cannot
    test says so. ``fails``: machines where it does not hold (each is a VERIFY mark for the author)."""
    from ramble2post.experiments.claims import Claim
    from ramble2post.experiments.verdicts import FAILS, UNTESTABLE, Verdict, judge

    out = []
    for c in claims:
        claim = Claim.from_dict(c)
        verdicts = []
        for r in results:
            if r.get("error"):
                continue
            v = judge(r, claim) or Verdict(
                UNTESTABLE, "-", "-", "the experiment does not measure what this sentence claims", machine_name(r)
            )
            verdicts.append({**v.to_dict(), "machine": machine_name(r)})
        out.append({**c, "verdicts": verdicts, "fails": sum(v["verdict"] == FAILS for v in verdicts)})
    return out


def anchor_layer(claims: Sequence[dict[str, Any] | None], layers: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The layer the measurements follow: the first one holding a sentence from a claim's segment.

    Else the layer whose sentences were said closest to the claim; else the last layer.
    """
    order = list(layers)
    ids = {c["segment_id"] for c in claims if c}
    for key in order:
        if any(ids & set(it.get("sources") or ()) for it in layers[key]):
            return key
    starts = [c["start"] for c in claims if c]
    if starts:
        timed = [
            (abs(it["start"] - starts[0]), i, k)
            for i, k in enumerate(order)
            for it in layers[k]
            if it["start"] is not None
        ]
        if timed:
            return min(timed)[2]
    return order[-1]


# ------------------------------------------------------------ files and views


def _plot_source(result: Mapping[str, Any], p: Any) -> Path:
    src = Path(str(p))
    if not src.is_absolute() and result.get("result_dir"):
        src = Path(str(result["result_dir"])) / src  # experiments store plot names next to result.json
    return src


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def stage_experiment_files(
    results: Sequence[Mapping[str, Any]], *, layout: BlogLayout, slug: str, segments: Sequence[Any] = ()
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Copy plots/results into the draft's assets folder; return the stored results and files.

    ``plots`` may be absolute paths, or names relative to ``result_dir``. Stored
    results reference their plots by repo path; each result is one JSON file
    ``results/<experiment>--<machine>--<time>.json`` (plus the same table as
    ``.csv``) so a later rerun adds files (another machine's column) instead of
    editing these. ``segments``: the transcript's, to quote the claim.
    """
    files: dict[str, bytes] = {}
    stored: list[dict[str, Any]] = []
    adir = layout.assets_dir(slug)
    for i, res in enumerate(results):
        res = dict(res)
        stem = _stem(res, i)
        new_plots = []
        for j, p in enumerate(res.get("plots") or []):
            src = _plot_source(res, p)
            if src.suffix.lower() != ".png" or not src.is_file():
                continue  # only PNG plots that exist; never arbitrary files
            name = f"{stem}--{j + 1}.png"
            files[f"{adir}/{name}"] = src.read_bytes()
            new_plots.append(f"{adir}/{name}")
        res["plots"] = new_plots
        res.pop("result_dir", None)
        if "claim" not in res and not res.get("error"):
            res["claim"] = find_claim(res, segments)
        if "claims" not in res and not res.get("error"):
            res["claims"] = claims_for(res, segments, rivals=results)
        files[f"{adir}/results/{stem}.json"] = _json_bytes(res)
        if res.get("columns"):
            files[f"{adir}/results/{stem}.csv"] = result_csv(res).encode("utf-8")
        stored.append(res)
    return stored, files


def _stem(res: Mapping[str, Any], i: int) -> str:
    exp = slugify(str(res.get("experiment", "experiment")), max_len=40)
    machine = slugify(str(res.get("machine") or machine_name(res)), max_len=40)
    return f"{exp}--{machine}--{slugify(str(res.get('started_at', i)), max_len=30)}"


def _summary_text(summary: Any) -> list[str]:
    if isinstance(summary, dict):
        return [f"{k}: {fmt_cell(v)}" for k, v in summary.items()]
    return [str(summary)] if summary else []


def experiment_view(result: Mapping[str, Any], *, layout: BlogLayout, slug: str, index: int = 0) -> dict[str, Any]:
    """What measurements.md.j2 shows of one stored result."""
    from markupsafe import Markup

    headers, rows, finding, alt = reader_view(result) if result.get("columns") else ([], [], "", "")
    stem = _stem(result, index)
    has_table = bool(headers)
    reading = str(result.get("reading") or "")
    return {
        "name": result.get("experiment", "experiment"),
        "version": result.get("version", ""),
        "hardware": machine_name(result),
        "started_at": result.get("started_at", ""),
        "duration_s": result.get("duration_s"),
        "claim": result.get("claim"),
        "finding": finding,
        # key numbers only when there is no table (all of them stay in the JSON)
        "summary": [] if has_table else _summary_text(result.get("summary"))[:MAX_SUMMARY_LINES],
        "reading": "" if has_table else reading,  # with a table, the finding says it (the JSON keeps it)
        "notes": [str(n) for n in result.get("notes") or []][:MAX_NOTES],
        "more_notes": max(0, len(result.get("notes") or []) - MAX_NOTES),
        "error": result.get("error"),
        "table": Markup(md_table(headers, rows)) if has_table else None,
        "plots": [{"ref": layout.asset_ref(slug, p.rsplit("/", 1)[-1]), "alt": alt} for p in result.get("plots") or []],
        "csv": layout.asset_ref(slug, f"results/{stem}.csv") if result.get("columns") else None,
        "json": layout.asset_ref(slug, f"results/{stem}.json"),
    }


def experiment_views(stored: Sequence[Mapping[str, Any]], *, layout: BlogLayout, slug: str) -> list[dict[str, Any]]:
    """Views of stored results, grouped by experiment (first appearance), then by start time."""
    order: dict[str, int] = {}
    for r in stored:
        order.setdefault(str(r.get("experiment")), len(order))
    ranked = sorted(
        enumerate(stored), key=lambda ir: (order[str(ir[1].get("experiment"))], str(ir[1].get("started_at", "")))
    )
    views = [experiment_view(r, layout=layout, slug=slug, index=i) for i, r in ranked]
    seen: set[str] = set()
    for v in views:  # quote the claims once per experiment, with every machine's verdict
        same = [x for x in stored if x.get("experiment") == v["name"]]
        claims: list[dict[str, Any]] = next((x["claims"] for x in same if x.get("claims")), [])
        v["claims"] = [] if v["name"] in seen else verdict_views(claims, same)
        v["fails"] = sum(c["fails"] for c in v["claims"])
        v["mention_only"] = v["name"] not in seen and not claims and bool(v["claim"]) and not v["error"]
        if v["name"] in seen:
            v["claim"] = None
        seen.add(str(v["name"]))
    return views


def main_plot(stored: Sequence[Mapping[str, Any]]) -> str | None:
    """Repo path of the post's main plot (the first successful experiment's first plot), for ogImage."""
    for r in stored:
        if not r.get("error") and r.get("plots"):
            return str(r["plots"][0])
    return None
