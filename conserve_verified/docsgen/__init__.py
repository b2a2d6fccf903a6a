"""Documentation pages generated from data: theorems, claims, API, experiments.

The Sphinx extension ``docs/_ext/conserve_docs.py`` calls :func:`generate` at
the start of every build; it writes reST (and the certificate and plots the
pages refer to) under ``docs/generated/``:

``claims.rst``
    the claims table of the landing page (paper's figure vs our verdict/number);
``theorems/<id>.rst``
    one page per registered theorem (statement, assumptions, LaTeX, backend,
    verdict and time from the certificate, mutants with counterexamples, the
    refuted paper claim where there is one, property test and source);
``api/<module>.rst``
    one page per public module;
``experiments/<name>.rst``
    the latest report section of each experiment, with its plots;
``benchmarks.rst``
    the committed benchmark measurements (``benchmarks/RESULTS.md``);
``certificate.json``
    the certificate the theorem pages were rendered from.

Identity: ``generate(out, ...)`` leaves ``out`` containing exactly
``pages(...)`` -- nothing stale survives (see :func:`._files.sync_tree`).
"""

from __future__ import annotations

from ._api import api_pages, public_modules
from ._build import BUILDERS, build, sphinx_argv
from ._claims import describe_figure, load_claims, render_claims_table
from ._experiments import experiment_pages, render_experiment_page
from ._files import atomic_write, sync_tree
from ._generate import (
    THEORIES_OF_CLAIMS,
    generate,
    load_registry,
    pages,
    produce_certificate,
)
from ._markdown import markdown_to_rst
from ._theorems import check_certificate, render_theorem_index, render_theorem_page

__all__ = [
    "BUILDERS",
    "THEORIES_OF_CLAIMS",
    "api_pages",
    "atomic_write",
    "build",
    "check_certificate",
    "describe_figure",
    "experiment_pages",
    "generate",
    "load_claims",
    "load_registry",
    "markdown_to_rst",
    "pages",
    "produce_certificate",
    "public_modules",
    "render_claims_table",
    "render_experiment_page",
    "render_theorem_index",
    "render_theorem_page",
    "sphinx_argv",
    "sync_tree",
]
