r"""Finite precision: the energy error of the implemented ``conserve`` in float16 and bfloat16.

Theorems ``FP16`` and ``BF16`` bound ``|sum y_i^2 - E|`` for ``y = conserve(x, E)``
with float16 / bfloat16 ``x`` by the tolerance table
(:func:`conserve_verified.tolerances.energy_atol`), in two independent ways:

1. **Rounding model of the implemented algorithm (Z3 and cvc5, exact rationals).**
   One rounding variable per operation of the fast path
   (:mod:`conserve_verified._fused`), which has two forms:

   * ``n <= ONE_PASS_MAX_FEATURES`` (one pass): ``theta`` for the float32 sum of
     the (exact) squares by torch's norm kernel on the up-converted block,
     bounded by ``gamma_h`` with ``h`` the kernel's lane-fold height
     (:data:`~conserve_verified.tolerances.ONE_PASS_HEIGHTS`); ``d_sqrt`` for its
     square root; ``d_r64``, ``d_r`` for ``r = sqrt(E)`` and ``d_div`` for
     ``scale = r / norm``;
   * longer samples (cascade): ``theta`` bounded by ``gamma_h`` with ``h`` the
     height of torch's CPU cascade sum -- computed by
     :func:`conserve_verified.proof.finite.summation_height` from the kernel's
     order for every length ``n <= 2**20``, vector widths of 4, 8 and 16 lanes
     and up to 64 threads; ``d_sqrt`` and ``d_div`` for ``rsqrt = 1 / sqrt``;
     ``d_r64`` and ``d_r`` for ``r``; ``d_m`` for ``rsqrt * r``;

   and in both ``q`` for squares flushed below float32's normal range
   (bfloat16 only) and ``m``, the weighted mean of the per-element factors
   ``((1 + d_i)(1 + e_i))^2`` of the float32 product ``x_i * scale`` and the
   rounding to the storage dtype.  The solvers prove ``|R - 1| <= B`` for the
   energy ratio ``R`` with ``B`` the model's worst case
   (:func:`~conserve_verified.proof.finite.energy_error_bound`), which lies
   within the table's ``energy_rtol(n)`` for each range of ``n``.
2. **Enumeration of the implementation** (the library's CPU code path, each
   input routed exactly as it is when passed alone: the batch is split by the
   per-sample fast/wide decision, so no sample is computed by the other path):

   * ``n = 1``: every finite nonzero value of the dtype, at ``E = 1`` and at the
     two energies ``E = r^2`` with ``r = 1 + u (1 -+ 2**-10)`` just below and just
     above a rounding midpoint (the worst place for the final rounding);
   * ``n = 2``: every ``x_1`` in ``[1, 2)`` (all significands) with every ``x_2``
     of either sign, ``|x_2| < 2`` (both zeros included), at ``E = 1`` and the first
     midpoint energy;
   * an adversarial long input (float16, one-pass path): ``n = 6143`` equal elements
     ``1.3349609375`` at ``E = n ((1 + u)(1 - 5 u_acc))^2`` -- every element's
     exact value lies just below a rounding midpoint and the float32 error of
     the common factor pushes it across, so the energy error exceeds the
     storage-only bound ``2u + u^2``: the accumulation term is needed.

   The enumeration covers exactly this set (other exponents of ``x_1``, other
   energies and lengths are covered by the rounding model, not by enumeration).

The mutants: the model bound ``2u + u^2`` without the accumulation term (the
near miss; refuted by the solvers), the one-pass model within the cascade
path's ``c = 48`` for ``n <= 1024`` (refuted: the one-pass order's height is
140), the implementation within ``2u + u^2``
(float16: refuted by the adversarial input), and the implementation within
``u E`` (refuted by the enumeration: the table is tight to a factor ``1 + O(u)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from fractions import Fraction
from functools import lru_cache

import torch
import z3

from conserve_verified import _native, conserve
from conserve_verified._math import _fast_sum_squares, _needs_wide
from conserve_verified.proof import (
    Mutant,
    Theorem,
    all_of,
    instance,
    register,
    z3_implies,
)
from conserve_verified.proof.claims import Z3Implies
from conserve_verified.proof.finite import (
    Batch,
    energy_error_bound,
    enumeration_claim,
    gamma,
    summation_height,
)
from conserve_verified.tolerances import (
    ACCUMULATION_COEFFICIENTS,
    ONE_PASS_COEFFICIENTS,
    ONE_PASS_HEIGHTS,
    ONE_PASS_MAX_FEATURES,
    energy_atol,
    tolerance,
)

THEORY = "finite_precision"
TWIN = "property_tests/test_conservation_bounds.py::test_conserve_low_precision_energy"
_BITS = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24}  # u = 2**-p, p bits
#: Vector widths (float lanes) of torch's CPU kernels covered, and the thread bound.
LANES = (4, 8, 16)
MAX_THREADS = 64
#: Squares of bfloat16 data can fall below float32's normal range (float16's cannot).
_SQUARE_UNDERFLOW = {torch.float16: Fraction(0), torch.bfloat16: Fraction(1, 2**46)}
_SLACK = 2.0**-50  # float64 measurement error of n <= 2 stored outputs, relative to E
_ADVERSARIAL = {torch.float16: (6143, 1.3349609375, 5)}  # n, element, ulps below midpoint


def _all_values(dtype: torch.dtype) -> torch.Tensor:
    """Every finite value of a 16-bit dtype (both zeros included)."""
    vals = torch.arange(0, 2**16, dtype=torch.int32).to(torch.int16).view(dtype)
    return vals[torch.isfinite(vals)]


def _energies(dtype: torch.dtype) -> tuple[float, ...]:
    """``E = 1`` and ``E = r^2`` with ``r`` just below / just above the midpoint ``1 + u``."""
    u = 2.0 ** -_BITS[dtype]
    return 1.0, (1.0 + u * (1 - 2.0**-10)) ** 2, (1.0 + u * (1 + 2.0**-10)) ** 2


def _adversarial_energy(dtype: torch.dtype) -> float:
    n, _, ulps = _ADVERSARIAL[dtype]
    u = 2.0 ** -_BITS[dtype]
    return n * ((1.0 + u) * (1.0 - ulps * 2.0**-24)) ** 2


def routed_conserve(x: torch.Tensor, e: float, wide: torch.Tensor | None = None) -> torch.Tensor:
    """``conserve`` of each row of ``x`` exactly as if it were passed alone.

    Identity: ``routed_conserve(x, e)[i] == conserve(x[i:i+1], e)[0]`` for every
    nonzero row (the rows are split by the per-sample fast/wide decision of
    :mod:`conserve_verified._math`, so each group takes one path).  ``wide`` is
    that decision if already computed (:func:`wide_rows`).
    """
    if wide is None:
        wide = wide_rows(x)
    if not bool(wide.any()):
        return conserve(x, e)
    y = torch.empty_like(x)
    for mask in (~wide, wide):
        if bool(mask.any()):
            y[mask] = conserve(x[mask], e)
    return y


def wide_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (shape ``(m, n)``) that ``conserve`` would compute on its wide path alone."""
    acc = tolerance(x.dtype).accumulation
    n = x.shape[-1]
    ss, _ = _fast_sum_squares(x.to(acc), (x.ndim - 1,), n)
    return _needs_wide(ss, acc, n).squeeze(-1)


