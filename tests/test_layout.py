"""The package's import graph: layers only import downwards, and no module imports itself back through others.

Layers, lowest first: ``nn`` (layers) → ``models`` (task pipelines) → ``integration`` (the Ultralytics coupling,
which owns every side effect) → the tools (``convert``, ``bench``, ``catalog``, ``coco``, ``pretrain``) → ``cli``
→ the package root (the public API). Every import counts, function-level ones too: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ultra_ext

ROOT = Path(ultra_ext.__file__).resolve().parent
LAYERS = {
    "ultra_ext.nn": 0,
    "ultra_ext.models": 1,
    "ultra_ext.integration": 2,
    "ultra_ext.convert": 3,
    "ultra_ext.bench": 3,
    "ultra_ext.catalog": 3,
    "ultra_ext.coco": 3,
    "ultra_ext.pretrain": 3,
    "ultra_ext.cli": 4,
    "ultra_ext": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rsplit(".", 1)[0]
    return LAYERS[module]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The ``ultra_ext`` modules ``path`` imports (relative imports resolved; ``from pkg import mod``: ``pkg.mod``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t == "ultra_ext" or t.startswith("ultra_ext.")}
    return {t for t in found if t in modules and t != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def test_every_module_has_a_layer(graph):
    assert len(graph) > 30
    for module in graph:
        layer(module)  # raises KeyError for a module outside every layer


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    upward = [f"{m} → {t}" for m, targets in graph.items() for t in targets if layer(t) > layer(m)]
    assert not upward, upward


def test_import_graph_has_no_cycle(graph):
    """Tarjan's strongly connected components: every component must be a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_sees_an_upward_import_and_a_cycle():
    """The two checks can fail: a synthetic graph with ``nn → integration`` and a two-module cycle."""
    fake = {"ultra_ext.nn.a": {"ultra_ext.integration.b"}, "ultra_ext.integration.b": {"ultra_ext.nn.a"}}
    assert [m for m, ts in fake.items() for t in ts if layer(t) > layer(m)] == ["ultra_ext.nn.a"]
    with pytest.raises(AssertionError):
        test_import_graph_has_no_cycle(fake)


def test_importing_layers_changes_nothing_global():
    """Module code of ``nn`` and ``models`` patches nothing: after :func:`ultra_ext.deactivate` restored Ultralytics,
    executing every one of those modules again (``importlib.reload``) leaves it stock."""
    import os
    import subprocess
    import sys

    code = """
import importlib, sys
import ultra_ext
from ultralytics import YOLO  # loads the task map, the generalist pipeline and the exporter hooks
import ultralytics.cfg as cfg, ultralytics.nn.tasks as tasks
from ultralytics.engine.exporter import Exporter
from ultralytics.utils.export import engine

def patched():
    return [what for what, bad in [
        ("parse_model", getattr(tasks.parse_model, "ultra_ext_patched", False)),
        ("TASKS", "generalist" in cfg.TASKS),
        ("task_map", "generalist" in YOLO.task_map.fget(YOLO.__new__(YOLO))),
        ("exporter", hasattr(Exporter.__dict__["__call__"], "ultra_ext_stock")),
        ("torch2onnx", hasattr(engine.torch2onnx, "ultra_ext_stock")),
    ] if bad]

assert len(patched()) == 5, patched()
ultra_ext.deactivate()
assert patched() == [], patched()
names = sorted(n for n in sys.modules if n.startswith(("ultra_ext.nn", "ultra_ext.models")))
for name in names:
    importlib.reload(sys.modules[name])
print("reloaded", len(names), "still patched:", patched())
"""
    env = {**os.environ, "ULTRA_EXT_DISABLE": "1"}  # no startup hook: `import ultra_ext` activates
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.endswith("still patched: []") and int(line.split()[1]) >= 10, line
