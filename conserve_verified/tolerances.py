r"""One table of per-dtype tolerances, derived from the floating-point model.

Every tolerance used by the library (runtime contracts) and by the tests
(property tests, oracles) comes from :data:`TOLERANCES`; nothing else in the
project picks a tolerance by hand.

Derivation (energy of ``y = conserve(x, E)``)
---------------------------------------------
Let ``u`` be the unit roundoff of the storage dtype (``2**-p`` for ``p``
significand bits) and ``u_acc`` that of the accumulation dtype (float32 for
float16/bfloat16/float32, float64 for float64).  The fast path

1. squares in the accumulation dtype (exact for float16/bfloat16 data; one
   rounding each for float32/float64) and sums the squares with ``torch.sum``,
   whose CPU kernel adds in a fixed *cascade* order (vector lanes, a 4-way ILP
   split, a 4-level cascade of 16-term runs, then the lanes one by one; see
   :mod:`conserve_verified.proof.finite`).  Every term goes through at most
   ``h(n)`` roundings, so the relative error of the sum is at most
   ``gamma_h = h u_acc / (1 - h u_acc)`` (Higham, *Accuracy and Stability*,
   Lemma 3.1).  ``h(n)`` is computed from the kernel's order for vector widths
   of 4, 8 and 16 lanes and up to 64 threads (a row of ``>= 32768`` elements
   reduced alone is split into chunks whose sums are added in sequence):
   ``h <= 36`` for ``n <= 1024``, ``<= 53`` for ``n <= 32767``, ``<= 133`` for
   ``n <= 2**20``.  (An earlier version of this table assumed pairwise
   summation, ``ceil(log2 n) + 1`` roundings, which is not the kernel's order.)
2. computes ``rsqrt`` as ``1 / sqrt`` (two roundings), ``r = sqrt(E)`` in
   float64 and rounds it to the accumulation dtype (two roundings), multiplies
   them (one rounding) and multiplies each element (one rounding);
3. rounds each output element once to the storage dtype (``u``; for
   float32/float64 this is the multiply of step 2).

**The one-pass path (``n <= ONE_PASS_MAX_FEATURES``).**  Input with at most
:data:`ONE_PASS_MAX_FEATURES` features per sample takes a path that reads ``x``
once for its norm (``torch.linalg.vector_norm``, whose CPU kernel accumulates
the squares in vector lanes, folds the lanes left to right and adds the tail in
sequence: :func:`conserve_verified.proof.finite.lane_fold`; float16/bfloat16
data are up-converted exactly to float32 one cache-sized block at a time and
the same kernel runs there; where the optional native kernel is built,
float32/bfloat16 rows take it instead, :mod:`conserve_verified._native`, with
the same fold over 16 lanes) and once for ``y = x * (r / ||x||)``, the factor
computed by one division.  Its summation height is
``(n // L - 1) + (L - 1) + n mod L`` for ``L`` lanes (ATen's
``Vectorized<float>`` width: 8 or 16 by build and CPU; 8 for torch 2.13 on the
AVX-512 reference machine, found by ``tests/test_proof_one_pass.py``), at most
``140`` for ``n <= 1024`` and ``1036`` for ``n <= 8192``
(:data:`ONE_PASS_HEIGHTS`); the numerator of the factor has two roundings
(``d_r``, ``d_div``) instead of three.  The squares are rounded once each in
float32 and exact for float16/bfloat16 data, whose outputs take one more
rounding (to the storage dtype) whose cross terms with the sum's error are
larger.  The one-pass rows of the table are therefore, per dtype
(:data:`ONE_PASS_COEFFICIENTS`; theorems ``FP32``, ``FP16``, ``BF16``):

    ========  ==============  ===================
    dtype     ``n <= 1024``   ``1024 < n <= 8192``
    ========  ==============  ===================
    float32   ``c = 148``     ``c = 1044``
    float16   ``c = 149``     ``c = 1046``
    bfloat16  ``c = 150``     ``c = 1053``
    ========  ==============  ===================

(the model's worst cases are 147.0, 1043.1; 148.1, 1045.1; 149.2, 1052.3), which
also dominate the cascade path that the operator falls back to; above 8192
features the cascade path and its rows apply.  The one-pass kernel is faster
(one read instead of a squared temporary and a cascade sum) and its order adds
more roundings per term: its tolerance is what that order guarantees, not the
cascade's.

The energy is ``E m q**2`` with ``q`` the common factor's relative error and
``m`` a weighted mean of the per-element ``(1 + d_i)**2``; its worst case over
the box of the rounding variables is
:func:`conserve_verified.proof.finite.energy_error_bound`, and the
finite-precision theorems ``FP16``/``BF16`` prove it in Z3 from one variable
per operation.  The table rounds it up:

    ``energy_rtol(n) = 2 u + u**2 + c(n) u_acc``, ``c(n) = 48`` for ``n <= 1024``,
    ``72`` for ``n <= 32767``, ``160`` for ``n <= 2**20``

(``tests/test_proof_finite.py`` checks that every ``c(n)`` dominates the
derived bound of every dtype).  ``DtypeTolerance.energy_rtol`` is the value
valid for every ``n <= 2**20`` (the largest ``c`` of the dtype's rows: 160 for
float64, 1044 for float32, 1046 for float16, 1053 for bfloat16);
:func:`energy_atol` uses ``c(n)``.
The wide (float64) path rounds less and stays within the same bound.

Elements that land in the subnormal range lose relative precision; their
absolute error is at most half the smallest subnormal ``s``, which adds at most
``s * sqrt(n E) + n s**2`` to the absolute energy error (Cauchy-Schwarz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "ACCUMULATION_COEFFICIENTS",
    "MAX_FEATURES",
    "ONE_PASS_COEFFICIENTS",
    "ONE_PASS_DTYPES",
    "ONE_PASS_HEIGHTS",
    "ONE_PASS_LANES",
    "ONE_PASS_MAX_FEATURES",
    "SUMMATION_HEIGHTS",
    "TOLERANCES",
    "DtypeTolerance",
    "accumulation_coefficient",
    "accumulation_dtype",
    "energy_atol",
    "energy_rtol_for",
    "one_pass_height",
    "one_pass_height_bound",
    "summation_height_bound",
    "tolerance",
]

#: The energy tolerance is derived for at most this many features per sample.
MAX_FEATURES = 2**20

#: ``(n_max, h)``: for ``n <= n_max`` terms, ``torch.sum`` on CPU rounds each term at
#: most ``h`` times (lanes 4/8/16, up to 64 threads; module docstring, step 1).
SUMMATION_HEIGHTS: tuple[tuple[int, int], ...] = (
    (1024, 36),
    (32767, 53),
    (MAX_FEATURES, 133),
)

#: ``(n_max, c)``: for ``n <= n_max`` features the accumulation term of
#: ``energy_rtol(n)`` is ``c * u_acc`` (first matching row; see the module docstring).
ACCUMULATION_COEFFICIENTS: tuple[tuple[int, int], ...] = (
    (1024, 48),
    (32767, 72),
    (MAX_FEATURES, 160),
)

#: Longest sample (features) that takes the one-pass kernel; longer ones take the cascade.
ONE_PASS_MAX_FEATURES = 8192

#: Float lanes of ATen's ``Vectorized<float>`` covered (8 or 16, by build and CPU; the
#: tests find which one explains the installed torch's norm kernel).
ONE_PASS_LANES: tuple[int, ...] = (8, 16)

#: ``(n_max, h)``: for ``n <= n_max`` the one-pass norm kernel adds each square at most
#: ``h`` times (``max_lane_fold_height`` over :data:`ONE_PASS_LANES`).
ONE_PASS_HEIGHTS: tuple[tuple[int, int], ...] = (
    (1024, 140),
    (ONE_PASS_MAX_FEATURES, 1036),
)

#: ``(n_max, c)`` per dtype: the accumulation coefficient for ``n <= n_max`` features on
#: the one-pass path, the one-pass model's bound (theorems ``FP32``/``FP16``/``BF16``)
#: rounded up; it dominates the cascade rows at these lengths.
ONE_PASS_COEFFICIENTS: dict[torch.dtype, tuple[tuple[int, int], ...]] = {
    torch.float32: ((1024, 148), (ONE_PASS_MAX_FEATURES, 1044)),
    torch.float16: ((1024, 149), (ONE_PASS_MAX_FEATURES, 1046)),
    torch.bfloat16: ((1024, 150), (ONE_PASS_MAX_FEATURES, 1053)),
}

#: Dtypes whose CPU fast path is the one-pass kernel for ``n <= ONE_PASS_MAX_FEATURES``.
ONE_PASS_DTYPES: tuple[torch.dtype, ...] = tuple(ONE_PASS_COEFFICIENTS)


@dataclass(frozen=True)
class DtypeTolerance:
    """Tolerances of one floating dtype, all derived from its bit layout.

    Attributes:
        dtype: the storage dtype.
        accumulation: dtype in which reductions are carried out.
        unit_roundoff: ``u = 2**-p`` of the storage dtype.
        accumulation_roundoff: ``u`` of the accumulation dtype.
        smallest_subnormal: spacing of the subnormal range of the storage dtype.
        energy_rtol: ``2u + u**2 + c u_acc`` with the largest ``c`` of the dtype's
            rows (160; float32 1044, float16 1046, bfloat16 1053) -- relative energy
            error bound of
            :func:`conserve_verified.conserve` for every ``n <= MAX_FEATURES``
            features (:func:`energy_rtol_for` gives the tighter value for a given ``n``).
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


