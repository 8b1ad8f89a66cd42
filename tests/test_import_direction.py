"""Imports point one way: cli -> (api, indexer, training) -> searchengine.

`searchengine` is the core a query needs; `indexer` (ingestion), `api` (HTTP) and `training` (how
clsp-mini is made) build on it and not on each other; the command line sits on top and nothing
imports it. Read from the source (every `import`, also those inside functions), so a lazy import
that points the wrong way fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("searchengine", "indexer", "api", "training", "cli")
#: Which of our packages each package may import (itself always).
ALLOWED = {
    "searchengine": set(),
    "indexer": {"searchengine"},
    "api": {"searchengine"},
    "training": {"searchengine"},
    "cli": {"searchengine", "indexer", "api", "training"},
}


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str, bool]]:
    """(line, absolute module name, at module level?) of every import in a file under `root`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name, id(node) in top_level))
    return found


def source_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(package):
    wrong = []
    for path in source_files(package):
        for line, name, _ in imported_modules(path):
            target = name.split(".")[0]
            if target in PACKAGES and target != package and target not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'none of our packages'}:\n" + "\n".join(wrong)


def test_no_two_modules_import_each_other():
    """Two modules importing each other, even lazily (pipeline <-> ray_backend was such a pair), are
    really one module, or share a piece that belongs in a third."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for package in PACKAGES for p in source_files(package)}
    graph = {name: {target for _, target, top in imported_modules(path) if top and target in modules and target != name}
             for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is not a cycle between two modules.
    cycles = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                    if a < b and a in graph.get(b, ()) and not b.startswith(a + "."))
    assert not cycles, "modules that import each other:\n" + "\n".join(cycles)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The rules above are only as good as the parser: an import inside a function and a relative one
    are both found, with the names they resolve to."""
    module = tmp_path / "searchengine" / "model" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text("import numpy\n\ndef f():\n    from indexer import pipeline\n    from ..store import faiss_index\n")
    found = [(name, top) for _, name, top in imported_modules(module, root=tmp_path)]
    assert found == [("numpy", True), ("indexer", False), ("searchengine.store", False)]
