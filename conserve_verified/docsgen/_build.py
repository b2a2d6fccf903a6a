"""Running Sphinx on the documentation sources."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgument
from ._paths import docs_dir

__all__ = ["BUILDERS", "build", "sphinx_argv"]

#: Sphinx builders the ``docs`` command offers.
BUILDERS = ("html", "dirhtml", "singlehtml", "linkcheck", "doctest")


def sphinx_argv(
    out_dir: Path,
    *,
    source_dir: Path | None = None,
    builder: str = "html",
    certificate: Path | None = None,
    report_dir: Path | None = None,
    proof_timeout_s: float | None = None,
    warnings_as_errors: bool = True,
    quiet: bool = True,
) -> list[str]:
    """The ``sphinx-build`` arguments :func:`build` runs (validated)."""
    source = docs_dir() if source_dir is None else Path(source_dir)
    if not (source / "conf.py").is_file():
        raise InvalidArgument("source_dir", str(source), "has no conf.py (not a Sphinx source)")
    if builder not in BUILDERS:
        raise InvalidArgument("builder", builder, f"must be one of {BUILDERS}")
    argv = ["-b", builder, "--fresh-env"]
    if warnings_as_errors:
        argv += ["-W", "--keep-going"]
    if quiet:
        argv.append("-q")
    if certificate is not None:
        if not Path(certificate).is_file():
            raise InvalidArgument("certificate", str(certificate), "is not a file")
        argv += ["-D", f"conserve_certificate={Path(certificate).resolve()}"]
    if report_dir is not None:
        if not Path(report_dir).is_dir():
            raise InvalidArgument("report_dir", str(report_dir), "is not a directory")
        argv += ["-D", f"conserve_report_dir={Path(report_dir).resolve()}"]
    if proof_timeout_s is not None:
        if not proof_timeout_s > 0:
            raise InvalidArgument("proof_timeout_s", proof_timeout_s, "must be > 0 seconds")
        argv += ["-D", f"conserve_proof_timeout_s={float(proof_timeout_s)}"]
    return [*argv, str(source), str(Path(out_dir))]


def build(out_dir: Path, **options: object) -> int:
    """Build the documentation into ``out_dir``; Sphinx's exit status (0 = success).

    Keyword options are those of :func:`sphinx_argv`.  With the default
    ``warnings_as_errors=True`` any Sphinx warning makes the build fail.
    """
    from sphinx.cmd.build import build_main

    return int(build_main(sphinx_argv(Path(out_dir), **options)))  # type: ignore[arg-type]
