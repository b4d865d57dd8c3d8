"""scripts/gpu_check.sh --dry-run: the GPU check's every step, on CPU with tiny.en and --quick."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts/gpu_check.sh"


def test_script_is_executable_and_documents_itself():
    assert os.access(SCRIPT, os.X_OK)
    out = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--dry-run" in out and "quantization-loss" in out
    bad = subprocess.run([str(SCRIPT), "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


@pytest.mark.slow
def test_dry_run_writes_every_figure(tmp_path):
    if not (REPO / ".venv/bin/ramble2post").exists():
        pytest.skip("no .venv (./scripts/setup.sh)")
    # the dry run compares against faster-whisper (requirements-bench.txt, which .ci/run installs; setup.sh does not)
    pytest.importorskip("faster_whisper", reason="needs faster-whisper: pip install -r requirements-bench.txt")
    out = tmp_path / "check"
    proc = subprocess.run(
        [str(SCRIPT), "--dry-run", "--skip-setup", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = [line.split("\t") for line in (out / "summary.tsv").read_text().splitlines()[1:]]
    assert [s[0] for s in steps] == ["machine", "transcribe", "bench", "batching", "quantization", "cpu-draft"]
    assert all(s[1] == "0" for s in steps), steps
    wer = (out / "wer.tsv").read_text()
    assert "batched\tcpu\ttiny.en" in wer and "sequential\tcpu\ttiny.en" in wer
    assert list((out / "bench").glob("transcribe-*.json"))
    for name in ("batching-speedup", "quantization-loss"):
        assert (out / name / "result.json").exists()
    summary = (out / "SUMMARY.md").read_text()
    assert "dry run" in summary and "fw-batch-int8" in summary and "ours-int8" in summary
