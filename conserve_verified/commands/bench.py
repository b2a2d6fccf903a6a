"""``conserve-verified bench``: the benchmark suite (ratios against torch built-ins).

The suite lives in the ``benchmarks`` package of the source tree (run from a
checkout, or with the checkout installed in editable mode); see its docstring
for what is measured.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

from ..errors import InvalidArgument

__all__ = ["HELP", "NAME", "configure", "run"]

NAME = "bench"
HELP = "run the benchmarks: conserve vs rms_norm/normalize/copy, pipeline overhead, proofs, ..."


#: The checkout this package lives in (its ``benchmarks/`` is the suite).
CHECKOUT = Path(__file__).resolve().parents[2]


def _import_suite() -> ModuleType:
    """``benchmarks.cli`` from the path, or from the checkout this package lives in.

    A console script's ``sys.path`` starts at its ``bin/`` folder, not at the
    checkout, so ``conserve-verified bench`` run from anywhere finds the suite
    of the checkout of an editable install.
    """
    try:
        return importlib.import_module("benchmarks.cli")
    except ModuleNotFoundError:
        if not (CHECKOUT / "benchmarks" / "cli.py").is_file():
            raise
        sys.path.insert(0, str(CHECKOUT))
        return importlib.import_module("benchmarks.cli")


def _suite_cli() -> object:
    try:
        return _import_suite()
    except ModuleNotFoundError as exc:
        raise InvalidArgument(
            "benchmarks",
            "not importable",
            "the benchmark suite ships with the source tree; run from a checkout "
            f"of conserve_verified ({exc})",
        ) from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the suite (``--quick``/``--full``/``--tiny``, ``--json``, ...)."""
    try:
        suite = _import_suite()
    except ModuleNotFoundError:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    suite.configure(parser)


def run(args: argparse.Namespace) -> int:
    """Run the suite and print its Markdown report."""
    suite = _suite_cli()
    code: int = suite.execute(args)  # type: ignore[attr-defined]
    return code
