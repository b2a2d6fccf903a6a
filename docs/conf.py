"""Sphinx configuration of the conserve_verified documentation.

The theorem pages, the claims table, the API reference pages and the
experiment pages are generated at build time by the local extension
``_ext/conserve_docs.py`` (from the theorem registry, a freshly produced
certificate and the latest experiment report), so the documentation cannot
disagree with what was proved or measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import conserve_verified  # noqa: E402

project = "conserve_verified"
author = "conserve_verified contributors"
copyright = "the conserve_verified contributors"
version = release = conserve_verified.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # MathJax bundled with the built docs (copied to _static/mathjax), so formulas
    # render with no network; the package's import name has hyphens
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_proof",
    "conserve_docs",
]
# Markdown (MyST) sources are read as well as reST ones; the experiments' report
# sections are Markdown rendered by myst-parser (directive ``conserve-markdown``).
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

exclude_patterns = ["_build", ".gitignore"]
html_theme = "furo"
html_title = f"conserve_verified {release}"
# API objects stay out of the navigation tree: with them every page would
# carry the whole API in its sidebar (and the build would take minutes).
toc_object_entries = False

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Methods inherited from third-party bases (pytest, torch) would bring their
# docstrings, with references into those projects' own documentation.
autodoc_inherit_docstrings = False
# The package re-exports its public names (``conserve_verified.Conserved`` is
# ``conserve_verified.operators.Conserved``), so a short cross-reference can
# have two equally valid targets; Sphinx links the first, which is correct.
suppress_warnings = ["ref.python"]

# Docstring examples are run by the test suite (``tests/test_docs_doctests.py``);
# the doctest builder runs the tutorials' ``.. doctest::`` blocks only.
doctest_test_doctest_blocks = ""
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# conserve_docs: where the inputs of the generated pages come from.  ``None``
# means "produce it now": the certificate is computed by running the proof
# engine over every theory in ``proofs/`` at build time; the report directory
# defaults to ``results/`` of the repository when it exists.
conserve_certificate = None
conserve_report_dir = None
conserve_proof_timeout_s = 20.0
