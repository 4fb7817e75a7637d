"""Tests for the package's import graph: no module of sweep imports another that (directly or through others)
imports it back, counting imports inside functions and under TYPE_CHECKING as well as module-level ones."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import sweep

PACKAGE_DIR = Path(sweep.__file__).parent


def module_name(package: str, root: Path, path: Path) -> str:
    """The dotted name of the module at `path` in the package rooted at `root` (a package's __init__ is its name)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def imported_modules(
    node: ast.Import | ast.ImportFrom, package: str, here: str, is_package: bool, modules: set[str]
) -> set[str]:
    """The package's modules one import statement loads: `import p.x`, `from p.x import y`, and `from p import x`
    (or `from . import x`) when x is a module; importing a name of a package is an edge to that package. `here` is
    the importing module (`is_package`: an __init__), for relative imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == package}
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    if origin.split(".")[0] != package:
        return set()
    found = set()
    for alias in node.names:
        submodule = f"{origin}.{alias.name}"
        found.add(submodule if submodule in modules else origin)
    return found


def import_graph(folder: Path, package: str) -> dict[str, set[str]]:
    """Each module of the package (subpackages included) -> the package's modules it imports anywhere in its code
    (module level, in functions, under TYPE_CHECKING). A lazy table of names (sweep/__init__.py's _HOMES) holds
    strings, not imports, so it adds no edge."""
    paths = sorted(folder.rglob("*.py"))
    modules = {module_name(package, folder, path) for path in paths}
    graph = {}
    for path in paths:
        name = module_name(package, folder, path)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= imported_modules(node, package, name, path.stem == "__init__", modules)
        graph[name] = edges - {name}
    return graph


# DESIGN.md's layers, lowest first: a module imports only from its own layer or a lower one.
LAYERS = {
    "base": (
        "sweep.errors",
        "sweep.config",
        "sweep.space",
        "sweep.metrics",
        "sweep.multiclass",
        "sweep.plots",
        "sweep.runtime",
        "sweep.stopping",
    ),
    "data": ("sweep.data",),
    "models": ("sweep.models",),
    "study": ("sweep.study",),
    "handover": ("sweep.handover",),
    "reading": ("sweep.reading",),
    "interface": ("sweep.api", "sweep.cli", "sweep"),
}


def layer_of(module: str, layers: dict) -> int:
    """The rank of the layer `module` belongs to: the longest prefix (a module or a package) that names it."""
    ranked = [
        (len(prefix), rank)
        for rank, prefixes in enumerate(layers.values())
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not ranked:
        raise AssertionError(f"module {module} is in no layer of {list(layers)}")
    return max(ranked)[1]


def upward_imports(graph: dict[str, set[str]], layers: dict) -> list[str]:
    """Every import of a module from a higher layer, as 'importer -> imported'."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target, layers) > layer_of(module, layers)
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph has none."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))
    return None


def _write_package(folder: Path, files: dict[str, str]) -> Path:
    package = folder / "pkg"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(text)
    return package


PACKAGES = {
    # The real package: must have no cycle.
    "sweep": lambda tmp_path: (PACKAGE_DIR, "sweep", None),
    # a -> b at module level, b -> a inside a function ("from pkg import a"): a cycle.
    "function-level cycle": lambda tmp_path: (
        _write_package(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "import pkg.b\n",
                "b.py": "def late():\n    from pkg import a\n    return a\n",
            },
        ),
        "pkg",
        {"pkg.a", "pkg.b"},
    ),
    # a -> b -> c -> a through `from pkg.x import name`, one of them under TYPE_CHECKING, another relative.
    "three-module cycle": lambda tmp_path: (
        _write_package(
            tmp_path,
            {
                "__init__.py": "_HOMES = {'f': 'pkg.a'}\n",
                "a.py": "from pkg.b import g\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import h\ng = 1\n",
                "c.py": "from .a import f\nh = 2\n",
            },
        ),
        "pkg",
        {"pkg.a", "pkg.b", "pkg.c"},
    ),
    # a -> b and a -> c -> b, and a name imported from the package: no cycle.
    "no cycle": lambda tmp_path: (
        _write_package(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "import pkg.b\nfrom pkg import c\nfrom pkg import VERSION\n",
                "b.py": "import os\n",
                "c.py": "def f():\n    from pkg.b import os\n",
            },
        ),
        "pkg",
        None,
    ),
}


@pytest.mark.parametrize("package", PACKAGES)
def test_import_graph_has_no_cycle(package, tmp_path):
    """Check that the sweep package has no import cycle, and that a cycle in a made-up package is found and named."""
    folder, name, cycle_modules = PACKAGES[package](tmp_path)
    cycle = find_cycle(import_graph(folder, name))
    if cycle_modules is None:
        assert cycle is None, f"import cycle in {name}: {' -> '.join(cycle)}"
    else:
        assert cycle is not None, f"the cycle among {sorted(cycle_modules)} was not found"
        assert set(cycle) == cycle_modules and cycle[0] == cycle[-1]


def test_graph_reads_every_kind_of_import(tmp_path):
    """Check that module-level, function-level, `from pkg import module` and relative imports are edges, and names are
    not modules."""
    folder = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import pkg.b\nfrom pkg import c, NAME\n\n\ndef f():\n    from .d import x\n",
            "b.py": "",
            "c.py": "",
            "d.py": "",
        },
    )
    assert import_graph(folder, "pkg")["pkg.a"] == {"pkg.b", "pkg.c", "pkg.d", "pkg"}


def test_imports_follow_the_layers():
    """Check that every module of sweep imports only from its own layer or a lower one (base, data, models, study,
    handover, reading, interface), counting imports inside functions and under TYPE_CHECKING."""
    assert upward_imports(import_graph(PACKAGE_DIR, "sweep"), LAYERS) == []


def test_an_upward_import_is_found(tmp_path):
    """Check that a low module importing a high one, directly or relatively from a subpackage, is named."""
    folder = _write_package(
        tmp_path, {"__init__.py": "", "low.py": "def f():\n    from pkg.high import g\n", "mid.py": ""}
    )
    (folder / "high").mkdir()
    (folder / "high" / "__init__.py").write_text("from ..mid import x\n")
    (folder / "high" / "inner.py").write_text("from . import other\nfrom .. import low\n")
    layers = {"low": ("pkg.low", "pkg"), "mid": ("pkg.mid",), "high": ("pkg.high",)}
    assert upward_imports(import_graph(folder, "pkg"), layers) == ["pkg.low -> pkg.high"]
