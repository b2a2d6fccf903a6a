"""Shared fixtures of the test suite."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable, Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def toy_experiments(tmp_path: pathlib.Path) -> Iterator[Callable[[str, str], pathlib.Path]]:
    """``make(name, source)`` writes an ``experiments`` package with one toy experiment.

    The package lives under ``tmp_path``; the project's own ``experiments``
    modules are taken out of ``sys.modules`` while the test runs and put back
    afterwards, together with ``sys.path``.
    """
    root = tmp_path / "exp" / "experiments"
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "experiments"}
    for k in saved:
        del sys.modules[k]

    def make(name: str, source: str) -> pathlib.Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / "__init__.py").write_text((REPO / "experiments" / "__init__.py").read_text())
        (root / f"{name}.py").write_text(source)
        return root

    yield make
    for k in [k for k in sys.modules if k.split(".")[0] == "experiments"]:
        del sys.modules[k]
    sys.modules.update(saved)
    if str(root.parent) in sys.path:
        sys.path.remove(str(root.parent))
