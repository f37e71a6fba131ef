"""The package's import graph: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import percae

PACKAGE = Path(percae.__file__).parent


def _module_name(path: Path) -> str:
    name = ".".join(("percae", *path.relative_to(PACKAGE).with_suffix("").parts))
    return name.removesuffix(".__init__")


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules `path` imports, lazily or not, with the packages that importing
    them runs (their __init__), but for the packages that hold `name`: Python imports those
    before `name`, so a sibling's import does not run them again (importing a name from one of
    them does count)."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("percae"):
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names if alias.name.startswith("percae")]
        else:
            continue
        holders = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))}
        for target in targets:
            parts = target.split(".")
            found.add(target)
            found |= {".".join(parts[:i]) for i in range(2, len(parts))} - holders
    return {m for m in found if m in known and m != name}


def test_no_module_imports_one_that_imports_it_back():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, name, set(paths)) for name, path in paths.items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
        return seen

    assert "percae.report" in graph["percae.reproduce"]  # the graph is read, not empty
    assert [name for name in graph if name in reachable(name)] == []
