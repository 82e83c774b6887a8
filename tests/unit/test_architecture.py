"""The shape of src/: imports point one way, rooms keep to their floor, functions stay short.

These read the source with ``ast`` (nothing is imported), so a loop or an upward import fails
here, with the modules named, before it can fail at import time in some process.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "ffrtmp"
MAX_FUNCTION_LINES = 50

# Each room, and the rooms it may import. A room is named by module prefix; the longest
# prefix wins. A top-level module no room names is ground: it may import only ground.
ROOMS: dict[str, tuple[str, ...]] = {
    "ground": ("ground",),
    "model": ("ground", "model"),
    "wrapper": ("ground", "model", "wrapper"),
    "agent": ("ground", "model", "wrapper", "agent"),
    "master": ("ground", "model", "master"),
    "cli": ("ground", "model", "cli"),
    "entry": ("ground", "model", "wrapper", "agent", "master", "cli", "entry"),
}
PREFIXES: dict[str, str] = {
    "ffrtmp.jobspec": "model",
    "ffrtmp.config": "model",
    "ffrtmp.settings": "model",
    "ffrtmp.wrapper": "wrapper",
    "ffrtmp.agent": "agent",
    "ffrtmp.master": "master",
    "ffrtmp.master.console": "master",  # the web console (/ui): pages over the API's own views
    "ffrtmp.cli": "cli",
    "ffrtmp.cli.main": "entry",
    "ffrtmp.cli.db": "entry",  # ffrtmp db migrate-to: the store itself, on the master's host
    "ffrtmp.__main__": "entry",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def room_of(module: str) -> str:
    best = max((p for p in PREFIXES if module == p or module.startswith(p + ".")), key=len,
               default=None)
    return "ground" if best is None else PREFIXES[best]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str) -> Iterator[str]:
    """Every ffrtmp module this one imports, lazily or not (a lazy import still loops)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target
                     for a in node.names]
        else:
            continue
        yield from (name for name in names if name in MODULES and name != module)


GRAPH: dict[str, set[str]] = {m: set(imports_of(m)) for m in MODULES}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another, directly or round a loop."""
    reach = {m: reachable(graph, m) for m in graph}
    groups = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph if m in reach[m]}
    return sorted(sorted(group) for group in groups)


def test_the_analysis_sees_the_package_and_its_lazy_imports() -> None:
    assert len(MODULES) > 30
    assert sum(len(deps) for deps in GRAPH.values()) > 80
    # the entry point imports the daemons inside functions; those edges must count too
    entry = [m for m in MODULES if room_of(m) == "entry"]
    assert any(room_of(dep) == "master" for m in entry for dep in GRAPH[m])


def test_the_cycle_finder_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_src_has_no_import_loops() -> None:
    assert cycles(GRAPH) == []


def test_imports_point_down_the_floors() -> None:
    upward = sorted(f"{m} ({room_of(m)}) imports {dep} ({room_of(dep)})"
                    for m, deps in GRAPH.items() for dep in deps
                    if room_of(dep) not in ROOMS[room_of(m)])
    assert upward == []


def _functions(path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            yield f"{module_name(path)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("limit", [MAX_FUNCTION_LINES])
def test_no_function_is_longer_than_the_limit(limit: int) -> None:
    long = sorted(f"{where} has {n} lines" for path in MODULES.values()
                  for where, n in _functions(path) if n > limit)
    assert long == []
