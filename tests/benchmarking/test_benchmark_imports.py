"""The benchmark package's layout: no import cycles (lazy imports inside functions included), the
peers depend on the side protocol and never on the suite, and every module imports on its own."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "benchmarks"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module -> benchmark modules it imports`` anywhere in its body (top level or in a function)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name and not name.startswith(f"{t}.")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = 2, path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "benchmarks.protocol" in graph and "benchmarks.peers.transformers_side" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_peers_import_the_protocol_and_not_the_suite() -> None:
    graph = import_graph()
    suite = {"benchmarks.sides", "benchmarks.run", "benchmarks.worker", "benchmarks.bench_stream"}
    for name, targets in graph.items():
        if name.startswith("benchmarks.peers."):
            assert not targets & suite, f"{name} imports {sorted(targets & suite)}"
    assert "benchmarks.protocol" in graph["benchmarks.peers.transformers_side"]
    assert "benchmarks.protocol" in graph["benchmarks.sides"]
    assert graph["benchmarks.protocol"] == set()


@pytest.mark.parametrize("name", sorted(import_graph()))
def test_every_module_imports_on_its_own(name: str) -> None:
    """Each module in a fresh interpreter (no import order can hide a cycle or a side effect)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import importlib; importlib.import_module({name!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_run_help_works() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--sides" in result.stdout, result.stderr[-2000:]


def test_sides_follow_the_protocol() -> None:
    sys.path.insert(0, str(ROOT))
    protocol = importlib.import_module("benchmarks.protocol")
    sides = importlib.import_module("benchmarks.sides")
    peers = importlib.import_module("benchmarks.peers.transformers_side")
    for side in (sides.Sam2kitSide, sides.ReferenceSide):
        assert protocol.MaskGeneratingSide in side.__mro__
    assert protocol.Side in peers.TransformersSide.__mro__