def _measured(x: torch.Tensor, e: float, label: str, wide: torch.Tensor | None = None) -> Batch:
    """Errors ``|sum y_i^2 - E|`` in float64 (exact squares; below ``2**-50 E`` off for n <= 2)."""
    y = routed_conserve(x, e, wide).double()
    s = y[:, 0] * y[:, 0] + y[:, 1] * y[:, 1] if y.shape[-1] == 2 else (y * y).sum(-1)
    err = (s - e).abs_()
    return Batch(label, e, x.shape[-1], err.numpy(), lambda i: [float(v) for v in x[i].tolist()])


def _exact_error(x: list[float], dtype: torch.dtype, e: float) -> Fraction:
    """``|sum y_i^2 - E|`` in exact rationals for ``y = conserve(x, E)`` stored in ``dtype``."""
    y = conserve(torch.tensor([x], dtype=dtype), e)[0]
    return abs(sum(Fraction(float(v)) ** 2 for v in y.tolist()) - Fraction(e))


def _adversarial_batch(dtype: torch.dtype) -> Iterator[Batch]:
    if dtype not in _ADVERSARIAL:
        return
    n, value, _ = _ADVERSARIAL[dtype]
    e = _adversarial_energy(dtype)
    row = [value] * n
    err = float(_exact_error(row, dtype, e))  # exact: no measurement slack needed
    yield Batch(f"adversarial n={n}", e, n, [err], lambda i: row)


def _paths(dtype: torch.dtype) -> list[tuple[str, Callable[[], AbstractContextManager[None]]]]:
    """The CPU code paths of ``dtype`` here: the native kernel where it runs, torch's kernels."""
    torch_kernels = ("torch kernels", _native.disabled)
    if _native.handles(dtype):
        return [("native kernel", contextlib.nullcontext), torch_kernels]
    return [torch_kernels]


def _on_each_path(dtype: torch.dtype, batches: Callable[[], Iterator[Batch]]) -> Iterator[Batch]:
    """``batches()`` measured on each code path of :func:`_paths`, labelled with the path."""
    for name, context in _paths(dtype):
        with context():
            for batch in batches():
                yield dataclasses.replace(batch, label=f"{batch.label}, {name}")


def _batches(dtype: torch.dtype) -> Iterator[Batch]:
    """The enumerated inputs with their measured errors on each code path (module docstring)."""
    return _on_each_path(dtype, lambda: _path_batches(dtype))


