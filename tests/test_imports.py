"""The package's imports flow one way, along the data flow, and never in a circle.

Every import of a `competition` module is read from the source (module level and inside functions
alike, so a lazy import counts), and each module is placed on a layer of the data flow:

    foundations -> datasets -> features -> modeling -> submit -> kaggle -> demo_run -> app -> __main__

A module may import its own layer or an earlier one, never a later one, and no set of modules may
import each other in a circle. The checks are first run on made-up graphs, so each can be seen to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "competition"

# The data flow's layers, earliest first: a module prefix per layer (the longest matching prefix wins).
LAYERS = (
    ("foundations", ("competition", "competition.errors", "competition.workspace", "competition.config",
                     "competition.metrics", "competition.audio", "competition.kaggle_client",
                     "competition.quiet_start", "competition.onednn")),
    ("datasets", ("competition.datasets",)),
    ("features", ("competition.features",)),
    ("modeling", ("competition.modeling",)),
    ("submit", ("competition.submit",)),
    ("kaggle", ("competition.kaggle",)),
    ("demo", ("competition.demo_run",)),
    ("app", ("competition.app",)),
    ("command line", ("competition.__main__",)),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py")) if "__pycache__" not in path.parts}


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return {name for name in found if name.split(".")[0] == "competition" or name.split(".")[0] == "benchmarks"}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = package_modules(root)
    return {name: imports_of(path, set(modules)) - {name} for name, path in modules.items()}


def layer_of(module: str, layers=LAYERS) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank is None:
        raise AssertionError(f"{module} is on no layer; place it in LAYERS")
    return rank


def backward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            if other.split(".")[0] != "competition":
                problems.append(f"{module} imports {other}, which is outside the runtime package")
            elif layer_of(other, layers) > layer_of(module, layers):
                problems.append(f"{module} ({layers[layer_of(module, layers)][0]}) imports {other} "
                                f"({layers[layer_of(other, layers)][0]}), a later step")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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


def test_the_checks_see_a_cycle_and_a_backward_import():
    graph = {"competition.datasets.a": {"competition.datasets.b"}, "competition.datasets.b": {"competition.datasets.a"},
             "competition.features.c": {"competition.modeling.d"}, "competition.modeling.d": set(),
             "competition.config": {"benchmarks.features"}}
    assert cycles(graph) == [["competition.datasets.a", "competition.datasets.b"]]
    assert backward_imports(graph) == [
        "competition.config imports benchmarks.features, which is outside the runtime package",
        "competition.features.c (features) imports competition.modeling.d (modeling), a later step"]
    with pytest.raises(AssertionError, match="on no layer"):
        layer_of("elsewhere.module")


def test_the_reader_finds_lazy_imports_and_submodules(tmp_path):
    root = tmp_path / "competition"
    (root / "datasets").mkdir(parents=True)
    for name in ("__init__.py", "datasets/__init__.py", "datasets/spec.py", "config.py"):
        (root / name).write_text("")
    (root / "datasets" / "registry.py").write_text(
        "from competition.datasets import spec\n\ndef f():\n    from competition import config\n    import numpy\n")
    assert import_graph(root)["competition.datasets.registry"] == {"competition.datasets.spec", "competition.config"}


def test_every_module_of_the_package_is_on_a_layer():
    for module in package_modules():
        layer_of(module)


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_module_imports_a_later_step_or_the_benchmarks():
    assert backward_imports(import_graph()) == []
