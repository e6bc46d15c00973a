"""Print the import cycles among facesr's modules, read from the import statements (nothing is imported).

Why: the package's layers (nets -> train / eval / restoration -> commands) must point one way; a cycle
means a low layer reaches up into a high one. Imports inside a function body count too, because they
still couple the two modules; imports under ``if TYPE_CHECKING:`` do not, because they never run.

Usage: ``python scripts/import_cycles.py [--src src/facesr] [--edges] [--packages]``; exits 1 when there is a cycle.
The same check runs in ``tests/test_import_graph.py``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "facesr"


def module_name(path: Path, src: Path) -> str:
    """Dotted module name of ``path`` inside the package rooted at ``src`` (``__init__`` -> the package)."""
    parts = [PACKAGE, *path.relative_to(src).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """facesr modules that ``module`` imports (``from facesr.x import y`` counts ``facesr.x.y`` if a module)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base.split(".")[0] == PACKAGE:
                found.add(base)
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    if candidate in known:
                        found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in known and name != module}


def import_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the facesr modules it imports, for every ``.py`` file under ``src``."""
    files = {module_name(path, src): path for path in sorted(src.rglob("*.py"))}
    known = set(files)
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", known)
        for name, path in files.items()
    }


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph collapsed to sub-packages (``facesr.eval.runner`` -> ``facesr.eval``; top-level modules stay)."""

    def unit(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2])

    collapsed: dict[str, set[str]] = {}
    for source, targets in graph.items():
        collapsed.setdefault(unit(source), set()).update(unit(t) for t in targets)
    for source, targets in collapsed.items():
        targets.discard(source)
    collapsed.pop(PACKAGE, None)
    for targets in collapsed.values():
        targets.discard(PACKAGE)
    return collapsed


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each is an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components, key=lambda c: (-len(c), c))


def main(argv: list[str] | None = None) -> int:
    """Print each cycle (and, with ``--edges``, the imports inside it); 1 if there is any cycle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src" / PACKAGE)
    parser.add_argument("--edges", action="store_true", help="print the imports inside each cycle")
    parser.add_argument(
        "--packages", action="store_true", help="collapse modules to sub-packages (layer cycles)"
    )
    args = parser.parse_args(argv)
    graph = import_graph(args.src)
    if args.packages:
        graph = package_graph(graph)
    cycles = strongly_connected(graph)
    print(f"{len(graph)} modules, {sum(len(v) for v in graph.values())} imports, {len(cycles)} cycle(s)")
    for number, members in enumerate(cycles, 1):
        print(f"cycle {number} ({len(members)} modules): {', '.join(members)}")
        if args.edges:
            inside = set(members)
            for member in members:
                for target in sorted(graph[member] & inside):
                    print(f"    {member} -> {target}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
