"""The package's shape, checked: layers import only downwards, functions fit on a screen, and
each run-folder file name is spelled in one module.

Layers, lowest first (docs/architecture.md): errors/_version < settings, fs, machine < models <
data < evaluation < training < runs < share < studies < cli < the package's __init__/__main__.
A module may import from a lower layer or from its own package, never from a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mimcast"
LAYERS = [
    ("errors", "_version"),
    ("settings", "fs", "machine"),
    ("models",),
    ("data",),
    ("evaluation",),
    ("training",),
    ("runs",),
    ("share",),
    ("studies",),
    ("cli",),
    ("__init__", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_LINES, MAX_DEPTH = 60, 3
NESTING = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.AsyncFor, ast.AsyncWith, ast.Match)


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def package_of(path: Path) -> str:
    """The top-level part of mimcast a file belongs to: `models`, `fs`, `__init__`..."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level mimcast part) of every mimcast import in the file."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the file's own package
                out.append((node.lineno, package_of(path)))
            elif node.module and node.module.split(".")[0] == "mimcast":
                parts = node.module.split(".")
                if len(parts) > 1:
                    out.append((node.lineno, parts[1]))
                else:  # from mimcast import x: x is a part of the package
                    out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "mimcast":
                    out.append((node.lineno, parts[1] if len(parts) > 1 else "__init__"))
    return out


def test_every_part_of_the_package_has_a_layer() -> None:
    assert {package_of(p) for p in modules()} <= set(RANK)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path: Path) -> None:
    here = package_of(path)
    for line, target in imported_packages(path):
        assert target in RANK, f"{path.name}:{line} imports an unknown part {target}"
        if target != here:
            assert RANK[target] < RANK[here], (
                f"{path.relative_to(SRC)}:{line}: {here} (layer {RANK[here]}) imports {target} "
                f"(layer {RANK[target]}), which lies above it or beside it"
            )


def _depth(node: ast.AST, level: int = 0) -> int:
    deepest = level
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue  # a nested function is measured on its own
        inner = level + 1 if isinstance(child, NESTING) else level
        deepest = max(deepest, _depth(child, inner))
    return deepest


def functions() -> list[tuple[Path, ast.FunctionDef]]:
    out = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((path, node))
    return out


def test_functions_fit_on_a_screen_and_nest_at_most_three_deep() -> None:
    too_long, too_deep = [], []
    for path, fn in functions():
        where = f"{path.relative_to(SRC)}:{fn.lineno} {fn.name}"
        body_start = fn.body[0].lineno
        if fn.end_lineno - body_start + 1 > MAX_LINES:
            too_long.append(f"{where} ({fn.end_lineno - body_start + 1} lines)")
        if _depth(fn) > MAX_DEPTH:
            too_deep.append(f"{where} (depth {_depth(fn)})")
    assert not too_long, f"functions over {MAX_LINES} lines: {too_long}"
    assert not too_deep, f"functions nested over {MAX_DEPTH} levels: {too_deep}"


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    }


def test_each_run_folder_name_is_spelled_in_one_module() -> None:
    from mimcast.runs.rundir import RunDir

    names = (*RunDir.FILES, *RunDir.FOLDERS, RunDir.MARKER, RunDir.LOCK, RunDir.PREVIOUS)
    # A study's report folder (another folder mimcast owns) has a report.md of its own, and
    # "eval" is also the name of a config section.
    also = {
        "report.md": ["studies/report_dir.py"],
        "eval": ["training/config.py", "training/presets.py"],
    }
    spelled = {p: _string_constants(p) for p in modules()}
    for name in names:
        where = sorted(str(p.relative_to(SRC)) for p, consts in spelled.items() if name in consts)
        assert where == sorted(["runs/rundir.py", *also.get(name, [])]), f"{name!r} in {where}"
