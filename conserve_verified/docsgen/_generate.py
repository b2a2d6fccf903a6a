"""Assemble every generated page and write them (see :mod:`conserve_verified.docsgen`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._api import api_pages
from ._benchmarks import benchmark_page
from ._claims import load_claims, render_claims_table
from ._experiments import experiment_evidence, experiment_pages
from ._files import sync_tree
from ._paths import proofs_dir, repo_root, results_dir
from ._theorems import claim_evidence, theorem_pages

__all__ = ["THEORIES_OF_CLAIMS", "generate", "load_registry", "pages", "produce_certificate"]

#: Claims (ids in ``claims.json``) whose statements a theory of ``proofs/`` proves.
THEORIES_OF_CLAIMS: dict[str, tuple[str, ...]] = {
    "S": ("propagation",),
    "G": ("gauge",),
    "A": ("ace",),
}


def load_registry(directory: Path | None = None) -> dict[str, Any]:
    """Load every theory file of ``directory`` (default ``proofs/``); the registry by id."""
    from ..proof import REGISTRY, load_theories

    load_theories(proofs_dir() if directory is None else directory)
    return dict(REGISTRY)


def produce_certificate(
    directory: Path | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run the proof engine over every registered theorem now; return its certificate."""
    from ..proof import certificate, check_all

    registry = load_registry(directory)
    return certificate(check_all(registry.values(), timeout_s), timeout_s)


def _merge(*maps: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in maps:
        for key, lines in m.items():
            out.setdefault(key, []).extend(lines)
    return out


def pages(
    *,
    claims: Mapping[str, Any],
    certificate: Mapping[str, Any],
    registry: Mapping[str, Any],
    report_dir: Path | None,
    repo: Path,
) -> dict[str, str | bytes]:
    """Every generated file, as ``{relative path: content}`` (a pure function of its inputs)."""
    out: dict[str, str | bytes] = {}
    out.update(theorem_pages(certificate, registry, repo, claims))
    out["certificate.json"] = json.dumps(certificate, indent=2) + "\n"
    experiments = experiment_pages(report_dir)
    out.update(experiments)
    evidence = _merge(
        claim_evidence(certificate, THEORIES_OF_CLAIMS), experiment_evidence(report_dir)
    )
    out["claims.rst"] = render_claims_table(claims, evidence)
    out.update(api_pages())
    out["benchmarks.rst"] = benchmark_page(repo)
    return out


def generate(
    out_dir: Path,
    *,
    certificate: Mapping[str, Any] | Path | None = None,
    report_dir: Path | None = None,
    claims_file: Path | None = None,
    proof_timeout_s: float | None = None,
) -> list[Path]:
    """Write :func:`pages` into ``out_dir`` so that it holds exactly those files.

    ``certificate`` is a certificate dict, the path of a certificate JSON, or
    ``None`` to run the proof engine now (per-claim timeout ``proof_timeout_s``).
    ``report_dir`` defaults to the repository's ``results/`` when it exists.
    """
    registry = load_registry()
    if certificate is None:
        cert: Mapping[str, Any] = produce_certificate(timeout_s=proof_timeout_s)
    elif isinstance(certificate, Mapping):
        cert = certificate
    else:
        cert = json.loads(Path(certificate).read_text(encoding="utf-8"))
    if report_dir is None and results_dir().is_dir():
        report_dir = results_dir()
    files = pages(
        claims=load_claims(claims_file),
        certificate=cert,
        registry=registry,
        report_dir=report_dir,
        repo=repo_root(),
    )
    return sync_tree(Path(out_dir), files)
