r"""Finite precision: the energy error of the implemented ``conserve`` in float16 and bfloat16.

For each low-precision dtype, theorem ``FP16`` / ``BF16`` establishes that the
tolerance ``tolerances.TOLERANCES[dtype].energy_rtol`` (``2u + u^2 + 32 u_acc``)
is implied by the worst-case relative energy error, in two independent ways:

1. **Rounding model, every n (Z3, exact rationals).**  Every output element is
   ``y_i = t_i (1 + delta_i)`` with ``|delta_i| <= u`` (one rounding to the storage
   dtype) where ``t = x * (r / ||x||)`` is computed in the accumulation dtype
   with a common relative error ``|eta| <= 13 u_acc`` (summation of ``n <= 2**20``
   squares, square root, division and multiply: the derivation in
   :mod:`conserve_verified.tolerances`).  Then ``sum y_i^2 = E m (1 + eta)^2``
   where ``m`` is a weighted mean of the ``(1 + delta_i)^2``, so
   ``(1 - u)^2 <= m <= (1 + u)^2``; Z3 proves ``|m (1 + eta)^2 - 1| <= energy_rtol``
   with the table's value as an exact rational.  (Subnormal outputs add the
   absolute term of ``tolerances.energy_atol``.)
2. **Exhaustive enumeration of the implementation.**  ``conserve`` itself (the
   library code path, on CPU) is run on every input of a finite set and the
   stored outputs' energy is measured in float64 (measurement error below
   ``2**-50 E``, accounted for):

   * ``n = 1``: every finite nonzero value of the dtype, at ``E = 1`` and at the
     two energies ``E = r^2`` with ``r = 1 + u (1 -+ 2**-10)`` just below and just
     above a rounding midpoint (the worst place for the final rounding);
   * ``n = 2``: every ``x_1`` in ``[1, 2)`` (all significands) with every ``x_2``
     of either sign, ``|x_2| <= x_1`` (bfloat16: all of them; float16: all with
     ``|x_2| >= x_1 / 4`` by default, all of them when
     ``$CONSERVE_FP_EXHAUSTIVE=full``), at ``E = 1`` and the first midpoint energy.

   The enumeration is exhaustive over exactly this set; other exponents of
   ``x_1`` and other energies are covered by the rounding-model argument (1),
   not by enumeration.  The worst relative error found is reported in the
   verdict and must lie within the table; the mutant "the error is within
   ``u``" must be refuted by the enumeration (the table is tight: the worst case
   reaches ``2u``, up to a factor ``1 + O(u)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction

import torch
import z3

from conserve_verified import conserve
from conserve_verified.proof import (
    Mutant,
    Status,
    Theorem,
    Verdict,
    all_of,
    custom,
    register,
    z3_implies,
)
from conserve_verified.tolerances import energy_atol, tolerance

THEORY = "finite_precision"
TWIN = "property_tests/test_conservation_bounds.py::test_conserve_low_precision_energy"
_BITS = {torch.float16: 11, torch.bfloat16: 8}  # significand bits p (u = 2**-p)
_FLOAT16_CUTOFF = 4  # default float16 set: |x_2| >= x_1 / 4


def _all_values(dtype: torch.dtype) -> torch.Tensor:
    """Every finite value of a 16-bit dtype (both zeros included)."""
    vals = torch.arange(0, 2**16, dtype=torch.int32).to(torch.int16).view(dtype)
    return vals[torch.isfinite(vals)]


def _energies(dtype: torch.dtype) -> tuple[float, ...]:
    """``E = 1`` and ``E = r^2`` with ``r`` just below / just above the midpoint ``1 + u``."""
    u = 2.0 ** -_BITS[dtype]
    return 1.0, (1.0 + u * (1 - 2.0**-10)) ** 2, (1.0 + u * (1 + 2.0**-10)) ** 2


def _batches(dtype: torch.dtype, full: bool) -> Iterator[tuple[torch.Tensor, float]]:
    """The enumerated inputs (rows of shape (m, n)) with their energy; see module docstring."""
    values = _all_values(dtype)
    energies = _energies(dtype)
    for e in energies:
        yield values[values != 0][:, None], e
    x1s = values[(values >= 1) & (values < 2)]
    x2s = values[values.abs() < 2]
    lo = 0.0 if full or dtype == torch.bfloat16 else 1 / _FLOAT16_CUTOFF
    pairs = []
    for x1 in x1s:
        keep = (x2s.abs() <= x1) & (x2s.abs() >= x1 * lo)
        x2 = x2s[keep]
        pairs.append(torch.stack([x1.expand_as(x2), x2], dim=-1))
    rows = torch.cat(pairs)
    for e in energies[:2]:
        for chunk in rows.split(2**21):
            yield chunk, e


def _exact_error(x: list[float], dtype: torch.dtype, e: float) -> Fraction:
    """``|sum y_i^2 - E|`` exactly, for ``y = conserve(x, E)`` stored in ``dtype``."""
    y = conserve(torch.tensor([x], dtype=dtype), e)[0]
    return abs(sum(Fraction(float(v)) ** 2 for v in y.tolist()) - Fraction(e))


def _enumeration(
    dtype: torch.dtype, bound: Callable[[float, int], float], label: str
) -> tuple[Callable[[float], Verdict], Callable[[dict[str, str]], str | None]]:
    """Checker and re-checker of ``|energy(conserve(x, E)) - E| <= bound(E, n)`` on the set."""

    def check(timeout_s: float) -> Verdict:
        full = os.environ.get("CONSERVE_FP_EXHAUSTIVE", "") == "full"
        worst, worst_at, rows = 0.0, "", 0
        for x, e in _batches(dtype, full):
            y = conserve(x, e).double()
            err = ((y * y).sum(-1) - e).abs()
            rows += x.shape[0]
            n = x.shape[1]
            slack = bound(e, n) - 2.0**-50 * e
            bad = err > slack
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                cex = {
                    "dtype": str(dtype),
                    "E": repr(e),
                    "x": repr([float(v) for v in x[i].tolist()]),
                }
                return Verdict(
                    Status.REFUTED,
                    f"{label}: |energy - E| = {float(err[i]):.6e} > {bound(e, n):.6e} "
                    f"(after {rows} inputs)",
                    cex,
                )
            i = int(err.argmax())
            if float(err[i]) / e > worst:
                worst = float(err[i]) / e
                worst_at = f"x={[float(v) for v in x[i].tolist()]}, E={e!r}"
        rtol = tolerance(dtype).energy_rtol
        return Verdict(
            Status.PROVED,
            f"{label}: {rows} inputs ({'full' if full else 'default'} set) all within bound; "
            f"worst relative energy error {worst:.6e} at {worst_at}; energy_rtol {rtol:.6e} "
            f"(ratio {worst / rtol:.4f})",
        )

    def recheck(cex: dict[str, str]) -> str | None:
        x = [float(v) for v in cex["x"].strip("[]").split(",")]
        e = float(cex["E"])
        err = _exact_error(x, dtype, e)
        if err > Fraction(bound(e, len(x))):
            return None
        return f"exact energy error {float(err):.6e} is within {bound(e, len(x)):.6e}"

    return check, recheck


def _model_bound(dtype: torch.dtype, rtol: Fraction) -> z3.BoolRef:
    row = tolerance(dtype)
    u, ua = Fraction(row.unit_roundoff), Fraction(row.accumulation_roundoff)
    m, eta = z3.Reals("m eta")
    hyps = [
        m >= (1 - z3.RealVal(u)) ** 2,
        m <= (1 + z3.RealVal(u)) ** 2,
        eta >= -13 * z3.RealVal(ua),
        eta <= 13 * z3.RealVal(ua),
    ]
    err = m * (1 + eta) ** 2 - 1
    return z3_implies(
        hyps,
        z3.And(err <= z3.RealVal(rtol), err >= -z3.RealVal(rtol)),
        latex=rf"(1-u)^2 \le m \le (1+u)^2,\ |\eta| \le 13u_{{acc}} \implies "
        rf"|m(1+\eta)^2 - 1| \le {float(rtol):.6g}\quad(u = 2^{{-{_BITS[dtype]}}},"
        rf"\ u_{{acc}} = 2^{{-24}})",
    )


def _theorem(tid: str, dtype: torch.dtype) -> Theorem:
    row = tolerance(dtype)
    rtol = Fraction(row.energy_rtol)
    u = Fraction(row.unit_roundoff)
    check, recheck = _enumeration(
        dtype, lambda e, n: energy_atol(dtype, e, n), "table tolerance energy_atol"
    )
    m_check, m_recheck = _enumeration(
        dtype, lambda e, n: float(u) * e, "half the table: |error| <= u E"
    )
    name = str(dtype).removeprefix("torch.")
    return Theorem(
        id=tid,
        name=f"{name} energy error within the tolerance table",
        statement=(
            f"For {name} input, conserve(x, E) (sums in float32, one rounding to {name}) "
            f"returns energy E within the table's energy_rtol = 2u + u^2 + 32 u_acc = "
            f"{float(rtol):.6e} (u = 2^-{_BITS[dtype]}): implied by the rounding model for "
            "every n <= 2^20, and confirmed on the implementation by exhaustive enumeration "
            "of n = 1 and of a structured set of n = 2 inputs."
        ),
        assumptions=(
            "n <= 2**20 features",
            "round-to-nearest storage rounding (|delta| <= u) for normal outputs",
            "accumulation-dtype error of the common factor |eta| <= 13 u_acc",
            "enumeration: the CPU code path of this checkout",
        ),
        claim=all_of(
            _model_bound(dtype, rtol),
            custom(
                check,
                latex=rf"\max_{{x \in S}} |\lVert C_E(x)\rVert^2 - E| \le "
                rf"\mathrm{{energy\_atol}}_{{\mathrm{{{name}}}}}(E, n)",
                description=f"exhaustive enumeration of conserve on {name} inputs",
                recheck=recheck,
                backend="enumeration",
            ),
            labels=("rounding model, every n (z3)", "exhaustive enumeration (torch)"),
        ),
        mutants=(
            Mutant(
                id="storage-rounding-2u",
                description="ignoring the accumulation error: 2u bounds the model's error",
                claim=_model_bound(dtype, 2 * u),
            ),
            Mutant(
                id="within-u",
                description="the energy error of the implementation stays within u E",
                claim=custom(
                    m_check,
                    latex=r"\max_{x \in S} |\lVert C_E(x)\rVert^2 - E| \le u E",
                    description=f"enumeration against u E on {name} inputs",
                    recheck=m_recheck,
                    backend="enumeration",
                ),
            ),
        ),
        property_test=TWIN,
        theory=THEORY,
    )


FP16 = register(_theorem("FP16", torch.float16))
BF16 = register(_theorem("BF16", torch.bfloat16))
