"""The package stack is one-way (docs/architecture.md): no module imports a package above its own, no cycles.

Every module under src/mammo is parsed with `ast`; every import (module level or inside a function) of a
`mammo` package is mapped to its top-level package and checked against LEVELS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mammo"

# Lowest first; a package may import only packages of its own level or below. Packages not written yet are
# already placed, so that their arrival keeps this test green.
LEVELS: list[set[str]] = [
    {"__init__", "errors"},
    {"io"},
    {"stats"},
    {"data", "prep"},
    {"models", "datasets", "seeding", "track"},
    {"predict"},
    {"train", "evaluate"},
    {"explain"},
    {"report", "pacs"},
    {"demo"},
    {"cli", "__main__"},
]
LEVEL = {name: i for i, names in enumerate(LEVELS) for name in names}
NO_TORCH_AT_IMPORT = {name for name in LEVEL if LEVEL[name] <= LEVEL["prep"]}


def package_of(path: Path, root: Path = SRC) -> str:
    """The top-level package of a module file: src/mammo/train/loop.py -> 'train', src/mammo/cli.py -> 'cli'."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def mammo_imports(tree: ast.AST, path: Path, root: Path = SRC) -> list[tuple[str, int, bool]]:
    """(imported mammo package, line, at module level) for every import in the tree, relative ones resolved."""
    top_level = {id(node) for node in getattr(tree, "body", [])}
    here = path.relative_to(root).parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["mammo", *here[: len(here) - node.level + 1]]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from mammo import errors` imports the package named by the alias
            names = [f"{module}.{a.name}" for a in node.names] if module == "mammo" else [module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "mammo":
                continue
            # `mammo.X` is the package X when X is a module or package; else a name of mammo/__init__.py
            is_module = len(parts) > 1 and ((root / parts[1]).is_dir() or (root / f"{parts[1]}.py").is_file())
            found.append((parts[1] if is_module else "__init__", node.lineno, id(node) in top_level))
    return found


def torch_at_import(tree: ast.AST) -> list[int]:
    """Lines of module-level imports of torch (import torch, from torch.x import y)."""
    lines = []
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            lines.append(node.lineno)
    return lines


def import_graph(root: Path = SRC) -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> ['file:line', ...] for every import between two different packages."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        source = package_of(path, root)
        for target, line, _ in mammo_imports(ast.parse(path.read_text()), path, root):
            if target != source:
                edges.setdefault((source, target), []).append(f"{path.relative_to(root.parent)}:{line}")
    return edges


def upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Imports that go up the stack, or from/to a package LEVELS does not place."""
    bad = []
    for (a, b), where in sorted(edges.items()):
        if a not in LEVEL or b not in LEVEL:
            missing = a if a not in LEVEL else b
            bad.append(f"{missing}: not placed in LEVELS of tests/test_architecture.py ({where[0]})")
        elif LEVEL[b] > LEVEL[a]:
            bad.append(f"{a} (level {LEVEL[a]}) imports {b} (level {LEVEL[b]}) at {', '.join(where)}")
    return bad


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Every cycle between packages, each as the list of packages on it (depth-first search)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                loop = path[path.index(nxt) :]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    found.append([*loop, nxt])
            else:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_no_upward_imports():
    assert upward(import_graph()) == []


def test_no_cycles_between_packages():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_data_layers_do_not_import_torch_at_module_level(path):
    if package_of(path) in NO_TORCH_AT_IMPORT:
        assert torch_at_import(ast.parse(path.read_text())) == [], f"{path}: import torch inside the function"


def test_every_package_is_placed():
    packages = {package_of(p) for p in SRC.rglob("*.py")}
    assert packages - set(LEVEL) == set()
    assert {"stats", "models", "train", "evaluate", "cli"} <= packages


def test_checker_catches_upward_import_and_cycle(tmp_path):
    root = tmp_path / "mammo"
    (root / "stats").mkdir(parents=True)
    (root / "stats" / "metrics.py").write_text("def f():\n    from mammo.train import loop\n")
    (root / "train").mkdir()
    (root / "train" / "loop.py").write_text("from ..stats import metrics\nimport mammo.errors\n")
    (root / "errors.py").write_text("from mammo import io\n")
    (root / "__init__.py").write_text("__version__ = '1'\n")
    (root / "cli.py").write_text("from mammo import __version__\n")
    (root / "io.py").write_text("import mammo.errors\n")
    edges = import_graph(root)
    assert set(edges) == {
        ("stats", "train"),
        ("train", "stats"),
        ("train", "errors"),
        ("errors", "io"),
        ("io", "errors"),
        ("cli", "__init__"),
    }
    bad = upward(edges)
    assert (
        len(bad) == 2
        and bad[0].startswith("errors (level 0) imports io")
        and "stats (level 2) imports train" in bad[1]
    )
    assert sorted(sorted(set(c)) for c in cycles(edges)) == [["errors", "io"], ["stats", "train"]]