def _path_batches(dtype: torch.dtype) -> Iterator[Batch]:
    values = _all_values(dtype)
    energies = _energies(dtype)
    for e in energies:
        yield _measured(values[values != 0][:, None], e, "n=1")
    x1s = values[(values >= 1) & (values < 2)]
    x2s = values[values.abs() < 2]
    for start in range(0, len(x1s), 64):
        chunk = x1s[start : start + 64]
        rows = torch.stack(
            [chunk[:, None].expand(-1, len(x2s)), x2s[None, :].expand(len(chunk), -1)], dim=-1
        ).reshape(-1, 2)
        wide = wide_rows(rows)
        for e in energies[:2]:
            yield _measured(rows, e, "n=2", wide)
    yield from _adversarial_batch(dtype)


def _down(x: Fraction) -> Fraction:
    """``x`` rounded down to a multiple of ``2**-64`` (keeps exported numerals short)."""
    return Fraction(math.floor(x * 2**64), 2**64)


def _up(x: Fraction) -> Fraction:
    """``x`` rounded up to a multiple of ``2**-64``."""
    return Fraction(math.ceil(x * 2**64), 2**64)


def _interval(v: z3.ArithRef, lo: Fraction, hi: Fraction) -> z3.BoolRef:
    return z3.And(z3.RealVal(lo) <= v, v <= z3.RealVal(hi))


_UA = Fraction(1, 2**24)
_U64 = Fraction(1, 2**53)
#: Boxes of ``A = (1 + d_div)(1 + d_m)``, ``B = (1 + d_r64)(1 + d_r)`` and the numerator
#: ``P = A B`` (each rounded outward to a multiple of ``2**-64``).
_A_LO, _A_HI = _down((1 - _UA) ** 2), _up((1 + _UA) ** 2)
_B_LO, _B_HI = _down((1 - _U64) * (1 - _UA)), _up((1 + _U64) * (1 + _UA))
_P_LO, _P_HI = _down(_A_LO * _B_LO), _up(_A_HI * _B_HI)


def _product_claim(
    names: tuple[str, str], bounds: tuple[Fraction, Fraction], what: tuple[str, str], out: str
) -> tuple[Z3Implies, Fraction, Fraction]:
    """``|a| <= b_a``, ``|c| <= b_c``, ``out = (1 + a)(1 + c)`` implies ``out`` in its box."""
    a, c, o = z3.Reals(f"{names[0]} {names[1]} {out}")
    lo, hi = _down((1 - bounds[0]) * (1 - bounds[1])), _up((1 + bounds[0]) * (1 + bounds[1]))
    assert (lo, hi) in ((_A_LO, _A_HI), (_B_LO, _B_HI))
    claim = z3_implies(
        [
            _interval(a, -bounds[0], bounds[0]),
            _interval(c, -bounds[1], bounds[1]),
            o == (1 + a) * (1 + c),
        ],
        _interval(o, lo, hi),
        labels=[
            f"|{names[0]}| <= {float(bounds[0]):.6g} ({what[0]})",
            f"|{names[1]}| <= {float(bounds[1]):.6g} ({what[1]})",
            f"{out} = (1 + {names[0]})(1 + {names[1]})",
        ],
        latex=rf"{out} = (1 + \delta_{{{names[0]}}})(1 + \delta_{{{names[1]}}}) \in "
        rf"[{float(lo):.12g}, {float(hi):.12g}]",
    )
    return claim, lo, hi


def _numerator_claims() -> list[Z3Implies]:
    """Lemma 1: the four roundings of the common factor's numerator, two at a time.

    ``A = (1 + d_div)(1 + d_m)`` (the division of ``1 / sqrt`` and ``* r``),
    ``B = (1 + d_r64)(1 + d_r)`` (``r``: float64 root, float32 cast), ``P = A B``.
    """
    c_a, a_lo, a_hi = _product_claim(
        ("d_div", "d_m"), (_UA, _UA), ("1 / sqrt(ss)", "rsqrt(ss) * r"), "A"
    )
    c_b, b_lo, b_hi = _product_claim(
        ("d_r64", "d_r"), (_U64, _UA), ("math.sqrt(E)", "r rounded to float32"), "B"
    )
    a, b, p = z3.Reals("A B P")
    c_p = z3_implies(
        [_interval(a, a_lo, a_hi), _interval(b, b_lo, b_hi), p == a * b],
        _interval(p, _P_LO, _P_HI),
        labels=["A in its box", "B in its box", "P = A B"],
        latex=r"P = A B \in [(1-u_{acc})^3(1-2^{-53}), (1+u_{acc})^3(1+2^{-53})]",
    )
    return [c_a, c_b, c_p]


def _denominator_box(g: Fraction, q: Fraction) -> tuple[Fraction, Fraction]:
    """Box of ``D = (1 + theta)(1 + d_sqrt)^2 (1 + q)`` for ``|theta| <= g``, ``|q| <= q``."""
    return _down((1 - g) * (1 - _UA) ** 2 * (1 - q)), _up((1 + g) * (1 + _UA) ** 2 * (1 + q))


