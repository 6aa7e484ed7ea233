"""The import layers hold: core <- data <- models <- tools <- agent / workflows <- evals <- the CLI.

A module may import its own layer and the layers below it, at module level or inside a function.
Inference (every model module but the training entry, and every tool) never imports the data
pipeline: a deployed tool must not depend on the cohort generator. A module over ~400 lines says
in its docstring why it is one file.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"core": 0, "data": 1, "models": 2, "tools": 3, "agent": 4, "workflows": 4, "evals": 5, "cli": 6}
FOLDER = {"core": "core", "data": "data", "models": "models", "tools": "tools", "agent": "agent",
          "workflows": "workflows", "evals": "evals"}
TRAINING_ENTRIES = {"models/train.py"}  # training reads real datasets through mmdx.data.readers
MAX_LINES = 400  # a longer module starts a paragraph of its docstring with "Why one file"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return [(n, m) for n, m in out if m == "mmdx" or m.startswith("mmdx.")]


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return "cli" if parts[1] == "cli" else parts[1] if parts[1] in LAYER else None


def _modules():
    for layer, folder in FOLDER.items():
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield layer, p
    yield "cli", ROOT / "mmdx_pkg" / "cli.py"


@pytest.mark.parametrize("layer,path", list(_modules()), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_imports_flow_one_way(layer, path):
    bad = []
    rel = path.relative_to(ROOT).as_posix()
    for line, mod in _imports(path):
        target = _layer_of(mod)
        if target is None:
            continue
        if LAYER[target] > LAYER[layer]:
            bad.append(f"{rel}:{line} imports {mod} ({target} is above {layer})")
        if target == "data" and layer in ("models", "tools") and rel not in TRAINING_ENTRIES:
            bad.append(f"{rel}:{line} imports {mod}: inference must not depend on the data pipeline")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from mmdx.agent.graph import DiagnosticAgent\n")
    assert _imports(p) == [(2, "mmdx.agent.graph")] and LAYER[_layer_of("mmdx.agent.graph")] > LAYER["models"]


def test_long_modules_say_why_they_are_one_file():
    unexplained = []
    for _, path in _modules():
        text = path.read_text()
        n = text.count("\n")
        if n > MAX_LINES and "Why one file" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{path.relative_to(ROOT).as_posix()}: {n} lines, and no 'Why one file' in its docstring")
    assert not unexplained, "\n".join(unexplained)
