"""Settings: flag > environment variable > config file > default, in one place; every variable listed."""

from __future__ import annotations

import dataclasses
import re

import pytest
from click.testing import CliRunner

from ramble2post.config import ENVIRONMENT, Settings, current, env_var, resolve
from ramble2post.errors import InputError
from tests.conftest import REPO_ROOT

_VAR = re.compile(r"RAMBLE2POST_[A-Z0-9_]+")


def _config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_flag_env_config_default(tmp_path):
    conf = _config(tmp_path, 'llm = "from-config"\nmodel = "tiny.en"\nllm_threads = 3\n')
    env = {"RAMBLE2POST_LLM": "from-env", "RAMBLE2POST_DEVICE": "cpu"}
    s = resolve({"llm": "from-flag", "device": None}, env=env, config=conf)
    assert s.llm == "from-flag"  # flag over env over config
    assert s.device == "cpu"  # env (flag not given)
    assert s.model == "tiny.en" and s.llm_threads == 3  # config
    assert s.language is None and s.experiments == "auto"  # defaults
    assert resolve({}, env=env, config=conf).llm == "from-env"
    assert resolve({}, env={}, config=conf).llm == "from-config"
    assert resolve({}, env={}, config=tmp_path / "none.toml") == Settings()


def test_environment_values_are_typed():
    env = {
        "RAMBLE2POST_QUICK": "1",
        "RAMBLE2POST_OFFLINE": "0",
        "RAMBLE2POST_LLM_TIMEOUT": "2.5",
        "RAMBLE2POST_LLM_THREADS": "x",  # malformed: the default, as before
        "OPENAI_API_KEY": "sk-1",
    }
    s = resolve(env=env, config=None)
    assert s.quick is True and s.offline is False and s.llm_timeout == 2.5 and s.llm_threads is None
    assert s.llm_api_key == "sk-1"
    assert resolve(env={**env, "RAMBLE2POST_LLM_API_KEY": "mine"}).llm_api_key == "mine"


def test_bad_config_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown keys"):
        resolve(env={}, config=_config(tmp_path, "nope = 1\n"))
    with pytest.raises(InputError, match="not a number"):
        resolve(env={}, config=_config(tmp_path, 'llm_timeout = "soon"\n'))


def test_current_follows_the_environment(monkeypatch):
    monkeypatch.setenv("RAMBLE2POST_LLM_THREADS", "5")
    assert current().llm_threads == 5
    monkeypatch.setenv("RAMBLE2POST_LLM_THREADS", "1")
    assert current().llm_threads == 1


def test_every_variable_is_listed_in_help_and_readme():
    listed = {v.name for v in ENVIRONMENT}
    used: set[str] = set()
    for folder in ("pipeline", "experiments", "scripts", "tests"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            used |= set(_VAR.findall(path.read_text(encoding="utf-8")))
    assert used - listed == set(), "list these in config.ENVIRONMENT"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert {n for n in listed if n not in readme} == set()
    from ramble2post.cli.main import cli

    out = CliRunner().invoke(cli, ["--help"]).output
    assert all(v.name in out for v in ENVIRONMENT if not v.internal)
    for field in dataclasses.fields(Settings):  # every setting is documented in the README's config file
        assert re.search(rf"^{field.name} = ", readme, re.M), field.name
    assert env_var("llm") == "RAMBLE2POST_LLM"


def test_the_readme_config_file_is_valid(tmp_path):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Settings", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    s = resolve(env={}, config=_config(tmp_path, block))
    assert s.llm_threads == 2 and s.glossary == ["Groq"]


def test_library_modules_read_no_settings_from_the_environment():
    allowed = {"config.py", "roles.py", "tiers.py"}  # config resolves; roles, tiers read internal benchmark variables
    for path in (REPO_ROOT / "pipeline" / "ramble2post").rglob("*.py"):
        if path.name in allowed:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"os\.environ(\.get)?[\[(]\s*\"RAMBLE2POST_", text), path
