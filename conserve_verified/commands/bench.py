"""``conserve-verified bench``: the benchmark suite (ratios against torch built-ins).

The suite lives in the ``benchmarks`` package of the source tree (run from a
checkout, or with the checkout installed in editable mode); see its docstring
for what is measured.
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import InvalidArgument

__all__ = ["HELP", "NAME", "configure", "run"]

NAME = "bench"
HELP = "run the benchmarks: conserve vs rms_norm/normalize/copy, pipeline overhead, proofs, ..."


def _suite_cli() -> object:
    try:
        return importlib.import_module("benchmarks.cli")
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
        suite = importlib.import_module("benchmarks.cli")
    except ModuleNotFoundError:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    suite.configure(parser)


def run(args: argparse.Namespace) -> int:
    """Run the suite and print its Markdown report."""
    suite = _suite_cli()
    code: int = suite.execute(args)  # type: ignore[attr-defined]
    return code
