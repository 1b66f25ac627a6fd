"""The folder layout holds: imports point down the layers, nothing imports ``medio``, no cycles.

The layers and what each may import are those of the design's layout table:

    medio -> api, workers -> services -> projections -> adapters -> domain

Every ``.py`` file of the layered folders is parsed with ``ast`` (nothing is imported), and every
import in it counts: at module level, under ``TYPE_CHECKING`` or inside a function, so that a
late import cannot hide an upward edge or a cycle.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What each folder may import besides itself (the design's layout table).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "medio": frozenset({"api", "workers", "services", "projections", "adapters", "domain"})
    | {"migrations"},  # ``medio migrate`` runs the Alembic environment
    "api": frozenset({"services", "domain"}),  # and ``adapters.settings``, see ``API_SETTINGS``
    "workers": frozenset({"services", "projections", "adapters"}),
    "services": frozenset({"projections", "adapters", "domain"}),
    "projections": frozenset({"adapters", "domain"}),
    "adapters": frozenset({"domain"}),
    "domain": frozenset(),
    # Alembic's environment needs the engine and the tables' metadata, and nothing above them.
    "migrations": frozenset({"adapters"}),
}
LAYERED = tuple(MAY_IMPORT)
# Tooling that may import every layer: the tests and the benchmarks (which start the real
# entrypoints, ``medio.server`` and ``medio.embedded``, and reuse ``tests/scratch.py``).
TOOLING = ("tests", "bench")
PROJECT = (*LAYERED, *TOOLING)
API_SETTINGS = "adapters.settings"

# Names the API never uses: controllers call services, which pick the store.
STORE_NAMES = frozenset({"engine", "redis", "pipeline"})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files(folders: tuple[str, ...]) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


MODULES = {module_name(path) for path in project_files(PROJECT)}


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, project module) for every import in ``path`` of a module of this project."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this file's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module ``pkg.mod``; else the names of ``base``
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PROJECT:
                yield node.lineno, target


def graph() -> dict[str, dict[str, tuple[Path, int]]]:
    """Module -> imported project module -> (file, line) of the first such import."""
    edges: dict[str, dict[str, tuple[Path, int]]] = {}
    for path in project_files(PROJECT):
        source = module_name(path)
        targets = edges.setdefault(source, {})
        for line, target in imports_of(path):
            if target in MODULES and target != source:
                targets.setdefault(target, (path, line))
    return edges


def upward_imports() -> list[str]:
    problems = []
    for path in project_files(LAYERED):
        folder = path.relative_to(ROOT).parts[0]
        relative = path.relative_to(ROOT).as_posix()
        for line, target in imports_of(path):
            top = target.split(".")[0]
            if top == folder:
                continue
            if folder == "api" and (
                target == API_SETTINGS or target.startswith(API_SETTINGS + ".")
            ):
                continue
            if top not in MAY_IMPORT[folder]:
                problems.append(
                    f"{relative}:{line} imports {target} ({folder} may not import {top})"
                )
    return sorted(set(problems))


def test_imports_point_down_the_layers() -> None:
    problems = upward_imports()
    assert not problems, "imports against the layout:\n" + "\n".join(problems)


def test_nothing_but_tooling_imports_medio() -> None:
    problems = [
        f"{path.relative_to(ROOT).as_posix()}:{line} imports {target}"
        for path in project_files(tuple(f for f in LAYERED if f != "medio"))
        for line, target in imports_of(path)
        if target.split(".")[0] == "medio"
    ]
    assert not problems, "only entrypoints, tests and benchmarks import medio:\n" + "\n".join(
        problems
    )


def store_names(path: Path) -> Iterator[tuple[int, str]]:
    """Where ``path`` names a store (``STORE_NAMES``) as an identifier, attribute, argument or
    module: ``container.engine``, ``redis.exceptions``, ``def f(pipeline)``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            names = [part for module in modules for part in module.split(".")]
            names += [a.asname or a.name for a in node.names]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        for name in names:
            if name in STORE_NAMES:
                yield getattr(node, "lineno", 0), name


def test_api_names_no_store() -> None:
    """Controllers call services; only a service touches ``engine``, ``redis`` or ``pipeline``."""
    problems = [
        f"{path.relative_to(ROOT).as_posix()}:{line} names {name}"
        for path in project_files(("api",))
        for line, name in store_names(path)
    ]
    assert not problems, "the API names a store:\n" + "\n".join(problems)


def test_the_store_check_sees_each_kind_of_name(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import redis.exceptions\nasync def f(container, pipeline):\n    engine = container.redis\n"
    )
    assert sorted(name for _, name in store_names(sample)) == [
        "engine",
        "pipeline",
        "redis",
        "redis",
    ]


def cycles(edges: dict[str, dict[str, tuple[Path, int]]]) -> list[list[str]]:
    """One cycle (as a closed path of modules) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_path_within(edges, component, node))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _path_within(
    edges: dict[str, dict[str, tuple[Path, int]]], component: set[str], start: str
) -> list[str]:
    """A shortest cycle through ``start`` inside ``component`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt not in component:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a component without a cycle")


def test_no_import_cycles() -> None:
    edges = graph()
    described = []
    for cycle in cycles(edges):
        steps = []
        for source, target in itertools.pairwise(cycle):
            path, line = edges[source][target]
            steps.append(f"  {source} -> {target} ({path.relative_to(ROOT).as_posix()}:{line})")
        described.append("\n".join(steps))
    assert not described, "import cycles:\n" + "\n\n".join(described)


def test_the_checks_can_fail() -> None:
    """The cycle finder sees a cycle, and the layer check knows an upward edge when it sees one."""
    here = (Path(__file__), 1)
    made_up = {"a": {"b": here}, "b": {"c": here}, "c": {"a": here}, "d": {"a": here}}
    assert cycles(made_up) == [["a", "b", "c", "a"]]
    assert "services" not in MAY_IMPORT["projections"]
    assert "medio" not in MAY_IMPORT["api"]
