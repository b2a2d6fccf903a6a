"""Sphinx extension: generate the data-driven pages at the start of each build.

Config values (``conf.py`` or ``-D name=value``):

``conserve_certificate``
    path of a certificate JSON to render; empty: run the proof engine now.
``conserve_report_dir``
    directory of the latest ``conserve-verified report``; empty: the
    repository's ``results/`` when it exists.
``conserve_proof_timeout_s``
    per-call solver timeout when the engine runs at build time.

It also turns section titles inside docstrings into rubrics, because a
docstring is rendered inside a page section, where docutils allows no
sub-sections.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

from conserve_verified.docsgen import generate

_TITLE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


def _path(value: Any) -> Path | None:
    return Path(value) if value else None


def _generate(app: Sphinx) -> None:
    """Write ``<srcdir>/generated`` from the registry, the certificate and the report."""
    generate(
        Path(app.srcdir) / "generated",
        certificate=_path(app.config.conserve_certificate),
        report_dir=_path(app.config.conserve_report_dir),
        proof_timeout_s=float(app.config.conserve_proof_timeout_s),
    )


def _rubrics(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Replace ``Title`` + underline pairs in a docstring by ``.. rubric:: Title``."""
    i = 0
    while i + 1 < len(lines):
        title, under = lines[i], lines[i + 1]
        if (
            title.strip()
            and not title.startswith(" ")
            and _TITLE.match(under)
            and len(under.strip()) >= len(title.strip())
        ):
            lines[i : i + 2] = [f".. rubric:: {title.strip()}", ""]
        i += 1


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("conserve_certificate", "", "env", types=[str, type(None)])
    app.add_config_value("conserve_report_dir", "", "env", types=[str, type(None)])
    app.add_config_value("conserve_proof_timeout_s", 30.0, "env", types=[float, int])
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _rubrics)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
