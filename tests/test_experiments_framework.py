"""Experiment framework: registry, params, result schema, saving, plots, hardware, pipeline hook, CLI."""

from __future__ import annotations

import json
import struct

import jsonschema
import pytest
from click.testing import CliRunner

from ramble2post import experiments
from ramble2post.errors import ExperimentError
from ramble2post.experiments import base
from ramble2post.experiments.base import Context, Experiment, Param, Result, register


@pytest.fixture()
def scratch_registry():
    """Register test-only experiments and remove them afterwards."""
    before = dict(base._REGISTRY)
    yield register
    base._REGISTRY.clear()
    base._REGISTRY.update(before)


def _fake_result(**over) -> Result:
    rows = [
        ("fp32", 32, 151.0, 0.0, 2.0, 1.0, 0.0, 0.0, 100.0, 0.0, 9.9, 0.0, None),
        ("fp16", 16, 78.0, 0.0, 2.0, 1.0, 0.0, 0.0, 100.0, 0.0, None, None, None),
        ("int8", 8.04, 42.0, 0.01, 2.01, 1.005, 0.002, 0.02, 99.5, 2.0, 9.4, -0.5, None),
        ("int4", 4.04, 24.0, 0.18, 18.7, 9.4, 2.3, 10.0, 51.0, 57.0, 97.0, 87.0, None),
        ("int2", 2.04, 15.0, 0.85, 9e4, 4e4, 10.4, 13.0, 0.0, 85.0, 100.0, 90.0, None),
        ("int4-g32", 4.5, 26.0, 0.11, 2.4, 1.2, 0.25, 1.9, 88.0, 18.0, None, None, None),
    ]
    from ramble2post.experiments.quantization_loss import COLUMNS, UNITS

    exp = experiments.get("quantization-loss")
    res = exp.make_result(
        Context(device="cpu"),
        params={"schemes": ("fp16", "int8")},
        models=[experiments.ModelUsed("whisper", "tiny.en", "/x/tiny.en.pt", "a" * 64)],
        started_at=base.utc_now_iso(),
        duration_s=1.5,
        columns=COLUMNS,
        units=UNITS,
        rows=rows,
        summary={"tokens": 227, "ok": True, "nan": float("nan")},
        reading="A sentence.",
    )
    return res


def test_registry_lists_and_gets_quantization_loss():
    names = [e.name for e in experiments.all_experiments()]
    assert "quantization-loss" in names and names == sorted(names)
    exp = experiments.get("quantization-loss")
    assert exp.claim and "\n" not in exp.claim and exp.triggers
    with pytest.raises(ExperimentError) as ei:
        experiments.get("no-such-thing")
    assert "quantization-loss" in ei.value.hint


def test_register_rejects_incomplete_and_duplicate(scratch_registry):
    with pytest.raises(TypeError):

        @scratch_registry
        class NoClaim(Experiment):
            name, version = "no-claim", "1"

    @scratch_registry
    class A(Experiment):
        name, version, claim = "dup-test", "1", "x"

    with pytest.raises(TypeError):

        @scratch_registry
        class B(Experiment):
            name, version, claim = "dup-test", "1", "y"


def test_params_quick_defaults_and_overrides(scratch_registry):
    @scratch_registry
    class P(Experiment):
        name, version, claim = "param-test", "1", "x"
        params = {"n": Param(100, "size", quick=5), "mode": Param("a", "mode")}

    exp = experiments.get("param-test")
    assert exp.resolve_params(Context()) == {"n": 100, "mode": "a"}
    assert exp.resolve_params(Context(quick=True)) == {"n": 5, "mode": "a"}
    assert exp.resolve_params(Context(quick=True, params={"n": 7}))["n"] == 7
    with pytest.raises(ExperimentError):
        exp.resolve_params(Context(params={"bogus": 1}))


