"""Typed errors of conserve_verified.

Hierarchy::

    ConserveError
    ├── InvalidArgument (ValueError)        bad value: names the argument and its value
    │   └── InvalidArgumentType (TypeError) bad type: names the argument and its type
    └── ConservationViolation (AssertionError)  a runtime contract did not hold

Every message names the offending argument and shows its value, so a user can
tell at a glance which input was wrong.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConservationViolation",
    "ConserveError",
    "InvalidArgument",
    "InvalidArgumentType",
]


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConserveError(Exception):
    """Base class of every error raised by conserve_verified."""


class InvalidArgument(ConserveError, ValueError):
    """An argument has an invalid value.

    ``InvalidArgument("energy", -1.0, "must be > 0")`` renders as
    ``energy=-1.0: must be > 0``.  The argument name and value are kept as
    attributes ``argument`` and ``value``.
    """

    def __init__(self, argument: str, value: Any, reason: str) -> None:
        self.argument = argument
        self.value = value
        self.reason = reason
        super().__init__(f"{argument}={_short(value)}: {reason}")


class InvalidArgumentType(InvalidArgument, TypeError):
    """An argument has the wrong type (also a :class:`TypeError`)."""

    def __init__(self, argument: str, value: Any, expected: str) -> None:
        super().__init__(
            argument,
            value,
            f"expected {expected}, got {type(value).__module__}.{type(value).__qualname__}",
        )


class ConservationViolation(ConserveError, AssertionError):
    """A runtime contract (for example exact energy at a boundary) was violated."""
