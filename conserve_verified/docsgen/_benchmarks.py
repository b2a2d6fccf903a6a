"""The benchmarks page: ``benchmarks/RESULTS.md`` of the checkout, rendered as reST."""

from __future__ import annotations

from pathlib import Path

from . import _rst
from ._markdown import markdown_to_rst

__all__ = ["BENCHMARK_RESULTS", "benchmark_page"]

#: The measured benchmark tables, relative to the repository root.
BENCHMARK_RESULTS = Path("benchmarks") / "RESULTS.md"

_INTRO = (
    "Speed is measured by ``conserve-verified bench`` (``benchmarks/``) as ratios "
    "against torch built-ins timed in the same run, never as timed assertions in "
    "tests.  The tables below are the committed measurements in "
    "``benchmarks/RESULTS.md``."
)


def benchmark_page(repo: Path) -> str:
    """Page ``benchmarks.rst``: a title, an introduction, then ``RESULTS.md`` as reST.

    Identity: the body equals ``markdown_to_rst(RESULTS.md)``; without the file the
    page says so instead of inventing numbers.
    """
    source = repo / BENCHMARK_RESULTS
    parts = [_rst.heading("Benchmarks", 1), _INTRO + "\n"]
    if source.is_file():
        parts.append(markdown_to_rst(source.read_text(encoding="utf-8"), base_dir=source.parent))
    else:
        parts.append(
            f".. note:: No measurements: {_rst.inline_literal(str(BENCHMARK_RESULTS))} "
            "is missing from this checkout.\n"
        )
    return "\n".join(parts)
