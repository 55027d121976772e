"""Draw the pack's import graph (dream_core and nodes) from the source, so docs/ARCHITECTURE.md stays true.

    python tools/import_graph.py            # print the graph (Mermaid) and any import circle
    python tools/import_graph.py --write    # put it into docs/ARCHITECTURE.md between its markers
    python tools/import_graph.py --check    # exit 1 if the document is out of date or there is a circle

Every import of a module of the pack counts, including ones inside functions. Modules
are nodes; an arrow A --> B means A imports B.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dream_core", "nodes")
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- import graph: begin (tools/import_graph.py --write) -->", "<!-- import graph: end -->"


def modules() -> dict[str, Path]:
    """'dream_core.engine' -> its file, for every module of the pack."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _target(module: str, node: ast.ImportFrom | ast.Import, known: dict[str, Path]) -> list[str]:
    """The pack's modules an import statement in `module` names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    package = module if known[module].stem == "__init__" else module.rpartition(".")[0]
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - (node.level - 1)]) if node.level - 1 < len(parts) else ""
        base = f"{base}.{node.module}" if node.module else base
        if node.level - 1 >= len(parts):  # '..dream_core' from nodes: the pack's root
            base = node.module or ""
    else:
        base = node.module or ""
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in names if name in known] or ([base] if base in known else [])


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of a module but those under `if TYPE_CHECKING:` (imports for the type checker alone)."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def edges() -> dict[str, set[str]]:
    """Module -> the pack's modules it imports (package __init__ files left out as targets when a submodule
    is named)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(t for t in _target(name, node, known) if t != name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def mermaid(graph: dict[str, set[str]]) -> str:
    """The graph as a Mermaid flowchart, one subgraph per package, the package __init__ files left out."""
    lines = ["```mermaid", "flowchart LR"]
    for package in PACKAGES:
        lines.append(f"  subgraph {package}")
        lines += [
            f"    {name.replace('.', '_')}[{name[len(package) + 1 :]}]"
            for name in sorted(graph)
            if name.startswith(package + ".")
        ]
        lines.append("  end")
    for source in sorted(graph):
        if source in PACKAGES:
            continue
        for target in sorted(graph[source]):
            if target not in PACKAGES:
                lines.append(f"  {source.replace('.', '_')} --> {target.replace('.', '_')}")
    lines.append("```")
    return "\n".join(lines)


def document_with(graph_text: str) -> str:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{graph_text}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/ARCHITECTURE.md")
    parser.add_argument("--check", action="store_true", help="fail if the document is stale or there is a circle")
    args = parser.parse_args(argv)
    graph = edges()
    found = circles(graph)
    for group in found:
        print("import circle: " + " -> ".join(group), file=sys.stderr)
    text = mermaid(graph)
    if args.write:
        DOC.write_text(document_with(text))
        print(f"wrote the graph into {DOC.relative_to(ROOT)}")
    elif args.check:
        if DOC.read_text() != document_with(text):
            print("docs/ARCHITECTURE.md is out of date: run python tools/import_graph.py --write", file=sys.stderr)
            return 1
    else:
        print(text)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
