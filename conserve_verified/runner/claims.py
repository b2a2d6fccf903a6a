"""The papers' claims (``claims.json``, a copy of ``shared/claims.json`` shipped in the package)."""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Any

from ..errors import InvalidArgument

__all__ = ["CLAIMS_PATH", "claim", "claim_ids", "load_claims"]

#: The packaged copy of the claims file.
CLAIMS_PATH = pathlib.Path(__file__).with_name("claims.json")


@functools.lru_cache(maxsize=1)
def _load() -> str:
    return CLAIMS_PATH.read_text(encoding="utf-8")


def load_claims() -> dict[str, Any]:
    """The parsed claims file (a fresh copy each call)."""
    data: dict[str, Any] = json.loads(_load())
    return data


def claim_ids() -> set[str]:
    """Ids of every claim."""
    return {c["id"] for c in load_claims()["claims"]}


def claim(claim_id: str) -> dict[str, Any]:
    """The claim with id ``claim_id``; :class:`InvalidArgument` listing valid ids if none."""
    for c in load_claims()["claims"]:
        if c["id"] == claim_id:
            return dict(c)
    raise InvalidArgument("claim_id", claim_id, f"unknown claim; valid: {sorted(claim_ids())}")
