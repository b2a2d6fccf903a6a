"""Typed errors of conserve_verified.

Hierarchy::

    ConserveError
    ├── InvalidArgument (ValueError)        bad value: names the argument and its value
    │   └── InvalidArgumentType (TypeError) bad type: names the argument and its type
    └── ConservationViolation (AssertionError)  a runtime contract did not hold

Every message names the offending argument and shows its value, so a user can
tell at a glance which input was wrong; tensors and arrays (of any dtype) are
shown in one summary style (:func:`summary`), never as a full ``repr``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

__all__ = [
    "ConservationViolation",
    "ConserveError",
    "InvalidArgument",
    "InvalidArgumentType",
    "check_int",
    "summary",
]


def summary(value: Any) -> str:
    """One-line description of a tensor or array, the same style for every kind.

    Identity: ``summary(torch.zeros(2, 3)) == "<torch.float32 tensor of shape (2, 3)>"``;
    numpy arrays read ``"<numpy.int64 array of shape (4,)>"``; a one-element
    tensor or array also shows its value (``"<torch.int64 tensor of shape () = 7>"``).
    Anything else: its ``repr``.
    """
    kind = _array_kind(value)
    if kind is None:
        return repr(value)
    lib, dtype, shape = kind
    noun = "tensor" if lib == "torch" else "array"
    text = f"<{dtype} {noun} of shape {shape}"
    try:
        if math.prod(shape) == 1:
            text += f" = {value.reshape(-1)[0].item()!r}"
    except Exception:  # a meta tensor or an exotic array has no value to show
        pass
    return text + ">"


def _array_kind(value: Any) -> tuple[str, str, tuple[int, ...]] | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return "torch", str(value.dtype), tuple(int(s) for s in value.shape)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return "numpy", f"numpy.{value.dtype}", tuple(int(s) for s in value.shape)
    return None


def _short(value: Any, limit: int = 120) -> str:
    """The value as shown in a message: a :func:`summary` for tensors and arrays.

    Other values show their ``repr``, shortened at a word boundary past ``limit``
    characters (a ``str`` that is already a summary, ``"<... of shape ...>"``,
    shows without quotes).
    """
    if _array_kind(value) is not None:
        return summary(value)
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        return value
    text = repr(value)
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = max(cut.rfind(" "), cut.rfind(","))
    if space > limit // 2:
        cut = cut[: space + 1].rstrip()
    return f"{cut}... ({len(text)} characters)"


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


def check_int(argument: str, value: Any, low: int = 1, *, none: bool = False) -> Any:
    """``value`` when it is an ``int`` (not a ``bool``) ``>= low`` (or ``None`` with
    ``none=True``); else :class:`InvalidArgument` naming ``argument`` and the value.

    Identity: ``check_int(a, v, low) == v`` for every int ``v >= low``.
    """
    if none and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgument(
            argument, value, f"must be an int >= {low}" + (" or None" if none else "")
        )
    return value