def _denominator_lemma(
    g: Fraction, q: Fraction, labels: tuple[str, str], latex: tuple[int, str, int]
) -> Z3Implies:
    """Lemma 2: the sum (``|theta| <= g``), ``sqrt`` (``d_sqrt``) and underflow (``|q| <= q``).

    ``labels`` name the bounds of ``theta`` and ``d_sqrt``; ``latex`` is ``(h, u, n_max)``
    for the displayed statement.  ``q = 0`` leaves the underflow variable out.
    """
    th, ds, d = z3.Reals("theta d_sqrt D")
    lo, hi = _denominator_box(g, q)
    hyps = [_interval(th, -g, g), _interval(ds, -_UA, _UA)]
    hyp_labels = list(labels)
    rhs = (1 + th) * (1 + ds) * (1 + ds)
    if q:
        qv = z3.Real("q")
        hyps.append(_interval(qv, -q, q))
        hyp_labels.append("|q| <= 2^-46 (squares below float32's normal range)")
        rhs = rhs * (1 + qv)
    hyps.append(d == rhs)
    hyp_labels.append("D = (1 + theta)(1 + d_sqrt)^2 (1 + q)")
    h, u, n_max = latex
    return z3_implies(
        hyps,
        _interval(d, lo, hi),
        labels=hyp_labels,
        latex=rf"|\theta| \le \gamma_{{{h}}},\ |\delta_{{sqrt}}| \le {u} \implies "
        rf"D \in [{float(lo):.9g}, {float(hi):.9g}]\quad(n \le {n_max})",
    )


def _denominator_claim(dtype: torch.dtype, n_max: int, h: int) -> Z3Implies:
    """Lemma 2 of the cascade path: ``torch.sum`` of height ``h``, ``sqrt``, underflow."""
    return _denominator_lemma(
        gamma(h, _UA),
        _SQUARE_UNDERFLOW[dtype],
        (
            f"|theta| <= gamma_{h}(u_acc) (torch.sum of n <= {n_max} squares)",
            "|d_sqrt| <= u_acc",
        ),
        (h, "u_{acc}", n_max),
    )


def _ratio_claim(
    boxes: tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction], tuple[Fraction, Fraction]],
    labels: tuple[str, str],
    bound: Fraction,
    what: str,
) -> Z3Implies:
    """``P``, ``D``, ``m`` in their ``boxes`` and ``R D = m P^2`` imply ``|R - 1| <= bound``.

    ``labels`` name the boxes of ``D`` and ``m`` (the path's summation height and
    its per-element roundings).
    """
    p, d, m, big_r = z3.Reals("P D m R")
    (p_lo, p_hi), (d_lo, d_hi), (m_lo, m_hi) = boxes
    b = z3.RealVal(bound)
    return z3_implies(
        [
            _interval(p, p_lo, p_hi),
            _interval(d, d_lo, d_hi),
            _interval(m, m_lo, m_hi),
            big_r * d == m * p * p,
        ],
        z3.And(big_r - 1 <= b, 1 - big_r <= b),
        labels=[
            "P in the box of lemma 1",
            labels[0],
            labels[1],
            "R D = m P^2 (energy ratio sum y_i^2 / E)",
        ],
        latex=rf"R D = m P^2 \implies |R - 1| \le {float(bound):.9g}\quad({what})",
    )


def _energy_claim(dtype: torch.dtype, h: int, bound: Fraction, what: str) -> Z3Implies:
    """Lemma 3: ``R D = m P^2`` with the boxes of lemmas 1 and 2 implies ``|R - 1| <= bound``."""
    u = Fraction(tolerance(dtype).unit_roundoff)
    m_box = _down(((1 - _UA) * (1 - u)) ** 2), _up(((1 + _UA) * (1 + u)) ** 2)
    return _ratio_claim(
        ((_P_LO, _P_HI), _denominator_box(gamma(h, _UA), _SQUARE_UNDERFLOW[dtype]), m_box),
        (
            f"D in the box of lemma 2 (h = {h})",
            "m in [((1-u_acc)(1-u))^2, ((1+u_acc)(1+u))^2] (x_i * scale, storage rounding)",
        ),
        bound,
        what,
    )


def _range_labels(ranges: list[tuple[int, int, int]], path: str = "") -> list[str]:
    """Labels of lemmas 2 and 3 for each ``(n_max, c, h)`` range of the table.

    ``path`` (e.g. ``" (one pass)"``) tags the lemmas of one code path.
    """
    return [
        label
        for n_max, c, _ in ranges
        for label in (
            f"lemma 2{path}: denominator D, n <= {n_max} (z3, cvc5)",
            f"lemma 3{path}: |R - 1| <= table (c = {c}), n <= {n_max} (z3, cvc5)",
        )
    ]


@lru_cache(maxsize=1)
def _ranges() -> list[tuple[int, int, int]]:
    """``(n_max, c, h)`` per cascade range above the one-pass lengths (``h``: summation height).

    float16/bfloat16 samples of at most ``ONE_PASS_MAX_FEATURES`` features take the
    one-pass path (:func:`_one_pass_ranges`); longer ones the cascade.
    """
    return [
        (n_max, c, max(summation_height(n_max, lanes, MAX_THREADS) for lanes in LANES))
        for n_max, c in ACCUMULATION_COEFFICIENTS
        if n_max > ONE_PASS_MAX_FEATURES
    ]


