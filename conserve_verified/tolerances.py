r"""One table of per-dtype tolerances, derived from the floating-point model.

Every tolerance used by the library (runtime contracts) and by the tests
(property tests, oracles) comes from :data:`TOLERANCES`; nothing else in the
project picks a tolerance by hand.

Derivation (energy of ``y = conserve(x, E)``)
---------------------------------------------
Let ``u`` be the unit roundoff of the storage dtype (``2**-p`` for ``p``
significand bits) and ``u_acc`` that of the accumulation dtype (float32 for
float16/bfloat16/float32, float64 for float64).  The implementation

1. sums ``x_i**2`` in the accumulation dtype by cascade (pairwise) summation:
   relative error at most ``(ceil(log2 n) + 1) * u_acc`` (Higham, *Accuracy and
   Stability*, §4.2), i.e. at most ``21 u_acc`` for ``n <= 2**20`` features;
2. takes one square root, one division and one multiplication per element in the
   accumulation dtype: at most ``3 u_acc`` more on every output element;
3. rounds each output element once to the storage dtype: relative error ``u``.

So each output element is ``y_i (1 + d_i)`` with ``|d_i| <= u + 13 u_acc``
(half of the summation error enters through the square root), and the energy
``sum y_i**2 (1 + d_i)**2`` has relative error at most ``2 d + d**2``.  We round
the constant up to

    ``energy_rtol = 2 u + u**2 + 32 u_acc``                    (valid for n <= 2**20)

Elements that land in the subnormal range lose relative precision; their
absolute error is at most half the smallest subnormal ``s``, which adds at most
``s * sqrt(n E) + n s**2`` to the absolute energy error (Cauchy-Schwarz).  The
finite-precision theorems in ``proofs/`` bound the fp16 and bf16 error of the
implemented algorithm and check that it sits inside this table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "MAX_FEATURES",
    "TOLERANCES",
    "DtypeTolerance",
    "accumulation_dtype",
    "energy_atol",
    "tolerance",
]

#: The energy tolerance is derived for at most this many features per sample.
MAX_FEATURES = 2**20


@dataclass(frozen=True)
class DtypeTolerance:
    """Tolerances of one floating dtype, all derived from its bit layout.

    Attributes:
        dtype: the storage dtype.
        accumulation: dtype in which reductions are carried out.
        unit_roundoff: ``u = 2**-p`` of the storage dtype.
        accumulation_roundoff: ``u`` of the accumulation dtype.
        smallest_subnormal: spacing of the subnormal range of the storage dtype.
        energy_rtol: ``2u + u**2 + 32 u_acc`` -- relative energy error bound of
            :func:`conserve_verified.conserve` for up to ``MAX_FEATURES`` features.
        function_rtol: relative tolerance for comparing two evaluations of the
            same network that differ by exact symmetries (gauge, sign flips):
            ``64 u`` (a few dozen roundings along a short chain of layers).
    """

    dtype: torch.dtype
    accumulation: torch.dtype
    unit_roundoff: float
    accumulation_roundoff: float
    smallest_subnormal: float
    energy_rtol: float
    function_rtol: float


def _make(dtype: torch.dtype, accumulation: torch.dtype) -> DtypeTolerance:
    info = torch.finfo(dtype)
    u = info.eps / 2.0
    u_acc = torch.finfo(accumulation).eps / 2.0
    return DtypeTolerance(
        dtype=dtype,
        accumulation=accumulation,
        unit_roundoff=u,
        accumulation_roundoff=u_acc,
        smallest_subnormal=float(info.smallest_normal) * info.eps,
        energy_rtol=2.0 * u + u * u + 32.0 * u_acc,
        function_rtol=64.0 * u,
    )


#: The table: one row per supported floating dtype.
TOLERANCES: dict[torch.dtype, DtypeTolerance] = {
    torch.float64: _make(torch.float64, torch.float64),
    torch.float32: _make(torch.float32, torch.float32),
    torch.bfloat16: _make(torch.bfloat16, torch.float32),
    torch.float16: _make(torch.float16, torch.float32),
}


def tolerance(dtype: torch.dtype) -> DtypeTolerance:
    """Row of :data:`TOLERANCES` for ``dtype``; :class:`InvalidArgument` if unsupported."""
    if not isinstance(dtype, torch.dtype):
        raise InvalidArgumentType("dtype", dtype, "a torch.dtype")
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise InvalidArgument(
            "dtype", dtype, f"unsupported; supported dtypes are {sorted(map(str, TOLERANCES))}"
        ) from None


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype in which reductions over ``dtype`` data are carried out."""
    return tolerance(dtype).accumulation


def energy_atol(dtype: torch.dtype, energy: float, n: int) -> float:
    """Absolute bound on ``|energy(conserve(x, energy)) - energy|`` for ``n`` features.

    Identity: ``energy_atol = energy_rtol * E + s * sqrt(n E) + n s**2`` where
    ``s`` is the smallest subnormal of ``dtype`` (see module docstring).
    """
    row = tolerance(dtype)
    s = row.smallest_subnormal
    return row.energy_rtol * energy + s * math.sqrt(n * energy) + n * s * s
