"""Fault-suite fixtures: a warm session home and the fakes registered in-process (helpers: helpers.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_1MIN
from tests.faults.helpers import MODEL, Warm, run_cli


@pytest.fixture(scope="session")
def warm(tmp_path_factory) -> Warm:
    home = tmp_path_factory.mktemp("faults-home")
    transcript = home / "sample-transcript.json"
    r = run_cli(["transcribe", SAMPLE_1MIN, "-m", MODEL, "--device", "cpu", "-o", transcript], home=home, fake=False)
    assert r.returncode == 0, r.stderr
    return Warm(home=home, transcript=transcript)


@pytest.fixture(scope="session")
def fakes():
    """The fakes of tests.faults.fakecli registered in this process too (removed afterwards)."""
    from ramble2post.experiments import base
    from ramble2post.structure import models as llm
    from tests.faults import fakecli

    before_llm, before_exp = set(llm._BACKENDS), set(base._REGISTRY)
    fakecli._register_llms()
    fakecli._register_experiments()
    yield fakecli
    for name in set(llm._BACKENDS) - before_llm:
        llm.unregister_backend(name)
    for name in set(base._REGISTRY) - before_exp:
        base._REGISTRY.pop(name, None)


def _fault_rows() -> list[tuple[str, str, str, str, str]]:
    """LEDGER folded into one row per test case: exit codes in order, the error line, repo, resumed."""
    from tests.faults.helpers import LEDGER

    cases: dict[str, list[dict]] = {}
    for entry in LEDGER:
        cases.setdefault(entry["case"], []).append(entry)
    rows = []
    for case, entries in cases.items():
        exits = [e["exit"] for e in entries if "exit" in e]
        message = next((e["message"] for e in entries if e.get("message")), "")
        message = re.sub(r"(?:/[^/\s:]+)+/", "", message)  # temp folders: keep the file name alone
        if any("new_branch" in e for e in entries):
            repo = "yes, then one new branch" if any(e.get("unchanged") for e in entries) else "one new branch"
        else:
            repo = "yes" if any(e.get("unchanged") for e in entries) else "-"
        failed_first = bool(exits) and exits[0] != 0
        resumed = "yes" if failed_first and any(e.get("resumed") for e in entries) else "-"
        rows.append((case, " -> ".join(map(str, exits)) or "-", message[:120], repo, resumed))
    return rows


def pytest_terminal_summary(terminalreporter):
    """Print the fault matrix (and write it as Markdown to $RAMBLE2POST_FAULT_TABLE when set)."""
    rows = _fault_rows()
    if not rows:
        return
    head = ("case", "exit", "message", "repo unchanged", "resumed")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    terminalreporter.section(f"fault matrix: {len(rows)} cases")
    for line in lines:
        terminalreporter.write_line(line)
    out = os.environ.get("RAMBLE2POST_FAULT_TABLE")
    if out:
        Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