def _derived(dtype: torch.dtype, h: int) -> Fraction:
    """The model's worst case for summation height ``h`` (corner of the box)."""
    row = tolerance(dtype)
    return energy_error_bound(
        Fraction(row.unit_roundoff),
        _UA,
        h,
        squares_exact=True,
        separate_storage=True,
        square_underflow=_SQUARE_UNDERFLOW[dtype],
    )


def _abs_terms(dtype: torch.dtype, e: float, n: int) -> float:
    s = tolerance(dtype).smallest_subnormal
    return s * (n * e) ** 0.5 + n * s * s


def _theorem(tid: str, dtype: torch.dtype) -> Theorem:
    row = tolerance(dtype)
    u = Fraction(row.unit_roundoff)
    name = str(dtype).removeprefix("torch.")
    ranges = _ranges()
    one = _one_pass_ranges(dtype)
    models: list[Z3Implies] = [*_numerator_claims(), _one_pass_numerator_claims()[1]]
    for n_max, c, h in one:
        models.extend(_one_pass_lemmas(dtype, n_max, c, h))
    for n_max, c, h in ranges:
        table = 2 * u + u * u + c * _UA
        models.append(_denominator_claim(dtype, n_max, h))
        models.append(
            _energy_claim(
                dtype, h, table, f"table c = {c}; derived {float(_derived(dtype, h)):.9g}"
            )
        )
    exact = lambda x, e: _exact_error(x, dtype, e)  # noqa: E731
    enumeration = enumeration_claim(
        lambda: _batches(dtype),
        lambda e, n: energy_atol(dtype, e, n),
        exact,
        slack=_SLACK,
        label="table tolerance energy_atol",
        latex=rf"\max_{{x \in S}} |\lVert C_E(x)\rVert^2 - E| \le "
        rf"\mathrm{{energy\_atol}}_{{\mathrm{{{name}}}}}(E, n)",
        description=f"enumeration of conserve on the {name} set S (routed per sample)",
    )
    no_acc = 2 * u + u * u
    cascade_c = ACCUMULATION_COEFFICIENTS[0][1]
    n1, _, h1 = one[0]
    mutants = [
        Mutant(
            id="no-accumulation-term",
            description="near miss: the model's error within 2u + u^2, without the "
            "accumulation term",
            claim=_energy_claim(dtype, ranges[-1][2], no_acc, "2u + u^2"),
        ),
        Mutant(
            id="cascade-coefficient",
            description=f"the one-pass model within the cascade path's coefficient c = "
            f"{cascade_c} for n <= {n1} (the one-pass order has height {h1}, not the cascade's)",
            claim=_one_pass_energy_claim(dtype, h1, no_acc + cascade_c * _UA, f"c = {cascade_c}"),
        ),
        Mutant(
            id="within-u",
            description="the implementation's energy error stays within u E",
            claim=enumeration_claim(
                lambda: _batches(dtype),
                lambda e, n: float(u) * e,
                exact,
                slack=_SLACK,
                label="half the table: |error| <= u E",
                latex=r"\max_{x \in S} |\lVert C_E(x)\rVert^2 - E| \le u E",
                description=f"enumeration against u E on {name} inputs",
            ),
        ),
    ]
    if dtype in _ADVERSARIAL:
        n_adv = _ADVERSARIAL[dtype][0]
        mutants.append(
            Mutant(
                id="implementation-no-accumulation-term",
                description=f"the implementation within (2u + u^2) E plus the subnormal terms "
                f"(no accumulation term), on the adversarial input of length {n_adv}",
                claim=enumeration_claim(
                    lambda: _adversarial_batch(dtype),
                    lambda e, n: float(no_acc) * e + _abs_terms(dtype, e, n),
                    exact,
                    slack=_SLACK,
                    label="storage-only bound (2u + u^2) E",
                    latex=r"|\lVert C_E(x_{adv})\rVert^2 - E| \le (2u + u^2) E + s\sqrt{nE} + ns^2",
                    description=f"adversarial {name} input against the storage-only bound",
                ),
            )
        )
    table_text = ", ".join(f"c = {c} for n <= {n_max}" for n_max, c, _ in one + ranges)
    adversarial = (
        f", and on one adversarial input of length {_ADVERSARIAL[dtype][0]}"
        if dtype in _ADVERSARIAL
        else ""
    )
    return Theorem(
        id=tid,
        name=f"{name} energy error within the tolerance table",
        statement=(
            f"For {name} input of length n <= 2^20 on CPU, conserve(x, E) (the exact squares "
            f"summed in float32 -- for n <= {ONE_PASS_MAX_FEATURES} in the lane-fold order "
            "(torch's norm kernel on the up-converted block or, bfloat16 where it is built, "
            "the native kernel), scale = r / norm by one division; above, in torch's "
            f"cascade order with scale = rsqrt * r -- and one rounding to {name}) returns "
            f"energy E within the table's energy_rtol(n) = 2u + u^2 + c(n) u_acc ({table_text}; "
            f"u = 2^-{_BITS[dtype]}, u_acc = 2^-24) for normal outputs: derived in the solvers "
            "from one rounding variable per operation of the implemented algorithm, and "
            "checked on the implementation with the subnormal terms of energy_atol by "
            "enumeration of n = 1 (each nonzero value, three energies), of n = 2 (x_1 in [1, 2) "
            f"with each |x_2| < 2, two energies){adversarial}."
        ),
        assumptions=(
            "n <= 2**20 features; torch's CPU sum kernel (SumKernel.cpp cascade order) with "
            "4, 8 or 16 lanes and at most 64 threads (tests/test_proof_finite.py checks the "
            "order bit for bit against the installed torch)",
            f"n <= {ONE_PASS_MAX_FEATURES}: torch's CPU 2-norm kernel on the float32 block "
            "(8 or 16 float lanes; tests/test_proof_one_pass.py checks the order bit for bit), "
            "and the eval-mode batch-norm kernel computing x * scale in float32, rounded once "
            "to the storage dtype (checked value for value in tests/test_bench_fused.py); "
            "bfloat16 where the native kernel is built: its lane fold of 16 lanes and its "
            "rounding to bfloat16 (tests/test_native.py, bit for bit)",
            "round-to-nearest in float32 and in the storage dtype; torch's CPU rsqrt is 1/sqrt "
            "(checked bit for bit in tests/test_proof_finite.py)",
            "the model covers the fast path with normal outputs; subnormal outputs (the absolute "
            "terms of energy_atol) and the float64 wide path are covered by the enumeration of "
            "the enumerated inputs only",
            "enumeration: the CPU code paths of this checkout (the native kernel where it is "
            "built, and torch's kernels)",
        ),
        claim=all_of(
            *models,
            enumeration,
            labels=(
                "lemma 1a: A = (1 + d_div)(1 + d_m) (z3, cvc5)",
                "lemma 1b: B = (1 + d_r64)(1 + d_r) (z3, cvc5)",
                "lemma 1c: P = A B (z3, cvc5)",
                "lemma 1d (one pass): P = (1 + d_div) B (z3, cvc5)",
                *_range_labels(one, " (one pass)"),
                *_range_labels(ranges, " (cascade)"),
                "enumeration of the implementation (torch)",
            ),
        ),
        mutants=tuple(mutants),
        property_test=TWIN,
        theory=THEORY,
        scope=instance(
            f"{name} on CPU, n <= 2^20 (model); enumeration of n = 1 and 2 exhaustively at the "
            f"named energies{adversarial}"
        ),
    )


