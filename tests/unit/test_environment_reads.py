"""``pinpipe.config`` is the only module that reads the environment: every variable pinpipe reads is
found there. Setting one for a child process (``os.environ.setdefault``, an assignment) is not a read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pinpipe"
WRITES = {"setdefault"}


def environment_reads(source: str) -> list[int]:
    """Lines of ``source`` that read the environment (``os.environ`` other than a write, ``getenv``)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name, stored = node.attr, False
        elif isinstance(node, ast.Name):
            name, stored = node.id, isinstance(node.ctx, ast.Store)
        else:
            continue
        if name in ("getenv", "getenvb", "environb"):
            lines.append(node.lineno)
        elif name == "environ" and not stored:
            parent = parents.get(node)
            written = (isinstance(parent, ast.Attribute) and parent.attr in WRITES) or (
                isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store)
            )
            if not written:
                lines.append(node.lineno)
    return sorted(lines)


def test_only_config_reads_the_environment() -> None:
    found = {
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "config.py" or path.parent != PACKAGE
        for line in environment_reads(path.read_text(encoding="utf-8"))
    }
    assert not found, f"the environment is read outside pinpipe/config.py: {sorted(found)}"


def test_the_scan_finds_reads_and_passes_over_writes() -> None:
    source = "\n".join(
        [
            "import os",
            "a = os.environ.get('A')",
            "b = os.getenv('B')",
            "c = [k for k in os.environ if k]",
            "os.environ.setdefault('D', '1')",
            "os.environ['E'] = '1'",
            "f = os.environ['F']",
        ]
    )
    assert environment_reads(source) == [2, 3, 4, 7]
