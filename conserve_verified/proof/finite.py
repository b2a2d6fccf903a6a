r"""Finite-precision checkers: summation trees, their rounding budgets, and enumerations.

Three pieces, all free of torch (the implementation under test is passed in by
the theory file as a callable):

**The summation tree of torch's CPU sum.**  ``torch.sum`` over a contiguous
last dim of float32/float64 data (``aten/src/ATen/native/cpu/SumKernel.cpp``:
``cascade_sum`` -> ``vectorized_inner_sum`` -> ``row_sum`` -> ``multi_row_sum``)
adds in a fixed order: the row is read as vectors of ``lanes`` elements; each
lane is summed over the vectors by a 4-accumulator "ILP" split whose parts are
each summed by a 4-level cascade (levels of ``2**max(4, ceil(log2 M) // 4)``
sequential additions); the tail vectors and the ILP parts are then added in
sequence, the scalar tail is summed in sequence and the lanes are added to it
one by one.  :func:`cascade_fold` evaluates exactly that order for any
``add``; with float32 addition it reproduces ``torch.sum`` bit for bit
(``tests/test_proof_finite.py`` checks this against the installed torch), and
with ``add = max + 1`` it gives the tree *height*: the largest number of
roundings any term goes through.  An addition into a structurally zero
accumulator is exact and not counted.

**Rounding budgets.**  For a sum of ``n >= 0`` terms evaluated by a tree of
height ``h`` the computed sum is ``sum x_i (1 + theta_i)`` with
``|theta_i| <= gamma_h = h u / (1 - h u)`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., Lemma 3.1 and Section 4.2); for non-negative
terms (squares) the relative error of the sum is at most ``gamma_h``.
:func:`max_cascade_height` is the largest height over every length
``1 <= n <= n_max`` (each length's tree is a different tree), and
:func:`summation_height` adds the sequential combination of the chunks when
torch splits one row's reduction across threads (it does so only for a
single-output reduction of at least ``GRAIN_SIZE`` elements).

**Enumeration.**  :func:`enumeration_claim` turns a stream of evaluated input
batches into a claim: every measured error must lie within ``bound(E, n)``
(minus a stated measurement slack); the worst ratio is reported, and a
violation is a counterexample that is re-checked by running the
implementation on that one input alone (exact rational arithmetic in the
re-check, supplied by the theory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from ..errors import InvalidArgument, InvalidArgumentType
from ._verdict import Status, Verdict
from .claims import Custom, custom

__all__ = [
    "GRAIN_SIZE",
    "Batch",
    "cascade_fold",
    "cascade_height",
    "decode_row",
    "encode_row",
    "energy_error_bound",
    "energy_error_line",
    "enumeration_claim",
    "gamma",
    "lane_fold",
    "lane_fold_height",
    "lane_fold_norms",
    "max_cascade_height",
    "max_lane_fold_height",
    "summation_height",
]

T = TypeVar("T")

#: ``at::internal::GRAIN_SIZE``: below this many elements a reduction runs on one thread.
GRAIN_SIZE = 32768

_LEVELS = 4  # multi_row_sum: num_levels
_ILP = 4  # row_sum: ilp_factor


def _check_count(argument: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(argument, value, "an int")
    if value < minimum:
        raise InvalidArgument(argument, value, f"must be >= {minimum}")
    return value


def _ceil_log2(x: int) -> int:
    return 0 if x <= 1 else (x - 1).bit_length()


def _level_power(m: int) -> int:
    return max(4, _ceil_log2(m) // _LEVELS)


def _add(add: Callable[[T, T], T], a: T | None, b: T | None) -> T | None:
    """``a + b`` where ``None`` is a structural zero (adding it is exact, no rounding)."""
    if a is None:
        return b
    if b is None:
        return a
    return add(a, b)


def _multi_row_sum(items: Sequence[T], add: Callable[[T, T], T]) -> T | None:
    """``multi_row_sum`` of SumKernel.cpp for one row: the 4-level cascade over ``items``."""
    m = len(items)
    power = _level_power(m)
    step = 1 << power
    mask = step - 1
    acc: list[T | None] = [None] * _LEVELS
    i = 0
    while i + step <= m:
        for _ in range(step):
            acc[0] = _add(add, acc[0], items[i])
            i += 1
        for j in range(1, _LEVELS):
            acc[j] = _add(add, acc[j], acc[j - 1])
            acc[j - 1] = None
            if i & (mask << (j * power)):
                break
    while i < m:
        acc[0] = _add(add, acc[0], items[i])
        i += 1
    for j in range(1, _LEVELS):
        acc[0] = _add(add, acc[0], acc[j])
    return acc[0]


def cascade_fold(
    n: int, lanes: int, leaf: Callable[[int], T], add: Callable[[T, T], T]
) -> T | None:
    """Evaluate the sum of ``leaf(0), ..., leaf(n-1)`` in torch's CPU ``sum`` order.

    Identity: with ``leaf(i) = float32(x[i])`` and float32 ``add`` the result is
    ``torch.sum(x)`` of a contiguous float32 row, bitwise, on a build whose
    float vectors hold ``lanes`` elements (single thread); with
    ``leaf = 0`` and ``add = max + 1`` it is the tree height.  ``None`` for ``n = 0``.
    """
    _check_count("n", n, 0)
    _check_count("lanes", lanes, 1)
    if n < lanes:  # scalar path: a running sum
        total: T | None = None
        for i in range(n):
            total = _add(add, total, leaf(i))
        return total
    vectors = n // lanes

    def lane_sum(k: int) -> T | None:
        m = vectors // _ILP
        parts = [
            _multi_row_sum([leaf((_ILP * i + j) * lanes + k) for i in range(m)], add)
            for j in range(_ILP)
        ]
        p0 = parts[0]
        for i in range(_ILP * m, vectors):
            p0 = _add(add, p0, leaf(i * lanes + k))
        for j in range(1, _ILP):
            p0 = _add(add, p0, parts[j])
        return p0

    final: T | None = None
    for i in range(vectors * lanes, n):
        final = _add(add, final, leaf(i))
    for k in range(lanes):
        final = _add(add, final, lane_sum(k))
    return final


def _height_add(a: int, b: int) -> int:
    return max(a, b) + 1


def _chain(start: int | None, times: int, item: int | None) -> int | None:
    """Height after adding a term of height ``item`` to an accumulator ``times`` times.

    Identity: equals applying ``_add(max + 1, acc, item)`` ``times`` times to ``start``
    (``None`` is a structural zero).
    """
    if item is None or times == 0:
        return start
    if start is None:
        return item + times - 1
    return max(start, item) + times


def _height_from_parts(mrs: int | None, r4: int, tail: int, lanes: int) -> int:
    """Height of the tree for ``n = lanes (4 M + r4) + tail`` given the cascade height of ``M``."""
    p0 = _chain(mrs, r4, 0)
    p0 = _chain(p0, _ILP - 1, mrs)
    final = _chain(None, tail, 0)
    final = _chain(final, lanes, p0)
    return 0 if final is None else final


def cascade_height(n: int, lanes: int) -> int:
    """Largest number of roundings a term goes through in torch's CPU sum of ``n`` terms.

    Identity: ``cascade_height(n, lanes) == cascade_fold(n, lanes, lambda i: 0, max + 1)``
    (0 for ``n <= 1``), computed in ``O(n / lanes)`` steps.
    """
    _check_count("n", n, 0)
    _check_count("lanes", lanes, 1)
    if n < lanes:
        return max(n - 1, 0)
    vectors = n // lanes
    m = vectors // _ILP
    mrs = _multi_row_sum([0] * m, _height_add)
    return _height_from_parts(mrs, vectors - _ILP * m, n - vectors * lanes, lanes)


def _mrs_heights(m_max: int) -> list[int | None]:
    """Heights of ``_multi_row_sum`` over ``M`` items for ``M = 0..m_max`` (``O(m_max)``)."""
    out: list[int | None] = [None] * (m_max + 1)
    by_power: dict[int, list[int]] = {}
    for m in range(m_max + 1):
        by_power.setdefault(_level_power(m), []).append(m)
    for power, ms in by_power.items():
        step = 1 << power
        mask = step - 1
        acc: list[int | None] = [None] * _LEVELS
        groups_done = 0
        for m in ms:  # increasing
            while (groups_done + 1) * step <= m:  # advance the loop state by one full group
                acc[0] = _chain(acc[0], step, 0)
                groups_done += 1
                i = groups_done * step
                for j in range(1, _LEVELS):
                    acc[j] = _add(_height_add, acc[j], acc[j - 1])
                    acc[j - 1] = None
                    if i & (mask << (j * power)):
                        break
            fin = _chain(acc[0], m - groups_done * step, 0)
            for j in range(1, _LEVELS):
                fin = _add(_height_add, fin, acc[j])
            out[m] = fin
    return out


@lru_cache(maxsize=64)
def max_cascade_height(n_max: int, lanes: int) -> int:
    """``max(cascade_height(n, lanes) for n in 1..n_max)``, without building each tree.

    Uses that, for fixed ``M = (n // lanes) // 4``, the height is non-decreasing
    in the scalar tail ``n mod lanes`` (every tail term adds one addition
    before the lanes are combined); ``tests/test_proof_finite.py`` checks the
    result against the brute-force maximum.
    """
    _check_count("n_max", n_max, 1)
    _check_count("lanes", lanes, 1)
    best = max(min(n_max, lanes - 1) - 1, 0)
    if n_max < lanes:
        return best
    vectors_max = n_max // lanes
    mrs = _mrs_heights(vectors_max // _ILP)
    for m, h in enumerate(mrs):
        for r4 in range(_ILP):
            vectors = _ILP * m + r4
            if vectors == 0 or vectors > vectors_max:
                continue
            tail = min(lanes - 1, n_max - vectors * lanes)
            best = max(best, _height_from_parts(h, r4, tail, lanes))
    return best


def summation_height(n_max: int, lanes: int, threads: int) -> int:
    """Height bound of one row's ``torch.sum``: every length ``<= n_max``, ``<= threads`` threads.

    Identity: ``max_cascade_height(n_max, lanes) + (threads - 1 if n_max >= GRAIN_SIZE else 0)``:
    a single-output reduction of at least ``GRAIN_SIZE`` elements is split into at most
    ``threads`` contiguous chunks, each summed in the cascade order (length ``<= n_max``),
    and the chunk sums are added in sequence.
    """
    _check_count("threads", threads, 1)
    split = threads - 1 if n_max >= GRAIN_SIZE else 0
    return max_cascade_height(n_max, lanes) + split


# --------------------------------------------------------------------------- one-pass norm order


def lane_fold(
    n: int,
    lanes: int,
    leaf: Callable[[int], T],
    add: Callable[[T, T], T],
    tail_add: Callable[[int, T | None], T] | None = None,
) -> T | None:
    """Evaluate ``sum leaf(i)`` in the order of torch's CPU one-pass 2-norm kernel.

    ``torch.linalg.vector_norm(x, 2, dim=-1)`` of a contiguous float32 row
    (``ReduceOpsKernel.cpp``, ``norm_kernel_tensor_iterator_impl`` ->
    ``binary_kernel_reduce_lastdim``; each row is reduced whole by one thread)
    accumulates the squares of the first ``lanes * (n // lanes)`` elements in
    ``lanes`` vector lanes (element ``i`` into lane ``i mod lanes``), folds the
    lanes left to right into lane 0, then adds the ``n mod lanes`` tail elements
    one by one and takes ``sqrt``.  ``tail_add(i, acc)`` adds tail element ``i``
    (default ``add(acc, leaf(i))``; the compiled kernel fuses some tail steps
    into one ``fma``, which the caller can model here).

    Identity: with ``leaf(i) = float32(x[i])**2`` (rounded), float32 ``add`` and
    each tail step either ``float32(acc + x[i]**2)`` (fused) or
    ``float32(acc + float32(x[i]**2))``, ``sqrt`` of the result is the kernel's
    output bitwise (``tests/test_proof_finite.py`` checks this against the
    installed torch); with ``leaf = 0`` and ``add = max + 1`` it is the height.
    ``None`` for ``n = 0``.
    """
    _check_count("n", n, 0)
    _check_count("lanes", lanes, 1)
    vectors = n // lanes
    total: T | None = None
    if vectors:
        acc: list[T | None] = [None] * lanes
        for v in range(vectors):
            for j in range(lanes):
                acc[j] = _add(add, acc[j], leaf(v * lanes + j))
        for j in range(lanes):
            total = _add(add, total, acc[j])
    for i in range(vectors * lanes, n):
        total = tail_add(i, total) if tail_add is not None else _add(add, total, leaf(i))
    return total


def lane_fold_norms(rows: np.ndarray, lanes: int) -> np.ndarray:
    """Float32 norms of the rows of ``rows`` (``(m, n)``) summed in the :func:`lane_fold` order.

    Identity: ``out[i] == float32(sqrt(lane_fold(n, lanes, leaf, add)))`` with
    ``leaf(j) = float32(rows[i, j]**2)`` and float32 ``add`` (every tail step
    unfused) -- the native kernel's norm for ``lanes = 16``; vectorised over
    the rows (one float32 operation per lane step).
    """
    a = np.asarray(rows, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] == 0:
        raise InvalidArgument("rows", f"<array of shape {a.shape}>", "must be (m, n) with n >= 1")
    _check_count("lanes", lanes, 1)
    sq = a * a
    n = a.shape[1]
    vectors = n // lanes
    total: np.ndarray | None = None
    if vectors:
        acc = sq[:, :lanes].copy()
        for v in range(1, vectors):
            acc += sq[:, v * lanes : (v + 1) * lanes]
        total = acc[:, 0].copy()
        for j in range(1, lanes):
            total += acc[:, j]
    for i in range(vectors * lanes, n):
        total = sq[:, i].copy() if total is None else total + sq[:, i]
    assert total is not None
    return np.sqrt(total)


def lane_fold_height(n: int, lanes: int) -> int:
    """Largest number of additions a term goes through in :func:`lane_fold` of ``n`` terms.

    Identity: ``lane_fold_height(n, lanes) == lane_fold(n, lanes, lambda i: 0, max + 1)``
    (0 for ``n <= 1``): ``n - 1`` below one vector, else ``(n // lanes - 1) +
    (lanes - 1) + n mod lanes`` (lane 0's first term: its lane, the fold, the tail).
    """
    _check_count("n", n, 0)
    _check_count("lanes", lanes, 1)
    if n < lanes:
        return max(n - 1, 0)
    return n // lanes + lanes - 2 + n % lanes


def max_lane_fold_height(n_max: int, lanes: int) -> int:
    """``max(lane_fold_height(n, lanes) for n in 1..n_max)`` in closed form.

    The height grows with ``n // lanes`` and with the tail ``n mod lanes``, so the
    maximum is at ``n_max`` or at the largest ``n <= n_max`` with a full tail
    (``n mod lanes == lanes - 1``); below one vector it is ``n - 1``.
    ``tests/test_proof_finite.py`` checks it against the brute-force maximum.
    """
    _check_count("n_max", n_max, 1)
    _check_count("lanes", lanes, 1)
    candidates = [n_max, min(n_max, lanes - 1)]
    full_tail = (n_max + 1) // lanes * lanes - 1
    if full_tail >= lanes:
        candidates.append(full_tail)
    return max(lane_fold_height(n, lanes) for n in candidates if n >= 1)


def gamma(h: int, u: Fraction) -> Fraction:
    """``gamma_h = h u / (1 - h u)`` as an exact rational (requires ``h u < 1``)."""
    _check_count("h", h, 0)
    if not isinstance(u, Fraction) or not 0 < u < 1:
        raise InvalidArgument("u", u, "must be a Fraction in (0, 1)")
    if h * u >= 1:
        raise InvalidArgument("h", h, f"h * u = {float(h * u)} must be < 1")
    return h * u / (1 - h * u)


# --------------------------------------------------------------------------- enumeration


@dataclass(frozen=True)
class Batch:
    """Measured energy errors of the implementation on a batch of inputs (one ``E``, one ``n``).

    Attributes:
        label: which part of the enumerated set this is (for the report).
        energy: the target energy ``E``.
        n: features per input.
        errors: ``|energy(C_E(x_i)) - E|`` per input, measured from the stored outputs.
        row: ``row(i)`` is input ``i`` as a list of floats (for a counterexample).
    """

    label: str
    energy: float
    n: int
    errors: Sequence[float]
    row: Callable[[int], list[float]]


def encode_row(row: Sequence[float]) -> str:
    """Text form of an input row: ``"[a, b]"``, or ``"[v] * n"`` for ``n > 4`` equal values.

    Identity: ``decode_row(encode_row(row)) == list(row)``.
    """
    values = [float(v) for v in row]
    if len(values) > 4 and all(v == values[0] for v in values):
        return f"[{values[0]!r}] * {len(values)}"
    return repr(values)


def decode_row(text: str) -> list[float]:
    """Inverse of :func:`encode_row`."""
    head, sep, count = text.partition("] * ")
    if sep:
        return [float(head.strip("[ "))] * int(count)
    return [float(v) for v in text.strip("[]").split(",")]


def enumeration_claim(
    batches: Callable[[], Iterable[Batch]],
    bound: Callable[[float, int], float],
    exact_error: Callable[[list[float], float], Fraction],
    *,
    slack: float,
    label: str,
    latex: str,
    description: str,
) -> Custom:
    """Claim: every enumerated input's energy error is ``<= bound(E, n)``.

    An input passes when its measured error is at most ``bound(E, n) - slack * E``
    (``slack`` bounds the measurement error relative to ``E``).  ``REFUTED``
    names the first input that fails, re-checked by ``exact_error(x, E)`` (the
    implementation run on that input alone, its outputs' energy in exact
    rationals) against ``bound``.  ``PROVED`` reports the count, the worst
    relative error and where it occurs.
    """
    if not callable(batches) or not callable(bound) or not callable(exact_error):
        raise InvalidArgumentType("batches", batches, "callables batches, bound, exact_error")
    if not isinstance(slack, float) or not 0 <= slack < 1e-6:
        raise InvalidArgument("slack", slack, "must be a float in [0, 1e-6)")

    def check_enumeration(timeout_s: float) -> Verdict:
        worst, worst_at, count = 0.0, "", 0
        parts: dict[str, int] = {}
        for batch in batches():
            limit = bound(batch.energy, batch.n) - slack * batch.energy
            errs = np.asarray(batch.errors, dtype=np.float64)
            count += errs.size
            parts[batch.label] = parts.get(batch.label, 0) + errs.size
            if errs.size == 0:
                continue
            i_max = int(errs.argmax())  # the first NaN, if any
            e_max = float(errs[i_max])
            if not e_max <= limit:  # NaN fails too
                cex = {
                    "E": repr(batch.energy),
                    "n": str(batch.n),
                    "x": encode_row(batch.row(i_max)),
                }
                return Verdict(
                    Status.REFUTED,
                    f"{label}: |energy - E| = {e_max:.6e} > {bound(batch.energy, batch.n):.6e} "
                    f"at x = {cex['x']}, E = {batch.energy!r} ({batch.label})",
                    cex,
                    backend="enumeration",
                )
            ratio = e_max / bound(batch.energy, batch.n)
            if ratio > worst:
                worst = ratio
                worst_at = (
                    f"x = {encode_row(batch.row(i_max))}, E = {batch.energy!r} ({batch.label})"
                )
        summary = ", ".join(f"{k}: {v}" for k, v in parts.items())
        return Verdict(
            Status.PROVED,
            f"{label}: {count} inputs ({summary}) all within the bound; worst error / bound "
            f"= {worst:.4f} at {worst_at}",
            backend="enumeration",
            details={"inputs": count, "worst_ratio": worst, "worst_at": worst_at},
        )

    def recheck_enumeration(cex: dict[str, str]) -> str | None:
        x = decode_row(cex["x"])
        e = float(cex["E"])
        err = exact_error(x, e)
        limit = Fraction(bound(e, len(x)))
        if err > limit:
            return None
        return f"exact energy error {float(err):.6e} is within {float(limit):.6e}"

    return custom(
        check_enumeration,
        latex=latex,
        description=description,
        recheck=recheck_enumeration,
        backend="enumeration",
    )


# --------------------------------------------------------------------------- rounding model


def energy_error_bound(
    u: Fraction,
    u_acc: Fraction,
    h: int,
    *,
    squares_exact: bool,
    separate_storage: bool,
    square_underflow: Fraction = Fraction(0),
    factor_roundings: int = 3,
) -> Fraction:
    r"""Largest ``|sum y_i^2 / E - 1|`` of the rounding model of ``conserve``'s fast path.

    The model has one rounding variable per operation of the implementation
    (``u64 = 2**-53`` for ``math.sqrt`` in float64, ``u_acc`` for the
    accumulation dtype, ``u`` for the storage dtype):

    ``ss = S (1 + theta)(1 + q)`` -- squares (exact for float16/bfloat16 data in
    float32, else one rounding each, folded into ``theta`` as ``gamma_{h+1}``),
    summed by a tree of height ``h`` (``|theta| <= gamma_h``); ``q``: squares
    flushed below the accumulation dtype's normal range, ``|q| <= square_underflow``;
    ``rsqrt(ss) = (1 + d_div) / (sqrt(ss)(1 + d_sqrt))`` (torch's CPU rsqrt is
    ``1 / sqrt``); ``r = sqrt(E)(1 + d_r64)(1 + d_r)`` (float64 root, then the
    scalar cast to the accumulation dtype); ``scale = rsqrt(ss) r (1 + d_m)``;
    ``y_i = x_i scale (1 + d_i)(1 + e_i)`` (the product in the accumulation
    dtype, then -- if ``separate_storage`` -- one rounding to the storage dtype).
    ``factor_roundings`` counts the accumulation-dtype roundings of the common
    factor's numerator: 3 (``d_div``, ``d_r``, ``d_m``) on the cascade path, 2
    (``d_r``, ``d_div``) on the one-pass path, which divides ``r`` by the norm in
    one operation (``scale = r / ||x||`` with ``||x|| = sqrt(ss)(1 + d_sqrt)``).
    Then ``sum y_i^2 = E q_c^2 m`` with ``m`` a weighted mean of the
    ``((1 + d_i)(1 + e_i))^2``, and the bound is the larger of ``R_max - 1`` and
    ``1 - R_min`` over the box of the variables (``R`` is monotone in each).

    Identity: the value equals ``max(|R - 1|)`` at the corners of the box; the
    finite-precision theorems prove ``|R - 1| <= energy_error_bound(...)`` in Z3
    from the same variables.
    """
    u64 = Fraction(1, 2**53)
    theta = gamma(h if squares_exact else h + 1, u_acc)
    per_elem_hi = (1 + u_acc) * (1 + u) if separate_storage else (1 + u_acc)
    per_elem_lo = (1 - u_acc) * (1 - u) if separate_storage else (1 - u_acc)
    _check_count("factor_roundings", factor_roundings, 0)
    num_hi = (1 + u_acc) ** factor_roundings * (1 + u64)  # d_div, d_r, (d_m), d_r64
    num_lo = (1 - u_acc) ** factor_roundings * (1 - u64)
    q2_hi = num_hi**2 / ((1 - theta) * (1 - square_underflow) * (1 - u_acc) ** 2)
    q2_lo = num_lo**2 / ((1 + theta) * (1 + square_underflow) * (1 + u_acc) ** 2)
    r_hi = per_elem_hi**2 * q2_hi
    r_lo = per_elem_lo**2 * q2_lo
    return max(r_hi - 1, 1 - r_lo)


def energy_error_line(
    u: Fraction,
    u_acc: Fraction,
    g_max: Fraction,
    *,
    separate_storage: bool,
    square_underflow: Fraction = Fraction(0),
) -> tuple[Fraction, Fraction, Fraction, Fraction]:
    r"""``(a_hi, b_hi, a_lo, b_lo)``: linear bounds of the model in the summation budget ``g``.

    For the rounding model of :func:`energy_error_bound` with the sum's relative
    error ``|theta| <= g`` (squares exact) and ``0 <= g <= g_max``:

    ``R - 1 <= a_hi + b_hi g`` (the chord of the convex ``K_hi / (1 - g) - 1``) and
    ``1 - R <= a_lo + b_lo g`` (the tangent at 0 of the concave ``1 - K_lo / (1 + g)``).

    Identity: at ``g = gamma_h`` both lines are ``>=`` the corresponding corner
    values, so ``max(a_hi + b_hi g, a_lo + b_lo g) >= energy_error_bound(..., h)``.
    """
    u64 = Fraction(1, 2**53)
    per_hi = (1 + u_acc) * (1 + u) if separate_storage else (1 + u_acc)
    per_lo = (1 - u_acc) * (1 - u) if separate_storage else (1 - u_acc)
    num_hi = (1 + u_acc) ** 3 * (1 + u64)
    num_lo = (1 - u_acc) ** 3 * (1 - u64)
    k_hi = per_hi**2 * num_hi**2 / ((1 - square_underflow) * (1 - u_acc) ** 2)
    k_lo = per_lo**2 * num_lo**2 / ((1 + square_underflow) * (1 + u_acc) ** 2)
    return k_hi - 1, k_hi / (1 - g_max), 1 - k_lo, k_lo