# --------------------------------------------------------------------------- FP32 (one pass)

_FP32_TWIN = "property_tests/test_conservation_bounds.py::test_conserve_float32_one_pass_energy"
#: Squares of float32 data below float32's normal range (the fast path's threshold keeps
#: their total within this relative error; see ``_math._underflow_threshold``).
_Q32 = Fraction(1, 2**46)
#: n = 2 part of the FP32 enumeration: every 2**_STRIDE-th float32 in [1, 2) as x_1 with
#: each of these x_2 (both zeros, tiny, mid-range and just below 2, both signs).
_STRIDE = 6
_X2_FP32 = (0.0, -0.0, 2.0**-12, -(2.0**-12), 0.75, -0.75, 1.9999998807907104, -1.5)


def _fp32_first_values() -> torch.Tensor:
    """Every float32 in ``[1, 2)`` (all ``2**23`` significands)."""
    bits = torch.arange(2**23, dtype=torch.int32) | 0x3F800000
    return bits.view(torch.float32)


def _fp32_batches() -> Iterator[Batch]:
    """n = 1: every float32 in [1, 2) at three energies; n = 2: the strided set, two energies
    (on each code path)."""
    return _on_each_path(torch.float32, _fp32_path_batches)


def _fp32_path_batches() -> Iterator[Batch]:
    x1 = _fp32_first_values()
    energies = _energies(torch.float32)
    for e in energies:
        yield _measured(x1[:, None], e, "n=1")
    first = x1[:: 2**_STRIDE]
    for x2 in _X2_FP32:
        rows = torch.stack([first, torch.full_like(first, x2)], dim=-1)
        wide = wide_rows(rows)
        for e in energies[:2]:
            yield _measured(rows, e, "n=2", wide)


def _one_pass_numerator_claims() -> list[Z3Implies]:
    """Lemma 1 (one pass): ``B = (1 + d_r64)(1 + d_r)``, ``P = (1 + d_div) B``.

    ``scale = float32(r) / nrm`` is one division: the numerator has the rounding of
    ``r`` (float64 root, float32 cast) and the division, not ``rsqrt``'s two.
    """
    c_b, b_lo, b_hi = _product_claim(
        ("d_r64", "d_r"), (_U64, _UA), ("math.sqrt(E)", "r rounded to float32"), "B"
    )
    dd, b, p = z3.Reals("d_div B P")
    lo, hi = _one_pass_numerator_box()
    c_p = z3_implies(
        [_interval(dd, -_UA, _UA), _interval(b, b_lo, b_hi), p == (1 + dd) * b],
        _interval(p, lo, hi),
        labels=["|d_div| <= 2^-24 (float32(r) / nrm)", "B in its box", "P = (1 + d_div) B"],
        latex=r"P = (1 + \delta_{div}) B \in [(1-u)^2(1-2^{-53}), (1+u)^2(1+2^{-53})]",
    )
    return [c_b, c_p]


