"""Docstring examples of every module of the package, and the tutorials, run as doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import conserve_verified
from conserve_verified.docsgen._paths import docs_dir

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = [conserve_verified.__name__]
    for info in pkgutil.walk_packages(conserve_verified.__path__, "conserve_verified."):
        if info.name.endswith("__main__") or ".commands." in info.name:
            continue
        names.append(info.name)
    return sorted(names)


def _tests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    found = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return [t for t in found if t.examples]


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples(module_name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    for test in _tests(module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_docstring_examples_exist() -> None:
    """The doctest collection is not vacuous: the package has examples to run."""
    assert sum(len(t.examples) for m in _modules() for t in _tests(m)) >= 3


@pytest.mark.parametrize(
    "page", sorted(p.name for p in (docs_dir() / "tutorials").glob("*.rst")), ids=str
)
def test_tutorial_examples(page: str) -> None:
    path = Path(docs_dir() / "tutorials" / page)
    result = doctest.testfile(
        str(path), module_relative=False, optionflags=_FLAGS, verbose=False, report=True
    )
    assert result.failed == 0, f"{result.failed} example(s) failed in {page}"
