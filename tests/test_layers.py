"""The import direction of every layer in DESIGN.md, checked on the source (every import
statement, lazy ones inside functions too), and no import circles between modules.

Layers, top to bottom; a module imports only from its own layer or below:

    cli, explore, api, render, experiments, analysis, sampling, engines, store,
    and at the bottom the base modules every layer may use (errors, params, ...).

The package root (tokendice/__init__.py) is the public facade above them all, and
nothing inside the package imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tokendice"
LAYERS = ["cli", "explore", "api", "render", "experiments", "analysis", "sampling", "engines", "store"]
BASE = {"errors", "params", "paths", "inputs", "jsonutil", "hashing", "_version"}
EXPLICIT = {  # DESIGN.md's arrows that must never exist, named so a failure says which rule it broke
    ("cli", "experiments"), ("cli", "store"), ("experiments", "render"), ("store", "api"),
    ("engines", "experiments"), ("engines", "store"), ("render", "engines"), ("render", "store"), ("sampling", "engines"),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every tokendice module `name` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tokendice")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([node.module] if node.module else []))
            if base.startswith("tokendice"):
                known = modules()
                for alias in node.names:  # `from tokendice.render import html` imports a module
                    out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in BASE or parts[1] == "__main__":
        return "base" if parts[1] in BASE else "main"
    return parts[1]


def rank(name: str) -> int:
    return {"base": 0, "root": 100, "main": 101}.get(name, len(LAYERS) - LAYERS.index(name) if name in LAYERS else -1)


GRAPH = {name: imports(name, path) for name, path in modules().items()}


def test_every_module_belongs_to_a_layer():
    assert {layer(m) for m in GRAPH} <= {*LAYERS, "base", "root", "main"}, sorted({layer(m) for m in GRAPH})


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    here = layer(module)
    wrong = []
    for target in sorted(GRAPH[module]):
        there = layer(target)
        if here in ("root", "main") or there == here:
            continue
        if there == "root":
            wrong.append(f"{target} (the package root: nothing inside the package imports the facade)")
        elif (here, there) in EXPLICIT:
            wrong.append(f"{target} (DESIGN.md: {here}/ -> {there}/ must never exist)")
        elif rank(there) > rank(here):
            wrong.append(f"{target} ({there}/ is above {here}/)")
        elif here == "analysis" and there != "base":
            wrong.append(f"{target} (analysis/ holds pure functions: it imports only errors and params)")
    assert not wrong, f"{module} imports " + "; ".join(wrong)


def test_no_import_circles():
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH or layer(nxt) == "root" or layer(node) == "root":
                continue
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not circles, "import circles:\n" + "\n".join(circles)
