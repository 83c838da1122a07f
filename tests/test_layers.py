"""The dependency rules of the architecture, checked on the source (``ast``), so they hold.

* ``engine/`` imports nothing from ``content/``, ``api/``, ``training/``, ``tutor/``, nor any web,
  database or command-line library: the models and algorithms run anywhere.
* ``content/`` may import ``engine/`` only.
* ``api/`` and ``training/`` never import each other; of ``tutor/`` they may use
  ``tutor.console`` only (what both sides of the command line share), which imports nothing of
  the project. ``tutor.cli``, the command's root, mounts both.
* No import cycle between the project's modules.
* No caller outside ``engine/tracing/`` and ``engine/catalog.py`` names a concrete model class:
  models are built by name through the registry.

Every import counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "content", "api", "training", "tutor")
#: libraries for the web, databases and command lines, which engine/ must not need
EDGE_LIBRARIES = {"fastapi", "starlette", "uvicorn", "httpx", "sqlalchemy", "alembic", "psycopg",
                  "asyncpg", "redis", "prometheus_client", "typer", "click", "rich", "pydantic"}
#: package -> the project packages (or modules) it may import
ALLOWED = {
    "engine": {"engine"},
    "content": {"engine", "content"},
    "api": {"engine", "content", "api", "tutor.console"},
    "training": {"engine", "content", "training", "tutor.console"},
    "tutor.console": set(),
    "tutor": {"engine", "content", "api", "training", "tutor"},
}
#: concrete model classes, and where they may be named
MODEL_CLASSES = {"BKT", "DKT", "TimedLR"}
MAY_NAME_MODELS = ("engine/tracing/", "engine/catalog.py")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # alembic's scripts, loaded by alembic, import nothing of ours
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:  # `from engine import tracing` imports engine.tracing
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), node.lineno


def _layer(module: str) -> str:
    return "tutor.console" if module == "tutor.console" else module.split(".")[0]


def _allowed(importer: str, imported: str) -> bool:
    return any(imported == a or imported.startswith(a + ".") for a in ALLOWED[_layer(importer)])


def test_no_upward_or_sideways_import() -> None:
    bad = []
    for name, path in MODULES.items():
        for imported, line in _imports(name, path):
            top = imported.split(".")[0]
            if top in PACKAGES and not _allowed(name, imported):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name} imports {imported}")
            if _layer(name) == "engine" and top in EDGE_LIBRARIES:
                bad.append(f"{path.relative_to(ROOT)}:{line}: engine imports {top}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def _graph() -> dict[str, set[str]]:
    """Module -> project modules it imports; importing ``a.b.c`` also runs the packages ``a``
    and ``a.b`` (unless the importer is inside them: a package's own modules may use it)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported, _ in _imports(name, path):
            parts = imported.split(".")
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                inside = name == target or name.startswith(target + ".")
                if target in MODULES and target != name and (k == len(parts) or not inside):
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child):], child]
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_caller_names_a_concrete_model() -> None:
    bad = []
    for path in MODULES.values():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(MAY_NAME_MODELS):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            named = (node.id if isinstance(node, ast.Name) else
                     node.attr if isinstance(node, ast.Attribute) else
                     node.name if isinstance(node, ast.alias) else None)
            if named in MODEL_CLASSES:
                bad.append(f"{relative}:{getattr(node, 'lineno', '?')}: {named}")
    assert not bad, "concrete model named outside the registry:\n" + "\n".join(bad)
