"""Where the documentation's inputs live in a checkout of the repository."""

from __future__ import annotations

from pathlib import Path

__all__ = ["docs_dir", "proofs_dir", "repo_root", "results_dir", "shared_claims_path"]


def repo_root() -> Path:
    """The checkout the package was imported from (the parent of ``conserve_verified/``)."""
    return Path(__file__).resolve().parents[2]


def docs_dir() -> Path:
    """Sphinx sources: ``<repo>/docs``."""
    return repo_root() / "docs"


def proofs_dir() -> Path:
    """Theory files registering the theorems: ``<repo>/proofs``."""
    return repo_root() / "proofs"


def results_dir() -> Path:
    """Default output of ``conserve-verified run``/``report``: ``<repo>/results``."""
    return repo_root() / "results"


def shared_claims_path() -> Path:
    """The project-wide claims file next to the checkout: ``<repo>/../shared/claims.json``."""
    return repo_root().parent / "shared" / "claims.json"
