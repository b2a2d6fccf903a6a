"""Runtime contracts: ``check_*`` returns ``(ok, reason)``, ``assert_*`` raises.

The mode is read from the environment variable ``CONSERVE_CHECKS``:

``raise`` (default)
    a violated contract raises :class:`~conserve_verified.errors.ConservationViolation`.
``warn``
    a violated contract emits a :class:`ContractWarning` and execution goes on.
``off``
    contracts are skipped entirely: no extra pass over memory, no host sync.

Cost when on: one reduction over each checked tensor and one host
synchronisation per check.  The energy check's verdict is the float64 one: a
float32 screen with a proven measurement bound accepts a sample only when its
float64 energy is provably within tolerance, and anything undecided is
measured again in float64 (:func:`check_energy`); see the pipeline benchmark
(checks on vs off) for measured numbers.  The mode can also be set for a block
of code with :func:`checks`.

Under :func:`torch.compile` (``fullgraph=True`` works) :func:`assert_energy` is
an opaque custom op that reads the mode when the compiled code runs, so
compiled graphs keep their checks and have no graph break.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Literal

import torch

from .errors import ConservationViolation, InvalidArgument
from .tolerances import tolerance

__all__ = [
    "CheckMode",
    "ContractWarning",
    "assert_energy",
    "assert_finite",
    "check_energy",
    "check_finite",
    "checks",
    "get_mode",
    "set_mode",
]

CheckMode = Literal["raise", "warn", "off"]
_MODES: tuple[CheckMode, ...] = ("raise", "warn", "off")
_override: CheckMode | None = None


class ContractWarning(UserWarning):
    """Emitted for a violated contract when ``CONSERVE_CHECKS=warn``."""


def _parse(value: str, source: str) -> CheckMode:
    mode = value.strip().lower()
    if mode not in _MODES:
        raise InvalidArgument(source, value, f"must be one of {_MODES}")
    return mode


def get_mode() -> CheckMode:
    """Current mode: the :func:`checks` override, else ``$CONSERVE_CHECKS``, else ``raise``."""
    if _override is not None:
        return _override
    return _parse(os.environ.get("CONSERVE_CHECKS", "raise"), "CONSERVE_CHECKS")


def set_mode(mode: CheckMode | None) -> None:
    """Set (or with ``None`` clear) the process-wide override of ``CONSERVE_CHECKS``."""
    global _override
    _override = None if mode is None else _parse(str(mode), "mode")


@contextlib.contextmanager
def checks(mode: CheckMode) -> Iterator[None]:
    """Context manager running its block under contract mode ``mode``."""
    global _override
    previous = _override
    set_mode(mode)
    try:
        yield
    finally:
        _override = previous


def _report(ok: bool, reason: str) -> None:
    if ok:
        return
    mode = get_mode()
    if mode == "raise":
        raise ConservationViolation(reason)
    if mode == "warn":
        warnings.warn(reason, ContractWarning, stacklevel=3)


def check_finite(x: torch.Tensor, name: str = "x") -> tuple[bool, str]:
    """``(True, "")`` if every element of ``x`` is finite, else ``(False, reason)``."""
    bad = ~torch.isfinite(x)
    if not bool(bad.any()):
        return True, ""
    pos = tuple(int(i) for i in bad.nonzero()[0].tolist())
    return False, f"{name} contains {x[pos].item()} at index {pos}"


def assert_finite(x: torch.Tensor, name: str = "x") -> None:
    """Contract form of :func:`check_finite` (honours ``CONSERVE_CHECKS``)."""
    if get_mode() != "off":
        _report(*check_finite(x, name))


def check_energy(
    y: torch.Tensor, energy: float, dim: int | Sequence[int] = -1, name: str = "y"
) -> tuple[bool, str]:
    """Check ``|energy(y) - E| <= energy_atol(dtype, E, n)`` for every sample of ``y``.

    The verdict is that of the float64 energy of ``y``'s stored values, so a
    reported violation comes from the producer of ``y``, not from the check.
    Cheap screen first (CPU, float16/bfloat16/float32, trailing feature dims):
    each sample's energy is summed in float32 (:func:`_fused.sum_squares`) and
    passes if it is inside the tolerance with its proven measurement error
    (:func:`_screen_passes`); only if some sample does not pass is every
    sample measured again in float64 and decided there.
    """
    from ._math import feature_count, normalize_dims  # local: avoid an import cycle
    from .tolerances import energy_atol

    dims = normalize_dims(y, dim)
    tolerance(y.dtype)
    if y.numel() == 0:
        return True, ""
    n = feature_count(y, dims)
    atol = energy_atol(y.dtype, float(energy), n)
    if _screen_passes(y.detach(), float(energy), dims, n, atol):
        return True, ""
    # One pass: the float64 norm of each sample (input up-converted as it is read;
    # float64 rounding is far below any tolerance of the table), squared.
    measured = torch.linalg.vector_norm(y.detach(), 2, dims, dtype=torch.float64).square()
    err = (measured - float(energy)).abs()
    if float(err.max()) <= atol:  # NaN propagates through max and compares False
        return True, ""
    worst = int(err.argmax())
    worst_err = float(err.flatten()[worst])
    return False, (
        f"{name}: energy {float(measured.flatten()[worst])!r} of sample {worst} differs from "
        f"E={float(energy)!r} by {worst_err:.3e} > tolerance {atol:.3e} ({y.dtype})"
    )


_SCREENED = (torch.float16, torch.bfloat16, torch.float32)


def _screen_passes(
    y: torch.Tensor, energy: float, dims: tuple[int, ...], n: int, atol: float
) -> bool:
    """True only if every sample's float64 energy provably satisfies ``|energy - E| <= atol``.

    ``s32`` = the float32 sum of the squares of a sample's stored values (exact
    squares for float16/bfloat16 data, one rounding each for float32), summed
    by ``torch.sum`` with at most ``h = summation_height_bound(n)`` roundings per
    term: ``|s32 - S| <= gamma_{h+1} S + n 2**-149`` (squares below float32's
    normal range flush with an absolute error ``<= 2**-150`` each), so
    ``|s32 - E| <= atol - gamma_{h+1} s32 / (1 - gamma_{h+1}) - n 2**-149``
    (minus a float64 margin) implies ``|S - E| <= atol``.  Samples of at most
    ``ONE_PASS_MAX_FEATURES`` features are measured by the one-pass norm instead:
    ``s32 = nrm**2`` (in float64) with ``nrm`` the one-pass norm kernel's result
    (:func:`_fused.one_pass_norm`; float16/bfloat16 up-converted exactly, block by
    block), ``nrm = sqrt(S (1 + theta))(1 + d_sqrt)`` with ``|theta| <= gamma_{h1+1}``
    (``gamma_{h1}`` for the exact squares of float16/bfloat16 data),
    ``h1 = one_pass_height(n)`` (the kernel's height for exactly ``n`` terms, over
    its lane widths), so ``|s32 - S| <= gamma_{h1+3} S`` and the same test holds
    with ``h = h1 + 2``.  Where the native kernel is built (float32/bfloat16),
    the sums are taken in float64 in one read instead
    (:mod:`conserve_verified._native` ``energies``: exact squares, at most
    ``n - 1`` roundings of ``2**-53``), so ``|s - S| <= gamma_n(2**-53) S`` and
    the screen decides every sample the float64 measurement would.
    Returns ``False`` (undecided: measure in float64) for other layouts and
    dtypes, NaN or Inf.
    """
    from . import _fused, _native  # local: the operator's kernel modules
    from .tolerances import one_pass_height, summation_height_bound

    shape = _fused.rows_view(y, dims)
    if (
        y.dtype not in _SCREENED
        or y.device.type != "cpu"
        or shape is None
        or not _fused.is_enabled()
    ):
        return False
    rows, _ = shape
    native = _native.kernel_for(y.dtype)
    if native is not None:
        s32 = native.energies(y.view(rows, n))
        h, ua = n, 2.0**-53
    elif _fused.one_pass(y.dtype, n):
        s32 = _fused.one_pass_norm(y.view(rows, n)).double().square_()
        h, ua = one_pass_height(n) + 3, 2.0**-24
    else:
        s32 = _fused.sum_squares(y.view(rows, n)).double()
        h, ua = summation_height_bound(n) + 1, 2.0**-24
    g = h * ua / (1 - h * ua)
    # |s32 - E| <= atol - (g / (1 - g) + 2**-50) s32 - n 2**-149 - 2**-50 E for every
    # sample, as one maximum: max(|s32 - E| + k s32) <= atol - n 2**-149 - 2**-50 E.
    worst = (s32 - energy).abs_().add_(s32, alpha=g / (1 - g) + 2.0**-50).max()
    return float(worst) <= atol - n * 2.0**-149 - 2.0**-50 * energy  # NaN/Inf compare False


def assert_energy(
    y: torch.Tensor, energy: float, dim: int | Sequence[int] = -1, name: str = "y"
) -> None:
    """Contract form of :func:`check_energy` (honours ``CONSERVE_CHECKS``).

    Under :func:`torch.compile` the check is one opaque custom op
    (``conserve_verified::assert_energy``, marked as having a side effect so it
    is never eliminated) that reads the mode and runs :func:`check_energy` at
    run time: no graph break, the same float64 measurement, the same
    :class:`ConservationViolation` or :class:`ContractWarning`.
    """
    if torch.compiler.is_compiling():
        from ._math import normalize_dims  # local: avoid an import cycle

        _assert_energy_op(y, float(energy), list(normalize_dims(y, dim)), name)
        return
    if get_mode() != "off":
        _report(*check_energy(y, energy, dim, name))


@torch.library.custom_op("conserve_verified::assert_energy", mutates_args=())
def _assert_energy_op(y: torch.Tensor, energy: float, dims: list[int], name: str) -> None:
    """Run-time :func:`assert_energy` (mode read when the compiled code runs)."""
    if get_mode() != "off":
        _report(*check_energy(y, energy, tuple(dims), name))


@_assert_energy_op.register_fake
def _assert_energy_op_fake(y: torch.Tensor, energy: float, dims: list[int], name: str) -> None:
    return None


torch.fx.node.has_side_effect(torch.ops.conserve_verified.assert_energy.default)