def _one_pass_numerator_box() -> tuple[Fraction, Fraction]:
    return _down((1 - _UA) * _B_LO), _up((1 + _UA) * _B_HI)


def _one_pass_roundings(dtype: torch.dtype, h: int) -> int:
    """Roundings per term of the one-pass norm's sum of squares for height ``h``.

    float32 squares are rounded once each (or fused into the addition): one more
    rounding than ``h``; float16/bfloat16 squares are exact in float32.
    """
    return h + 1 if dtype == torch.float32 else h


def _one_pass_sum_bound(dtype: torch.dtype, h: int) -> Fraction:
    """``|theta|`` bound of the one-pass norm's sum of squares for height ``h``."""
    return gamma(_one_pass_roundings(dtype, h), _UA)


def _one_pass_underflow(dtype: torch.dtype) -> Fraction:
    return _Q32 if dtype == torch.float32 else _SQUARE_UNDERFLOW[dtype]


def _one_pass_denominator_box(dtype: torch.dtype, h: int) -> tuple[Fraction, Fraction]:
    return _denominator_box(_one_pass_sum_bound(dtype, h), _one_pass_underflow(dtype))


def _one_pass_denominator_claim(dtype: torch.dtype, n_max: int, h: int) -> Z3Implies:
    """Lemma 2 (one pass): lanes + fold + tail (``theta``), ``sqrt`` (``d_sqrt``), underflow."""
    hh = _one_pass_roundings(dtype, h)
    what = "height {h} plus the square's rounding" if dtype == torch.float32 else "exact squares"
    return _denominator_lemma(
        _one_pass_sum_bound(dtype, h),
        _one_pass_underflow(dtype),
        (
            f"|theta| <= gamma_{hh}(2^-24) (one-pass norm kernel, n <= {n_max}: "
            + what.format(h=h)
            + ")",
            "|d_sqrt| <= 2^-24 (the kernel's float32 sqrt)",
        ),
        (hh, "u_{acc}", n_max),
    )


def _one_pass_m_box(dtype: torch.dtype) -> tuple[Fraction, Fraction]:
    """Box of the per-element factors: ``x_i * scale`` in float32 and, below float32, the
    rounding to the storage dtype."""
    if dtype == torch.float32:
        return _down((1 - _UA) ** 2), _up((1 + _UA) ** 2)
    u = Fraction(tolerance(dtype).unit_roundoff)
    return _down(((1 - _UA) * (1 - u)) ** 2), _up(((1 + _UA) * (1 + u)) ** 2)


def _one_pass_energy_claim(dtype: torch.dtype, h: int, bound: Fraction, what: str) -> Z3Implies:
    """Lemma 3 (one pass): ``R D = m P^2`` implies ``|R - 1| <= bound``."""
    m_label = (
        "m in [(1-u)^2, (1+u)^2] (x_i * scale, one rounding)"
        if dtype == torch.float32
        else "m in [((1-u_acc)(1-u))^2, ((1+u_acc)(1+u))^2] (x_i * scale, storage rounding)"
    )
    return _ratio_claim(
        (_one_pass_numerator_box(), _one_pass_denominator_box(dtype, h), _one_pass_m_box(dtype)),
        (f"D in the box of lemma 2 (h = {h})", m_label),
        bound,
        what,
    )


def _one_pass_derived(dtype: torch.dtype, h: int) -> Fraction:
    """The one-pass model's worst case for norm height ``h`` (corner of the box)."""
    low = dtype != torch.float32
    return energy_error_bound(
        Fraction(tolerance(dtype).unit_roundoff),
        _UA,
        h,
        squares_exact=low,
        separate_storage=low,
        square_underflow=_one_pass_underflow(dtype),
        factor_roundings=2,
    )


def _one_pass_ranges(dtype: torch.dtype) -> list[tuple[int, int, int]]:
    """``(n_max, c, h)`` per one-pass range of ``dtype``'s rows (``h``: the norm's height)."""
    return [
        (n_max, c, h)
        for (n_max, c), (_, h) in zip(ONE_PASS_COEFFICIENTS[dtype], ONE_PASS_HEIGHTS, strict=True)
    ]


def _one_pass_lemmas(dtype: torch.dtype, n_max: int, c: int, h: int) -> list[Z3Implies]:
    """Lemmas 2 and 3 of the one-pass path for ``n <= n_max`` against the table's ``c``."""
    u = Fraction(tolerance(dtype).unit_roundoff)
    table = 2 * u + u * u + c * _UA
    derived = float(_one_pass_derived(dtype, h))
    return [
        _one_pass_denominator_claim(dtype, n_max, h),
        _one_pass_energy_claim(dtype, h, table, f"table c = {c}; derived {derived:.9g}"),
    ]


