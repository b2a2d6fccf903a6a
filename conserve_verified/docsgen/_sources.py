"""Locating definitions in Python source files (for ``literalinclude`` line ranges)."""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["function_lines", "theorem_lines"]


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def function_lines(path: Path, name: str) -> tuple[int, int] | None:
    """First and last line (1-based, decorators included) of top-level function ``name``."""
    tree = _parse(path)
    if tree is None:
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return first, node.end_lineno or node.lineno
    return None


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def theorem_lines(path: Path, theorem_id: str) -> tuple[int, int] | None:
    """Line range of the ``Theorem(...)`` call whose ``id`` is the literal ``theorem_id``.

    ``None`` when the file cannot be parsed or the id is not a literal argument
    (e.g. built by a helper function).
    """
    tree = _parse(path)
    if tree is None:
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _call_name(node) != "Theorem":
            continue
        candidates = [kw.value for kw in node.keywords if kw.arg == "id"]
        candidates += node.args[:1]
        if any(isinstance(c, ast.Constant) and c.value == theorem_id for c in candidates):
            return node.lineno, node.end_lineno or node.lineno
    return None
