"""Every registered theorem names an existing property test, and that test names it back.

The link mechanism (documented in :mod:`conserve_verified.proof`): a theorem's
``property_test`` is ``"property_tests/<file>.py::<test>"``; that function must
exist in that file and its docstring must mention the theorem id as a word
(conventionally ``"T4: ..."``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conserve_verified.proof import PROOFS_DIR, REGISTRY, load_theories

ROOT = PROOFS_DIR.parent


def _test_docstrings(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name: ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def _theorems() -> list[str]:
    load_theories()
    return list(REGISTRY)


@pytest.mark.parametrize("theorem_id", _theorems())
def test_proof_theorem_has_twin(theorem_id: str) -> None:
    theorem = REGISTRY[theorem_id]
    path = ROOT / theorem.property_test_path
    assert path.is_file(), f"{theorem_id}: property test file {path} does not exist"
    docs = _test_docstrings(path)
    name = theorem.property_test_name
    assert name in docs, f"{theorem_id}: {theorem.property_test} is not defined"
    assert re.search(rf"(?<![\w.]){re.escape(theorem_id)}(?![\w])", docs[name]), (
        f"{theorem_id}: the docstring of {theorem.property_test} does not name {theorem_id}"
    )


def test_proof_registry_is_not_empty() -> None:
    assert {"T1", "T2", "T3", "T4", "T5", "T5a", "T5b", "T6", "T7"} <= set(_theorems())
