"""pinpipe's imports run one way: cli -> demo -> stages -> log/lake/transform -> schema/errors/config,
and no module imports itself back through another (no cycle), counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pinpipe"

LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (
        0,
        (
            "errors",
            "config",
            "config_layers",
            "config_show",
            "schema",
            "locations",
            "access",
            "keys",
            "exact_json",
            "_optional",
        ),
    ),
    (0, ("aws", "connection", "progress", "serve", "stage", "stopping", "workdir")),
    (1, ("log", "lake", "transform", "delta", "tables", "source", "status")),
    (2, ("ingest", "lake.sink", "lake.sink_options", "lake.sink_puts", "engines", "streaming", "dashboard")),
    (2, ("source.sender", "source.emulator", "earlier_run", "render")),
    (3, ("demo",)),
    (4, ("cli", "__main__")),
]
"""Layer of each part of ``pinpipe`` (the longest matching name wins); a module may import its own layer
and those below. The package's ``__init__`` is its public facade and is left out."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _resolve(dotted: str) -> str | None:
    """The pinpipe module (relative name) a dotted import names, or None outside pinpipe."""
    if dotted != "pinpipe" and not dotted.startswith("pinpipe."):
        return None
    name = dotted.removeprefix("pinpipe").removeprefix(".")
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> set[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["pinpipe", *package.split(".")] if package else ["pinpipe"]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in map(_resolve, targets) if t not in (None, "", name))
    return found


GRAPH = {name: _imports(name) for name in MODULES if name}


def layer_of(name: str) -> int:
    best, level = -1, -1
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), layer
    assert level >= 0, f"pinpipe.{name} has no layer: add it to LAYERS"
    return level


def test_every_module_has_a_layer() -> None:
    for name in GRAPH:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_from_a_higher_layer(name: str) -> None:
    upward = sorted(d for d in GRAPH[name] if layer_of(d) > layer_of(name))
    assert not upward, f"pinpipe.{name} (layer {layer_of(name)}) imports {upward} from above it"


def test_no_import_cycle() -> None:
    """Tarjan's strongly connected components: any with two modules or more is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in GRAPH[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_sees_imports_of_every_kind() -> None:
    """The walk itself: a relative, a function-level and a plain import are all found."""
    assert "log.kinesis.streams" in GRAPH["log.kinesis.io"]
    assert "config" in GRAPH["cli.common"]
    assert GRAPH["cli"] and all(layer_of(d) <= 4 for d in GRAPH["cli"])