def _max_coefficient(dtype: torch.dtype) -> int:
    rows = ACCUMULATION_COEFFICIENTS + ONE_PASS_COEFFICIENTS.get(dtype, ())
    return max(c for _, c in rows)


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
        energy_rtol=2.0 * u + u * u + _max_coefficient(dtype) * u_acc,
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


def energy_rtol_for(dtype: torch.dtype, n: int) -> float:
    """Relative energy error bound for ``n`` features: ``2u + u**2 + c(n) u_acc``.

    Identity: ``energy_rtol_for(dtype, n) <= tolerance(dtype).energy_rtol`` for
    every ``1 <= n <= MAX_FEATURES``, with equality for ``n > 32767`` (float64) or
    ``1024 < n <= 8192`` (the one-pass dtypes).
    """
    row = tolerance(dtype)
    u, u_acc = row.unit_roundoff, row.accumulation_roundoff
    return 2.0 * u + u * u + accumulation_coefficient(dtype, n) * u_acc


def accumulation_coefficient(dtype: torch.dtype, n: int) -> int:
    """``c(n)`` of ``energy_rtol_for``: the dtype's one-pass row up to 8192 features.

    Identity: the cascade row of :data:`ACCUMULATION_COEFFICIENTS`, or for a
    dtype of :data:`ONE_PASS_DTYPES` with ``n <= ONE_PASS_MAX_FEATURES`` its row
    of :data:`ONE_PASS_COEFFICIENTS` (which is the larger of the two there).
    """
    cascade = _row(ACCUMULATION_COEFFICIENTS, n, "the energy tolerance is derived for")
    if dtype in ONE_PASS_DTYPES and n <= ONE_PASS_MAX_FEATURES:
        return _row(ONE_PASS_COEFFICIENTS[dtype], n, "the one-pass tolerance is derived for")
    return cascade


