"""The judge's probe: a logistic regression per role on the model's hidden state (``structure.probe``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ramble2post.structure.judge import LETTERS, judge
from ramble2post.structure.probe import PROBE_ENVVAR, PROBED, Probe, fit, probe_for, probe_text

WIDTH = 48  # a small model's width: the fit must not depend on 1,536


def _states(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random states whose role (0..5) is written along one hidden direction per role, plus noise."""
    rng = np.random.default_rng(seed)
    roles = rng.integers(0, len(PROBED), size=n)
    directions = np.random.default_rng(99).normal(size=(len(PROBED), WIDTH))
    states = rng.normal(size=(n, WIDTH)) * 2.0 + 3.0 * directions[roles] + 5.0  # offset: centring matters
    return states.astype(np.float32), roles


def _fit(states: np.ndarray, roles: np.ndarray, sha: str = "abc") -> Probe:
    labels = {r: (list(range(len(states))), [int(x) == k for x in roles]) for k, r in enumerate(PROBED)}
    return fit(states, labels, model_sha256=sha, dim=16, l2=1.0)


def test_the_probe_reads_a_role_written_along_a_direction_of_unseen_states():
    probe = _fit(*_states(600))
    test, roles = _states(300, seed=1)
    right = 0
    for v, k in zip(test, roles, strict=True):
        p = probe.probabilities(v)
        right += max(p, key=p.__getitem__) == PROBED[k]
    assert right / len(test) > 0.8, right  # chance is 1/6
    shuffled = _fit(_states(600)[0], np.random.default_rng(5).integers(0, len(PROBED), size=600))
    hits = sum(max(p := shuffled.probabilities(v), key=p.__getitem__) == PROBED[k] for v, k in zip(test, roles))
    assert hits / len(test) < 0.4  # labels unrelated to the states: near chance


def test_a_probe_survives_its_file_exactly():
    probe = _fit(*_states(200))
    back = Probe.from_dict(json.loads(json.dumps(probe.to_dict())))
    assert back.model_sha256 == "abc" and back.bias == probe.bias
    assert all(np.array_equal(back.weights[r], probe.weights[r]) for r in PROBED)
    d = probe.to_dict()
    d["width"] = WIDTH + 1
    with pytest.raises(ValueError, match="width"):
        Probe.from_dict(d)


class StateModel:
    """A model with option probabilities and a hidden state: the state is the passage's length."""

    def __init__(self, sha: str):
        self.info = SimpleNamespace(sha256=sha)
        self.asked = 0

    def choice_probabilities(self, *, prefix, question, options):
        return [1.0 / len(options)] * len(options)

    def choice_state(self, *, prefix, question, options):
        self.asked += 1
        words = len(question.split("<passage>")[1].split("</passage>")[0].split())
        return self.choice_probabilities(prefix=prefix, question=question, options=options), np.full(4, words, "f4")


def test_the_judge_reports_the_probe_for_the_model_it_was_fitted_on_only(tmp_path, monkeypatch):
    w = np.array([0.25, 0.0, 0.0, 0.0], "f4")
    probe = Probe("sha-a", {r: -3.0 for r in PROBED}, {r: (w if r == "example" else 0 * w) for r in PROBED})
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(probe.to_dict()))
    model = StateModel("sha-a")
    got = probe_for(model, path)
    assert got is not None and probe_for(StateModel("sha-b"), path) is None  # another model's states
    assert probe_for(SimpleNamespace(info=model.info, choice_probabilities=model.choice_probabilities), path) is None
    short, long = "One two three.", " ".join(["word"] * 30)
    letters = judge(model, topic="t", passages=[short, long], budget_s=60)
    probed = judge(model, topic="t", passages=[short, long], budget_s=60, probe=got)
    assert letters[0] == letters[1] and letters[0]["example"] == pytest.approx(1 / 7)  # the letters: flat
    assert probed[0] and probed[1] and probed[1]["example"] > 0.9 > 0.2 > probed[0]["example"]
    assert probed[0]["none"] == pytest.approx(1 / 7)  # "none" stays the letters'
    assert probed[1]["focus"] == letters[1]["focus"]  # layer 1 is not probed: the letters judge it
    assert probed[1]["example" + LETTERS] == letters[1]["example"]  # the second reading, for the tiers
    model.can_read_state = lambda: False  # an older llama-cpp-python: the letters, with their calibration
    assert probe_for(model, path) is None
    monkeypatch.setenv(PROBE_ENVVAR, "none")
    assert probe_text() == "" and probe_for(model) is None  # switched off for a benchmark's baseline


def test_the_shipped_probe_is_for_the_default_models_width():
    d = json.loads(probe_text())
    probe = Probe.from_dict(d)
    assert d["width"] == 1536 and len(probe.model_sha256) == 64  # Qwen2.5-Coder-1.5B's hidden size
    assert all(np.isfinite(probe.weights[r]).all() for r in PROBED)


WORKED = (
    "Last week a batch of thirty two requests took forty milliseconds a step, against thirty five for one "
    "request, so each token got about eight times cheaper."
)
REASON = (
    "The reason batching helps is that decoding reads all the weights for every step, so sharing that read "
    "across requests divides the cost."
)


@pytest.mark.slow
def test_the_shipped_probe_reads_the_default_models_state_better_than_its_letters():
    """On the default model (real weights): the worked case is an example and the reason a reason by the
    probe, where the option letters call the worked case a connection (measured: letters P(example)
    0.10, connections 0.23; probe example 0.72) and every real analogy stays above its look-alikes."""
    from test_tiers import ANALOGIES, NOT_ANALOGIES

    from ramble2post.config import DEFAULT_LLM
    from ramble2post.structure.models import load_llm

    model = load_llm(DEFAULT_LLM)
    probe = probe_for(model)
    assert probe is not None, "the shipped probe must match the default model's file"
    passages = [*NOT_ANALOGIES, *ANALOGIES, WORKED, REASON]
    got = judge(model, topic="batching", passages=passages, budget_s=600, probe=probe)
    letters = judge(model, topic="batching", passages=passages, budget_s=600)
    assert all(got) and all(letters)
    p = {role: [v[role] for v in got if v] for role in PROBED}
    assert max(p["analogy"][:2]) < min(p["analogy"][2:4]), p["analogy"]  # measured 0.54, 0.03 < 0.91, 0.86
    assert p["example"][4] == max(p["example"]) and p["example"][4] > 0.4, p["example"]  # measured 0.72
    assert p["reason"][5] == max(p["reason"]) and p["reason"][5] > 0.5, p["reason"]  # measured 0.83
    assert got[4] and letters[4] and got[4]["example"] > 2 * letters[4]["example"]  # the letters miss it
