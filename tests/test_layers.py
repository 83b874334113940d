"""The import graph of src/imagestudio: no cycle between top-level packages or modules, and every
import points down the layer order of the brief (docs/architecture.md draws it).

Imports are read with `ast`, including the ones inside functions, so a late import cannot hide an
edge. A package may import another of the same rank (the domains use each other) as long as no
cycle forms.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "imagestudio"
PACKAGE = "imagestudio"

# Bottom to top. `__init__` is the package root itself (`from imagestudio import __version__`).
RANKS: dict[str, int] = {
    "__init__": 0,
    "config": 0,
    "db": 1,
    "models": 1,
    "migrate": 2,
    "migrations": 2,
    "schema": 2,
    "kit": 3,
    "storage": 4,
    "providers": 4,
    "language": 4,
    "mail": 4,
    "container": 5,
    "notify": 5,
    "bootstrap": 5,
    "accounts": 6,
    "assets": 6,
    "sessions": 6,
    "generations": 6,
    "uicode": 6,
    "operations": 6,
    "api": 7,
    "web": 7,
    "openai_api": 7,
    "app": 8,
    "cli": 9,
}

# Known edges that break the rules today, each with why it is allowed for now. Remove an entry
# when its edge is gone (the test says so).
KNOWN: dict[tuple[str, str], str] = {}


def _top_level(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        # Relative: `from . import x` in a.b.c (a module) means a.b; in a package a.b it means a.b.
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    # `from imagestudio import kit` imports the subpackage kit; `import __version__` the root.
    if base == PACKAGE:
        return [f"{PACKAGE}.{alias.name}" if _is_module(alias.name) else PACKAGE for alias in node.names]
    return [base]


def _is_module(name: str) -> bool:
    return (SOURCE / name).is_dir() or (SOURCE / f"{name}.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """Top-level package or module -> the ones it imports (any depth, any place in the file)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SOURCE.rglob("*.py")):
        module = _module_name(path)
        source = _top_level(module)
        assert source is not None
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(node, module, path.name == "__init__.py"):
                target = _top_level(name)
                if target is not None and target != source:
                    edges[source].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _graph_without_known() -> dict[str, set[str]]:
    return {source: {t for t in targets if (source, t) not in KNOWN} for source, targets in import_graph().items()}


def test_every_top_level_package_has_a_rank() -> None:
    present = {_top_level(_module_name(path)) for path in SOURCE.rglob("*.py")}
    assert present <= set(RANKS), f"give these a rank in RANKS: {sorted(present - set(RANKS))}"


def test_no_import_points_up_the_layers() -> None:
    upward = sorted(
        f"{source} (rank {RANKS[source]}) imports {target} (rank {RANKS[target]})"
        for source, targets in _graph_without_known().items()
        for target in targets
        if RANKS[target] > RANKS[source]
    )
    assert not upward, "\n".join(upward)


def test_no_cycle_between_top_level_packages() -> None:
    assert _cycles(_graph_without_known()) == []


def test_known_exceptions_are_still_real() -> None:
    graph = import_graph()
    stale = [edge for edge in KNOWN if edge[1] not in graph.get(edge[0], set())]
    assert not stale, f"these edges are gone; remove them from KNOWN: {stale}"


def test_the_checks_see_function_level_imports_and_cycles() -> None:
    # The graph reads imports inside functions (the registry builds its providers lazily).
    assert "providers" in import_graph()["container"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
