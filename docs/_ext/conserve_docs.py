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
sub-sections, and registers two directives:

``conserve-markdown``
    a Markdown report section, parsed and rendered by myst-parser with the
    escaping guarantee of :mod:`conserve_verified.docsgen._markdown`;
``conserve-exec``
    Python code *executed during the build*: the page shows the code and the
    output it printed in this build.  The blocks of one page share one
    namespace, in page order; an exception fails the build (so a tutorial
    cannot go stale).
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from conserve_verified.docsgen import generate
from conserve_verified.docsgen._markdown import DIRECTIVE, MarkdownSection

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


class ExecDirective(SphinxDirective):
    """``.. conserve-exec::`` -- run the Python content now; show it and what it printed."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        code = "\n".join(self.content)
        namespace = self.env.temp_data.setdefault(
            "conserve_exec_namespace", {"__name__": f"docs.{self.env.docname}"}
        )
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{self.env.docname} conserve-exec>", "exec"), namespace)
        except Exception:
            raise self.error(
                f"conserve-exec block failed in {self.env.docname}:\n{traceback.format_exc()}"
            ) from None
        shown: list[nodes.Node] = [nodes.literal_block(code, code, language="python")]
        printed = out.getvalue().rstrip()
        if printed:
            caption = nodes.paragraph("", "", nodes.emphasis("", "Output (this build):"))
            block = nodes.literal_block(printed, printed, language="text")
            block["classes"].append("conserve-exec-output")
            shown += [caption, block]
        return shown


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("conserve_certificate", "", "env", types=[str, type(None)])
    app.add_config_value("conserve_report_dir", "", "env", types=[str, type(None)])
    app.add_config_value("conserve_proof_timeout_s", 30.0, "env", types=[float, int])
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _rubrics)
    app.add_directive(DIRECTIVE, MarkdownSection, override=True)
    app.add_directive("conserve-exec", ExecDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