def test_result_validates_against_schema_and_round_trips():
    res = _fake_result()
    d = res.to_dict()
    jsonschema.validate(d, experiments.RESULT_SCHEMA)
    assert d["summary"]["nan"] is None  # NaN is not JSON
    assert d["machine"].startswith("cpu-")
    back = Result.from_dict(json.loads(json.dumps(d)))
    assert back.rows == res.rows and back.columns == res.columns and back.models == res.models


def test_schema_rejects_broken_results():
    d = _fake_result().to_dict()
    for key, bad in [("started_at", "yesterday"), ("duration_s", -1), ("device", "tpu"), ("rows", [[{}]])]:
        broken = dict(d, **{key: bad})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, experiments.RESULT_SCHEMA)
    missing = {k: v for k, v in d.items() if k != "hardware"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, experiments.RESULT_SCHEMA)


def test_make_result_rejects_ragged_rows():
    exp = experiments.get("quantization-loss")
    with pytest.raises(ExperimentError):
        exp.make_result(
            Context(),
            params={},
            models=[],
            started_at=base.utc_now_iso(),
            duration_s=0,
            columns=("a", "b"),
            units={},
            rows=[(1,)],
            summary={},
            reading="x",
        )


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_save_result_writes_json_csv_and_a_real_plot(tmp_path):
    saved = experiments.save_result(_fake_result(), tmp_path / "out")
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == {"result.json", "result.csv", "quantization-loss.png"}  # no temp files left
    assert saved.plots == ("quantization-loss.png",)
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    jsonschema.validate(data, experiments.RESULT_SCHEMA)
    csv_lines = (tmp_path / "out" / "result.csv").read_text().splitlines()
    assert csv_lines[0].startswith("scheme,bits_per_weight [bit],model_MB")
    assert len(csv_lines) == 1 + len(saved.rows)
    png = (tmp_path / "out" / "quantization-loss.png").read_bytes()
    w, h = _png_size(png)
    assert w >= 800 and h >= 400 and len(png) > 20_000
    assert experiments.load_result(tmp_path / "out").rows == saved.rows


def test_plot_draws_several_machines(tmp_path):
    import dataclasses

    from ramble2post.experiments.plots import quantization_loss_png

    a = _fake_result()
    b = dataclasses.replace(a, machine="nvidia-h100-80gb-hbm3")
    png = quantization_loss_png([a, b])
    assert _png_size(png)[0] >= 800 and len(png) > 20_000


def test_hardware_fingerprint_and_label():
    from ramble2post.experiments.hardware import describe, fingerprint, machine_label

    fp = fingerprint()
    for k in ("cpu_model", "cpu_cores_logical", "ram_bytes", "gpus", "torch", "os", "python", "llama_cpp_python"):
        assert k in fp
    assert fp["ram_bytes"] > 0 and fp["cpu_cores_logical"] >= 1
    label = machine_label(fp)
    assert label == machine_label(fp) and label.startswith("cpu-") and label.endswith("c")
    gpu_fp = dict(fp, gpus=[{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30}])
    assert machine_label(gpu_fp, device="cuda") == "nvidia-h100-80gb-hbm3"
    assert "GiB RAM" in describe(fp)


