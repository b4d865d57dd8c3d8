"""What a post shows of each experiment: reader tables, findings, alt text, and plots a reader can read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ramble2post.experiments import plots, plots_batching
from ramble2post.experiments.base import ReaderTable, Result, get, load_result
from ramble2post.experiments.quantization_loss import COLUMNS as QUANT_COLUMNS
from ramble2post.experiments.quantization_loss import UNITS as QUANT_UNITS

RESULTS = Path(__file__).resolve().parent / "data" / "results"


def _quant_result() -> Result:
    kv = load_result(RESULTS / "kv-cache-growth.json")  # borrow a real fingerprint
    schemes = [("fp32", 32, 290, 1.0, 0.0, 100.0), ("int8", 8.25, 75, 1.002, 0.0012, 99.1)]
    schemes += [("int4", 4.25, 40, 1.08, 0.05, 93.0), ("int4-g32", 5.0, 45, 1.03, 0.02, 96.0)]
    schemes += [(f"x{i}", 3, 30, 2.0, 0.5, 60.0) for i in range(12)]  # more rows than a reader needs
    rows = []
    for name, bits, mb, ppl, kld, top in schemes:
        r = dict.fromkeys(QUANT_COLUMNS, 0.0)
        r.update(scheme=name, bits_per_weight=bits, model_MB=mb, ppl_ratio=ppl, mean_KLD=kld, same_top1_pct=top)
        rows.append(tuple(r[c] for c in QUANT_COLUMNS))
    return dataclasses.replace(
        kv,
        experiment="quantization-loss",
        columns=QUANT_COLUMNS,
        units={c: QUANT_UNITS.get(c, "") for c in QUANT_COLUMNS},
        rows=tuple(rows),
        summary={},
        reading="With int8 weights, Whisper base kept the same token 99.1% of the time. Per-channel int4 moved it.",
    )


@pytest.fixture(params=["kv-cache-growth", "batching-speedup", "quantization-loss"])
def result(request) -> Result:
    if request.param == "quantization-loss":
        return _quant_result()
    return load_result(RESULTS / f"{request.param}.json")


def test_reader_table_is_small_with_units_and_one_finding(result):
    exp = get(result.experiment)
    table = exp.reader_table(result)
    assert isinstance(table, ReaderTable)
    assert 2 <= len(table.rows) <= 12 and len(table.columns) <= 7
    assert sum("[" in c for c in table.columns) >= len(table.columns) - 3  # units in the headers
    assert len(table.rows) < len(result.rows)  # a selection, not the raw result
    assert table.finding.endswith(".") and table.finding.count(". ") == 0  # one sentence
    alt = exp.plot_alt(result)
    assert table.finding.split(":")[0] in alt and ".png" not in alt


def test_kv_finding_states_the_growth_per_token():
    res = load_result(RESULTS / "kv-cache-growth.json")
    finding = get("kv-cache-growth").reader_table(res).finding
    assert finding.startswith("The KV cache grows linearly") and "24.0 KiB per token for whisper-base" in finding


def test_a_result_the_hook_cannot_read_gets_the_generic_table():
    res = load_result(RESULTS / "kv-cache-growth.json")
    odd = dataclasses.replace(res, columns=("a", "b"), units={"a": "s"}, rows=tuple((i, i) for i in range(40)))
    table = get("kv-cache-growth").reader_table(odd)
    assert table.columns == ("a [s]", "b") and len(table.rows) == 12


@pytest.mark.parametrize("name", ["kv-cache-growth", "batching-speedup", "quantization-loss"])
def test_plots_have_few_series_per_panel_and_the_legend_outside(name, monkeypatch):
    res = _quant_result() if name == "quantization-loss" else load_result(RESULTS / f"{name}.json")
    seen = []

    def capture(fig):
        seen.append(fig)
        fig.canvas.draw()
        return b"png"

    monkeypatch.setattr(plots_batching, "fig_to_png", capture)
    monkeypatch.setattr(plots, "fig_to_png", capture)
    get(name).plot([res])
    (fig,) = seen
    for ax in fig.axes:
        handles, _labels = ax.get_legend_handles_labels()
        assert len(handles) <= 6, (name, ax.get_title(), len(handles))
        legend = ax.get_legend()
        if legend is not None:  # below the data: the legend's top is under the axes' bottom
            assert legend.get_window_extent().y1 <= ax.get_window_extent().y0 + 1, (name, ax.get_title())
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                assert "log scale" in axis.get_label_text(), (name, axis.get_label_text())
