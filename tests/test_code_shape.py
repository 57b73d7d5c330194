"""Small functions and short parameter lists where the logic lives: no function in core/ or pipelines/
runs over 60 lines, and none in core/ takes more than 8 parameters (group them in a dataclass)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "seqrec_cli"
MAX_LINES, MAX_PARAMS = 60, 8


def functions(package: str):
    for path in sorted((SRC / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(SRC), node


def parameters(node: ast.FunctionDef) -> int:
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return len([n for n in names if n not in ("self", "cls")])


@pytest.mark.parametrize("package", ["core", "pipelines"])
def test_no_function_over_60_lines(package):
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in functions(package) if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []


def test_no_parameter_list_over_8_in_core():
    wide = [f"{path}:{node.lineno} {node.name} ({parameters(node)} parameters)"
            for path, node in functions("core") if parameters(node) > MAX_PARAMS]
    assert wide == []