def test_pipeline_hook_records_failures_instead_of_crashing(scratch_registry, tmp_path):
    from ramble2post.experiments.base import Trigger
    from ramble2post.experiments.pipeline_hook import failures, run_detected

    @scratch_registry
    class Boom(Experiment):
        name, version, claim = "boom-test", "1", "always runs out of memory"
        triggers = (Trigger(r"\bkaboom\b"),)

        def run(self, context):
            raise MemoryError("simulated")

    @scratch_registry
    class Fine(Experiment):
        name, version, claim = "fine-test", "1", "always works"
        triggers = (Trigger(r"\bkaboom\b"),)

        def run(self, context):
            return self.make_result(
                context,
                params={},
                models=[],
                started_at=base.utc_now_iso(),
                duration_s=0.1,
                columns=("x",),
                units={},
                rows=[(1,)],
                summary={"x": 1},
                reading="x was 1.",
            )

    outs = run_detected(transcript="Then it went kaboom.", output_dir=tmp_path)
    by = {o.experiment: o for o in outs}
    assert set(by) == {"boom-test", "fine-test"}
    assert by["boom-test"].status == "failed" and "out of memory" in by["boom-test"].error
    assert by["boom-test"].detection is not None
    assert by["fine-test"].ok and (tmp_path / "fine-test" / "result.json").exists()
    assert [o.experiment for o in failures(outs)] == ["boom-test"]
    d_fail, d_ok = by["boom-test"].to_dict(), by["fine-test"].to_dict()
    assert d_fail["error"] and d_fail["detection"]["evidence"][0]["quote"] == "kaboom"
    assert d_ok["result_dir"] == str(tmp_path / "fine-test") and d_ok["rows"] == [[1]]
    json.dumps([d_fail, d_ok])
    assert run_detected(transcript="kaboom", output_dir=tmp_path, selection="none") == []
    named = run_detected(transcript="nothing here", output_dir=tmp_path, selection="fine-test")
    assert [o.experiment for o in named] == ["fine-test"] and named[0].detection is None
    with pytest.raises(ExperimentError):
        run_detected(transcript="x", output_dir=tmp_path, selection="nope")


def test_cli_list():
    from ramble2post.cli.main import cli

    r = CliRunner().invoke(cli, ["experiments", "list"])
    assert r.exit_code == 0 and "quantization-loss" in r.output
    r = CliRunner().invoke(cli, ["experiments", "list", "--json"])
    data = {e["name"]: e for e in json.loads(r.output)}
    assert data["quantization-loss"]["params"]["schemes"]["quick"]


def test_cli_run_unknown_experiment_is_one_line_error():
    from ramble2post.cli.main import cli

    r = CliRunner().invoke(cli, ["experiments", "run", "nope", "--quick"])
    assert r.exit_code == 1 and "no experiment called 'nope'" in r.output and "Traceback" not in r.output


def test_a_failing_plot_keeps_the_numbers(scratch_registry, tmp_path):
    @scratch_registry
    class BadPlot(Experiment):
        name, version, claim = "badplot-test", "1", "x"

        def plot(self, results):
            raise ValueError("no axes")

    res = experiments.get("badplot-test").make_result(
        Context(),
        params={},
        models=[],
        started_at=base.utc_now_iso(),
        duration_s=0.0,
        columns=("x",),
        units={},
        rows=[(1,)],
        summary={},
        reading="x was 1.",
    )
    saved = experiments.save_result(res, tmp_path)
    assert saved.plots == () and "plot failed: ValueError: no axes" in saved.notes
    assert json.loads((tmp_path / "result.json").read_text())["rows"] == [[1]]


def test_the_framework_stamps_start_time_and_duration(scratch_registry):
    """An experiment's run() only measures; measure() records when it started and how long it took."""
    import datetime as dt
    import time

    @scratch_registry
    class Slow(Experiment):
        name, version, claim = "slow-test", "1", "x"

        def run(self, context):
            time.sleep(0.05)
            return self.make_result(
                context, params={}, models=[], columns=("x",), units={}, rows=[(1,)], summary={}, reading="x was 1."
            )

    before = dt.datetime.now(dt.UTC)
    res = experiments.get("slow-test").measure(Context())
    assert res.duration_s >= 0.05
    started = dt.datetime.fromisoformat(res.started_at.replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= started <= dt.datetime.now(dt.UTC)
    jsonschema.validate(res.to_dict(), experiments.RESULT_SCHEMA)


def test_experiments_are_discovered_without_a_list():
    """Every module of the package that registers an experiment is found by the package scan."""
    from ramble2post.experiments.base import _experiment_modules

    mods = _experiment_modules()
    assert {"ramble2post.experiments.batching", "ramble2post.experiments.kvcache"} <= set(mods)
    assert {"batching-speedup", "kv-cache-growth", "quantization-loss"} <= {
        e.name for e in experiments.all_experiments()
    }
