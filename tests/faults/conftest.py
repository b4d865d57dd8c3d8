"""Fault-suite fixtures: a warm session home and the fakes registered in-process (helpers: helpers.py)."""

from __future__ import annotations

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
    from experiments import base

    from pipeline import llm
    from tests.faults import fakecli

    before_llm, before_exp = set(llm._BACKENDS), set(base._REGISTRY)
    fakecli._register_llms()
    fakecli._register_experiments()
    yield fakecli
    for name in set(llm._BACKENDS) - before_llm:
        llm.unregister_backend(name)
    for name in set(base._REGISTRY) - before_exp:
        base._REGISTRY.pop(name, None)
