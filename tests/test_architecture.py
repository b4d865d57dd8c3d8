"""The package's shape: one import name, no import cycles, stages that do not reach upwards."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

# folder in the checkout -> import name once installed (pyproject package-dir)
ROOTS = {"pipeline": "ramble2post", "experiments": "ramble2post.experiments"}
MAX_LINES = 600  # lines per module: a module past this wants splitting
# A stage may import the shared records/config/errors/cache and earlier stages, never the CLI.
LOWER_THAN_CLI = ("ramble2post.transcribe", "ramble2post.structure", "ramble2post.publish", "ramble2post.experiments")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, name in ROOTS.items():
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of this package imported when ``path`` is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import (ruff bans them; one spelling per module)"
                mod = node.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for sub in getattr(node, field, []) or []:
                        visit(sub.body if isinstance(sub, ast.ExceptHandler) else [sub])

    visit(tree.body)
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    # a package's own ``from pkg import name`` re-exports are not edges back to the package
    return {m: _top_level_imports(p, known) - {m} for m, p in mods.items()}


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                dfs(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_the_cycle_check_can_fail():
    """The checker itself finds a cycle when there is one."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    seen: set[str] = set()

    def has_cycle(m: str, path: tuple[str, ...]) -> bool:
        if m in path:
            return True
        if m in seen:
            return False
        seen.add(m)
        return any(has_cycle(n, (*path, m)) for n in graph[m])

    assert has_cycle("a", ())


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
    missing = {f"ramble2post.{p.name}" for p in (REPO_ROOT / "pipeline").iterdir() if (p / "__init__.py").exists()}
    assert missing <= set(conf["packages"]), f"subpackages not listed in pyproject: {missing - set(conf['packages'])}"