def _row(table: tuple[tuple[int, int], ...], n: int, what: str) -> int:
    """The value of the first ``(n_max, value)`` row of ``table`` with ``n <= n_max``.

    Raises a typed error naming ``n`` unless it is an int in ``[1, table[-1][0]]``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidArgumentType("n", n, "an int")
    if not 1 <= n <= table[-1][0]:
        raise InvalidArgument("n", n, f"{what} 1 <= n <= {table[-1][0]} features")
    return next(value for n_max, value in table if n <= n_max)


def energy_atol(dtype: torch.dtype, energy: float, n: int) -> float:
    """Absolute bound on ``|energy(conserve(x, energy)) - energy|`` for ``n`` features.

    Identity: ``energy_atol = energy_rtol_for(dtype, n) * E + s * sqrt(n E) + n s**2``
    where ``s`` is the smallest subnormal of ``dtype`` (see module docstring).
    """
    row = tolerance(dtype)
    s = row.smallest_subnormal
    return energy_rtol_for(dtype, n) * energy + s * math.sqrt(n * energy) + n * s * s


def summation_height_bound(n: int) -> int:
    """Most roundings any term takes in a CPU ``torch.sum`` of ``n <= MAX_FEATURES`` terms.

    Identity: ``>= conserve_verified.proof.finite.summation_height(n, lanes, 64)`` for
    lanes 4, 8 and 16 (checked in ``tests/test_proof_finite.py``).
    """
    return _row(SUMMATION_HEIGHTS, n, "the summation height is derived for")


def one_pass_height(n: int) -> int:
    """Most additions any square takes in the one-pass norm kernel for exactly ``n`` terms.

    Identity: ``== max(conserve_verified.proof.finite.lane_fold_height(n, lanes))`` over
    :data:`ONE_PASS_LANES`, i.e. ``n - 1`` below one vector, else
    ``n // L + L - 2 + n mod L``; at most :func:`one_pass_height_bound` (checked in
    ``tests/test_proof_one_pass.py``).  The runtime check's screen uses it for the
    length it measures.
    """
    _row(ONE_PASS_HEIGHTS, n, "the one-pass height is derived for")
    return max(
        n - 1 if n < lanes else n // lanes + lanes - 2 + n % lanes for lanes in ONE_PASS_LANES
    )


def one_pass_height_bound(n: int) -> int:
    """Most additions any square takes in the one-pass norm kernel for ``n <= 8192`` terms.

    Identity: ``>= conserve_verified.proof.finite.max_lane_fold_height(n, lanes)`` for
    lanes 8 and 16 (checked in ``tests/test_proof_finite.py``).
    """
    return _row(ONE_PASS_HEIGHTS, n, "the one-pass height is derived for")