def _fp32_theorem() -> Theorem:
    u = _UA
    f32 = torch.float32
    ranges = _one_pass_ranges(f32)
    models: list[Z3Implies] = _one_pass_numerator_claims()
    for n_max, c, h in ranges:
        models.extend(_one_pass_lemmas(f32, n_max, c, h))
    exact = lambda x, e: _exact_error(x, torch.float32, e)  # noqa: E731
    enumeration = enumeration_claim(
        _fp32_batches,
        lambda e, n: energy_atol(torch.float32, e, n),
        exact,
        slack=_SLACK,
        label="table tolerance energy_atol",
        latex=r"\max_{x \in S} |\lVert C_E(x)\rVert^2 - E| \le "
        r"\mathrm{energy\_atol}_{\mathrm{float32}}(E, n)",
        description="enumeration of conserve on the float32 set S (one-pass path)",
    )
    cascade_c = ACCUMULATION_COEFFICIENTS[0][1]
    n1, _, h1 = ranges[0]
    mutants = (
        Mutant(
            id="no-accumulation-term",
            description="near miss: the one-pass model's error within 2u + u^2, without the "
            "accumulation term",
            claim=_one_pass_energy_claim(f32, ranges[-1][2], 2 * u + u * u, "2u + u^2"),
        ),
        Mutant(
            id="cascade-coefficient",
            description=f"the one-pass model within the cascade path's coefficient c = "
            f"{cascade_c} for n <= {n1} (the one-pass order has height {h1}, not the cascade's)",
            claim=_one_pass_energy_claim(
                f32, h1, 2 * u + u * u + cascade_c * u, f"c = {cascade_c}"
            ),
        ),
        Mutant(
            id="within-u",
            description="the implementation's energy error stays within u E",
            claim=enumeration_claim(
                _fp32_batches,
                lambda e, n: float(u) * e,
                exact,
                slack=_SLACK,
                label="|error| <= u E",
                latex=r"\max_{x \in S} |\lVert C_E(x)\rVert^2 - E| \le u E",
                description="enumeration against u E on float32 inputs",
            ),
        ),
    )
    table_text = ", ".join(f"c = {c} for n <= {n_max}" for n_max, c, _ in ranges)
    return Theorem(
        id="FP32",
        name="float32 one-pass energy error within the tolerance table",
        statement=(
            f"For float32 input of length n <= {ONE_PASS_MAX_FEATURES} on CPU, conserve(x, E) "
            "(the one-pass path: the norm by torch's one-read kernel or, where it is built, "
            "the native kernel -- squares in 8 or 16 vector lanes, lanes folded, tail added in "
            "sequence -- then scale = r / norm by one division and y = x * scale) returns "
            "energy E within the table's energy_rtol(n) = "
            f"2u + u^2 + c(n) u ({table_text}; u = 2^-24) for normal outputs: derived in the "
            "solvers from one rounding variable per operation of the implemented algorithm, "
            "and checked on the implementation with the subnormal terms of energy_atol by "
            "enumeration of n = 1 (the 2^23 float32 values in [1, 2), three energies) and of "
            f"n = 2 (x_1 = the float32 values in [1, 2) with stride 2^{_STRIDE}, x_2 in "
            f"{{{', '.join(repr(v) for v in _X2_FP32)}}}, two energies)."
        ),
        assumptions=(
            f"n <= {ONE_PASS_MAX_FEATURES} features; torch's CPU 2-norm kernel "
            "(ReduceOpsKernel.cpp, binary_kernel_reduce_lastdim: one thread per row) with 8 or "
            "16 float lanes (tests/test_proof_one_pass.py checks that its order explains the "
            "installed torch's results bit for bit, each tail step fused or not); the native "
            "kernel where it is built: 16 lanes, unfused (tests/test_native.py, bit for bit)",
            "round-to-nearest in float32; the kernel's sqrt is correctly rounded",
            "the model covers the one-pass path with normal outputs; subnormal outputs (the "
            "absolute terms of energy_atol) and the wide path are covered by the enumeration "
            "of the enumerated inputs only",
            "enumeration: the CPU code paths of this checkout (the native kernel where it is "
            "built, and torch's kernels)",
        ),
        claim=all_of(
            *models,
            enumeration,
            labels=(
                "lemma 1a: B = (1 + d_r64)(1 + d_r) (z3, cvc5)",
                "lemma 1b: P = (1 + d_div) B (z3, cvc5)",
                *_range_labels(ranges),
                "enumeration of the implementation (torch)",
            ),
        ),
        mutants=mutants,
        property_test=_FP32_TWIN,
        theory=THEORY,
        scope=instance(
            f"float32 on CPU, n <= {ONE_PASS_MAX_FEATURES} (model); enumeration of n = 1 and the "
            "n = 2 set at the named energies"
        ),
    )


FP16 = register(_theorem("FP16", torch.float16))
BF16 = register(_theorem("BF16", torch.bfloat16))
FP32 = register(_fp32_theorem())
