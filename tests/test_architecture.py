"""The package's shape: one import name, no import cycles, stages that do not reach upwards."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

# source roots in the checkout: a module's import name is its path below one of them
SOURCE_ROOTS = ("pipeline", "experiments")
MAX_LINES = 600  # lines per module: a module past this wants splitting
# A stage may import the shared records/config/errors/cache and earlier stages, never the CLI.
LOWER_THAN_CLI = ("ramble2post.transcribe", "ramble2post.structure", "ramble2post.publish", "ramble2post.experiments")


def _modules() -> dict[str, Path]:
    out = {}
    for folder in SOURCE_ROOTS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join(parts)] = path
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """Modules of this package that ``path`` imports anywhere: at the top, inside functions, under TYPE_CHECKING.

    An import inside a function still ties the two modules together (it only runs later), so a
    cycle through one is a cycle: counting only top-level imports hid four of them.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (ruff bans them; one spelling per module)"
            mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in found if m in known}


def _graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    mods = _modules() if modules is None else modules
    known = set(mods)
    # a package's own ``from pkg import name`` re-exports are not edges back to the package
    return {m: _imports(p, known) - {m} for m, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``a -> b -> a``) in ``graph``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (cycle := dfs(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := dfs(m)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_can_fail(tmp_path):
    """A cycle through an import inside a function is found, in files parsed like the package's."""
    (tmp_path / "a.py").write_text("import json\n\n\ndef f():\n    from pkg.b import g\n    return g()\n")
    (tmp_path / "b.py").write_text("from pkg.a import f\n\n\ndef g():\n    return 1\n")
    (tmp_path / "c.py").write_text("from pkg.b import g\n")
    mods = {"pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py", "pkg.c": tmp_path / "c.py"}
    assert find_cycle(_graph(mods)) == ["pkg.a", "pkg.b", "pkg.a"]
    (tmp_path / "a.py").write_text("import json\n")
    assert find_cycle(_graph(mods)) is None


def test_stages_do_not_import_the_cli():
    graph = _graph()
    bad = [
        (m, n)
        for m, deps in graph.items()
        if m.startswith(LOWER_THAN_CLI)
        for n in deps
        if n.startswith("ramble2post.cli")
    ]
    assert not bad


def test_modules_stay_small():
    big = {
        str(p.relative_to(REPO_ROOT)): n
        for p in _modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_one_import_name_is_installed():
    """pyproject maps every package under ramble2post (no top-level 'pipeline' or 'experiments')."""
    import tomllib

    conf = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "ramble2post" or p.startswith("ramble2post.") for p in conf["packages"])
    assert set(conf["package-dir"]) <= set(conf["packages"])
    missing = {
        f"ramble2post.{p.name}"
        for p in (REPO_ROOT / "pipeline" / "ramble2post").iterdir()
        if (p / "__init__.py").exists()
    }
    assert missing <= set(conf["packages"]), f"subpackages not listed in pyproject: {missing - set(conf['packages'])}"
