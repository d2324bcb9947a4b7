"""The house's shape, read from the source: the import graph of the `bidder` package has no circle,
data runs one way (API clients -> store -> market -> optimizer -> executor -> tick -> CLI), the
emulator beside it imports only neutral types, and click, graphql-core and matplotlib stay in their
rooms.

Every import counts: module level, under `if TYPE_CHECKING:` and inside functions. The rules are
data: a new package (or module) is placed by adding its prefix to `LAYERS`; a module that matches no
layer fails the test, so nothing new slips in unplaced.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bidder"


@dataclass(frozen=True)
class Layer:
    name: str
    prefixes: tuple[str, ...]
    # None: may import any layer of the same or a lower rank; else only these layers (and itself).
    only: tuple[str, ...] | None = None


#: Lowest first. A module may import modules of its own layer and of layers before it, never after.
#: Data flows down this list: what the clients fetch, the store keeps; the market reads it, the
#: optimizer decides on it, the executor acts, the tick runs them, the CLI prints.
LAYERS: tuple[Layer, ...] = (
    # bidder.vast.offers is Vast's neutral offer type and its one per-instance <-> per-GPU conversion:
    # the emulator's Vast world prices with it as the client does.
    Layer("neutral", ("bidder", "bidder.errors", "bidder.models", "bidder.units", "bidder.traces",
                      "bidder.vast.offers", "bidder.gpu_names", "bidder.clock")),
    Layer("clients", ("bidder.runpod", "bidder.vast")),
    Layer("store", ("bidder.store", "bidder.collector")),
    Layer("market", ("bidder.planner", "bidder.market", "bidder.machine_hazard")),
    Layer("optimizer", ("bidder.optimizer", "bidder.advisor")),
    Layer("executor", ("bidder.executor", "bidder.jobs", "bidder.pod_api", "bidder.vast_pods")),
    Layer("tick", ("bidder.tick",)),
    # The emulator stands beside the house: it speaks the APIs' wire formats and shares only
    # neutral types; it never imports a client, the store, the executor or the CLI.
    Layer("emulator", ("bidder.sim",), only=("neutral",)),
    # What users run off the cron path: backtests and reports (they read the store, replay the
    # optimizer, and the backtest reads GPU types from the emulator's catalogue).
    Layer("features", ("bidder.backtest", "bidder.report")),
    Layer("demo", ("bidder.demo",)),
    Layer("cli", ("bidder.cli", "bidder.__main__")),  # `python3 -m bidder` is the CLI
)

#: Third-party packages that only some rooms may import (anything else may be imported anywhere).
CONFINED: dict[str, tuple[str, ...]] = {
    "click": ("bidder.cli",),
    "graphql": ("bidder.sim",),
    "matplotlib": ("bidder.backtest.charts", "bidder.report.charts", "bidder.cli.report", "bidder.cli.backtest"),
    "pandas": (),
}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module name this file imports (absolute), with its line: all `import` statements
    anywhere in the file, TYPE_CHECKING blocks and function bodies included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]
            yield from ((sub, node.lineno) for sub in submodules)
            if len(submodules) < len(node.names):  # names defined in the module itself
                yield module, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        graph[name] = {}
        for target, line in _imports(name, path):
            graph[name].setdefault(target, line)
    return graph


GRAPH = _graph()


def _layer_of(module: str) -> tuple[int, Layer] | None:
    best: tuple[int, int, Layer] | None = None
    for rank, layer in enumerate(LAYERS):
        for prefix in layer.prefixes:
            # The root package matches only itself: a new module under it must be placed by name.
            inside = module.startswith(prefix + ".") and prefix != "bidder"
            if (module == prefix or inside) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank, layer)
    return None if best is None else (best[1], best[2])


def _internal_edges() -> Iterator[tuple[str, str, int]]:
    for source, targets in GRAPH.items():
        for target, line in targets.items():
            if target in MODULES and target != source:
                yield source, target, line


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_kind_of_import():
    """The reader itself: TYPE_CHECKING and function-level imports are edges (else the rules below
    could pass by not looking)."""
    assert "bidder.backtest.charts" in GRAPH["bidder.cli.backtest"]      # inside a function
    assert "bidder.traces" in GRAPH["bidder.backtest.history"]           # inside a function
    assert "bidder.backtest.engine" in GRAPH["bidder.backtest.charts"]   # under TYPE_CHECKING
    assert "bidder.runpod.operations" in GRAPH["bidder.runpod.client"]   # from package import submodule
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for source, target, _ in _internal_edges():
        graph[source].add(target)
    cycles = find_cycles(graph)
    assert cycles == [], "import circles (move the shared types into a module both import): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if _layer_of(m) is None)
    assert unplaced == [], f"place these modules in LAYERS of {Path(__file__).name}: {unplaced}"


def test_data_flows_one_way():
    wrong = []
    names = [layer.name for layer in LAYERS]
    for source, target, line in _internal_edges():
        (src_rank, src), (dst_rank, dst) = _layer_of(source), _layer_of(target)  # type: ignore[misc]
        if src is dst:
            continue
        allowed = dst_rank < src_rank if src.only is None else dst.name in src.only
        if not allowed:
            wrong.append(f"{MODULES[source].relative_to(ROOT)}:{line} {source} ({src.name}) imports {target} "
                         f"({dst.name}); allowed: {src.only or names[:src_rank]}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(CONFINED))
def test_confined_third_party_imports(package):
    rooms = CONFINED[package]
    wrong = []
    for source, targets in GRAPH.items():
        for target, line in targets.items():
            if target != package and not target.startswith(package + "."):
                continue
            if not any(source == r or source.startswith(r + ".") for r in rooms):
                wrong.append(f"{MODULES[source].relative_to(ROOT)}:{line} imports {target}")
    assert wrong == [], f"{package} may be imported only in {rooms or 'no module'}:\n" + "\n".join(wrong)


PACKAGES = sorted(m for m, p in MODULES.items() if p.name == "__init__.py")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_is_and_exports(package):
    """Each `__init__.py` opens with a docstring of a few lines and lists its exports in `__all__`,
    every one of which it really provides."""
    import importlib

    tree = ast.parse(MODULES[package].read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc) >= 60, f"{package}/__init__.py: say in a few lines what the package is"
    declared = [n for n in tree.body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
    assert declared, f"{package}/__init__.py has no __all__"
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == [], f"{package}.__all__ names what it does not provide: {missing}"
