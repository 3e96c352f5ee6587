"""The house rules, checked: no private name crosses modules, no import cycle, supervision never
imports job policy, modules stay small, and every doctest in the package runs."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
OVERSIZED = {
    "sidecar/bench/h2o.py",
}
"""Modules still over MAX_LINES: to be split, never to grow (the test fails when one shrinks
below the limit, so this list only gets shorter)."""


def _modules(*folders: str) -> dict[str, Path]:
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every `from sidecar... import name` and `import sidecar...` in a file."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sidecar"):
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name.startswith("sidecar"))
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{name}: from {module} import {imported}"
        for name, path in _modules("sidecar", "tests").items()
        for module, imported in _imports(path)
        if imported is not None and imported.startswith("_") and not imported.startswith("__")
    ]
    assert private == []


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    """A package's modules import each other by full module path (`import sidecar.config.rules as
    rules`), never through their own package's __init__, which imports them back."""
    modules = _modules("sidecar")
    graph = {name: {m for m, _ in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]  # the scan finds one


def test_supervision_never_imports_job_policy() -> None:
    """sidecar/workers may use the job's value types, nothing else of sidecar/jobs."""
    leaks = [
        f"{name} imports {module}"
        for name, path in _modules("sidecar/workers").items()
        for module, _ in _imports(path)
        if module.startswith("sidecar.jobs") and module != "sidecar.jobs.types"
    ]
    assert leaks == []


def test_job_types_depend_on_msgspec_alone() -> None:
    tree = ast.parse((ROOT / "sidecar/jobs/types.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "typing", "msgspec"}


def test_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in _modules("sidecar").values()
    }
    over = {name for name, lines in sizes.items() if lines > MAX_LINES}
    assert over <= OVERSIZED, f"over {MAX_LINES} lines: {sorted(over - OVERSIZED)}; split them"
    assert over == OVERSIZED, f"now small enough, drop from OVERSIZED: {sorted(OVERSIZED - over)}"


RUNNABLE = sorted(name for name in _modules("sidecar") if not name.endswith("__main__"))


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_modules_doctests_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_doctests_that_run_are_many() -> None:
    """The parametrized test above really runs examples (it would pass vacuously on none)."""
    finder = doctest.DocTestFinder()
    with_examples = [
        name
        for name in RUNNABLE
        if any(t.examples for t in finder.find(importlib.import_module(name)))
    ]
    assert len(with_examples) >= 17, with_examples


OVERVIEW = ROOT / "docs" / "architecture" / "overview.md"


def test_the_overview_names_real_files() -> None:
    text = OVERVIEW.read_text()
    named = set(__import__("re").findall(r"`(sidecar/[\w/]+\.py)`", text))
    assert named, "the overview names the files of one request's flow"
    assert [n for n in sorted(named) if not (ROOT / n).is_file()] == []


def _layout_files(text: str) -> set[str]:
    """The files the overview's layout tree names, as paths: a line `  name/` opens a folder
    whose lines are indented deeper; `x.py` on a line belongs to the folder it stands in."""
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    folders: list[tuple[int, str]] = []
    files = set()
    for line in block.splitlines():
        words = line.split()
        if not words:
            continue
        indent = len(line) - len(line.lstrip())
        while folders and folders[-1][0] >= indent:
            folders.pop()
        if words[0].endswith("/"):
            folders.append((indent, words[0].rstrip("/")))
            continue
        if words[0].endswith(".py"):
            files.add("/".join(name for _, name in folders) + "/" + words[0])
    return files


def test_the_overview_layout_names_every_sidecar_module_in_its_folder() -> None:
    listed = _layout_files(OVERVIEW.read_text())
    modules = {str(p.relative_to(ROOT)) for p in _modules("sidecar").values() if p.name != "__init__.py"}
    assert sorted(modules - listed) == [], f"add them to the layout in {OVERVIEW.relative_to(ROOT)}"
    assert sorted(listed - modules) == [], "the layout names files that are not there"
    assert _layout_files("## Layout\n```\nsidecar/\n  a/\n    b.py  x\n  c.py\n```") == {
        "sidecar/a/b.py",
        "sidecar/c.py",
    }
