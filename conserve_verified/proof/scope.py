"""The scope of a theorem: what its proof covers.

A theorem is either

* ``general`` -- proved for every dimension, width, depth or length its
  statement quantifies over (the ``detail`` says which, e.g. ``"every
  dimension n >= 1"``); or
* ``instance`` -- proved for the instance named in ``detail`` only (e.g.
  ``"f = w1 w2"``, ``"float16, lengths 1 and 2 exhaustively"``).  An instance is
  evidence for the general statement, not a proof of it.

Identity: a statement may say "every" or "all" only if its scope is general
(:func:`check_statement_scope`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument, InvalidArgumentType

__all__ = ["GENERAL", "INSTANCE", "Scope", "check_statement_scope", "general", "instance"]

GENERAL = "general"
INSTANCE = "instance"

_QUANTIFIER = re.compile(r"\b(every|all)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Scope:
    """What a proof covers: ``kind`` is ``"general"`` or ``"instance"``; ``detail`` says what."""

    kind: str
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in (GENERAL, INSTANCE):
            raise InvalidArgument("kind", self.kind, "must be 'general' or 'instance'")
        if not isinstance(self.detail, str):
            raise InvalidArgumentType("detail", self.detail, "a string")
        if not self.detail.strip():
            raise InvalidArgument("detail", self.detail, "must say what the proof covers")

    @property
    def is_general(self) -> bool:
        """True for a general scope."""
        return self.kind == GENERAL

    def label(self) -> str:
        """``"general: every dimension n"`` / ``"instance: f = w1 w2"``."""
        return f"{self.kind}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        """JSON form (certificate)."""
        return {"kind": self.kind, "detail": self.detail}


def general(detail: str) -> Scope:
    """A general scope; ``detail`` names what the statement quantifies over."""
    return Scope(GENERAL, detail)


def instance(detail: str) -> Scope:
    """An instance scope; ``detail`` names the instance."""
    return Scope(INSTANCE, detail)


def check_statement_scope(statement: str, scope: Scope) -> None:
    """Raise :class:`InvalidArgument` if ``statement`` says "every"/"all" with an instance scope."""
    if not scope.is_general:
        match = _QUANTIFIER.search(statement)
        if match is not None:
            raise InvalidArgument(
                "scope",
                scope.label(),
                f"the statement says {match.group(0)!r}, which needs a general scope; "
                "reword the statement to name the instance or prove it in general",
            )
