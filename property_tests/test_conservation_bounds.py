"""Property tests of the noise bounds of the conservation operator: numeric twins of T4-T7.

Each test checks, on the torch implementation (:func:`conserve_verified.conserve`),
the statement that the theorem of the id named in its docstring proves in
``proofs/conservation.py``.  Notation: clean signal ``s`` with ``r = ||s||``,
noise ``n``, ``x = s + n``, ``rho = ||x||``, ``c = cos(x, s)``; the operator
is applied at energy ``E = r**2`` so that ``s`` lies on its shell.

Tolerances: the implementation's output ``y`` has per-element relative error at
most ``energy_rtol / 2`` (:mod:`conserve_verified.tolerances`),
so ``||y - y_exact|| <= energy_rtol * r / 2`` and a squared distance of two
points within ``2r`` of each other moves by at most ``3 energy_rtol r**2``.
The float64 bookkeeping of the test adds at most ``energy_rtol(float64)`` per
term of size ``<= (rho + r)**2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import given
from hypothesis import strategies as st

from conserve_verified import conserve
from conserve_verified.tolerances import energy_atol, tolerance

_DTYPES = st.sampled_from([torch.float64, torch.float32])
_F64 = tolerance(torch.float64).energy_rtol


@dataclass(frozen=True)
class Noisy:
    """A clean signal ``s`` and a noisy input ``x = s + n`` (stored in ``dtype``), as float64."""

    s: torch.Tensor
    x: torch.Tensor
    dtype: torch.dtype

    @property
    def n(self) -> torch.Tensor:
        return self.x - self.s

    @property
    def r(self) -> float:
        return float(self.s.norm())

    @property
    def rho(self) -> float:
        return float(self.x.norm())

    @property
    def c(self) -> float:
        return float(self.x @ self.s) / (self.rho * self.r)

    def conserved(self) -> torch.Tensor:
        """``C_E(x)`` by the implementation at ``E = ||s||**2``, measured in float64."""
        return conserve(self.x.to(self.dtype), self.r**2).double()


def _unit(gen: torch.Generator, dim: int) -> torch.Tensor:
    v = torch.randn(dim, generator=gen, dtype=torch.float64)
    return v / v.norm()


@st.composite
def noisy(draw: st.DrawFn) -> Noisy:
    """Signals on a shell with random, growing, shrinking, reversing or orthogonal noise."""
    dtype = draw(_DTYPES)
    dim = draw(st.integers(2, 32))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    r = 10.0 ** draw(st.floats(-1.0, 1.0))
    s = (r * _unit(gen, dim)).to(dtype).double()
    kind = draw(st.sampled_from(["random", "scaled", "orthogonal"]))
    if kind == "random":
        n = (r * 10.0 ** draw(st.floats(-3.0, 2.0))) * _unit(gen, dim)
        x = s + n
    elif kind == "scaled":  # x = t s: t < 0 reverses, 0 < t < 1 shrinks, t > 1 grows
        t = draw(st.floats(-3.0, 3.0).filter(lambda t: abs(t) > 1e-3))
        x = t * s
    else:  # x orthogonal to s, of any norm
        w = _unit(gen, dim)
        w = w - (w @ s) / (s @ s) * s
        x = (r * 10.0 ** draw(st.floats(-2.0, 1.0))) * w / w.norm()
    return Noisy(s, x.to(dtype).double(), dtype)


def _slack(p: Noisy) -> float:
    """Absolute tolerance for a difference of squared distances (module docstring)."""
    rtol = tolerance(p.dtype).energy_rtol
    return 3 * rtol * p.r**2 + 4 * _F64 * (p.rho + p.r) ** 2


@given(noisy())
def test_conserve_error_identity(p: Noisy) -> None:
    """T4: ``||n||^2 - ||C_E(x) - s||^2 = (rho - r)(rho + r - 2 r c)``."""
    lhs = float(p.n @ p.n) - float(((p.conserved() - p.s) ** 2).sum())
    rhs = (p.rho - p.r) * (p.rho + p.r - 2 * p.r * p.c)
    assert abs(lhs - rhs) <= _slack(p), (lhs, rhs, _slack(p))


@given(noisy())
def test_conserve_noise_reduction_condition(p: Noisy) -> None:
    """T5: strict reduction iff ``rho != r`` and (``rho > r`` or ``c > (rho + r)/(2r)``)."""
    noise = float(p.n @ p.n)
    error = float(((p.conserved() - p.s) ** 2).sum())
    margin = (p.rho - p.r) * (p.rho + p.r - 2 * p.r * p.c)
    if abs(margin) <= 2 * _slack(p):
        return  # too close to the boundary rho = r (or c = (rho + r)/(2r)) to decide in floats
    condition = p.rho != p.r and (p.rho > p.r or p.c > (p.rho + p.r) / (2 * p.r))
    assert condition == (margin > 0)
    assert (error < noise) == condition, (error, noise, p.rho, p.r, p.c)


@given(
    _DTYPES,
    st.integers(2, 32),
    st.integers(0, 2**32 - 1),
    st.floats(-1.0, 1.0),
    st.floats(1.05, 1.95),
    st.floats(0.05, 0.95),
)
def test_conserve_noise_can_grow(
    dtype: torch.dtype, dim: int, seed: int, log_r: float, t: float, shrink: float
) -> None:
    """T5a, T5b: claim B is false -- conservation increases the noise energy for
    reversing noise ``n = -t s`` (1 < t < 2) and for orthogonal noise that shrinks
    the vector (``rho = shrink * r``, ``c = 0``), the solver's counterexamples."""
    gen = torch.Generator().manual_seed(seed)
    r = 10.0**log_r
    s = (r * _unit(gen, dim)).to(dtype).double()
    w = _unit(gen, dim)
    w = w - (w @ s) / (s @ s) * s
    for x in (-(t - 1) * s, shrink * float(s.norm()) * w / w.norm()):
        p = Noisy(s, x.to(dtype).double(), dtype)
        noise = float(p.n @ p.n)
        error = float(((p.conserved() - p.s) ** 2).sum())
        assert error > noise + _slack(p), (error, noise)


@given(
    _DTYPES,
    st.integers(1, 32),
    st.integers(0, 2**32 - 1),
    st.floats(-1.0, 1.0),
    st.floats(-3.0, 2.0),
)
def test_conserve_lipschitz_bound(
    dtype: torch.dtype, dim: int, seed: int, log_e: float, log_noise: float
) -> None:
    """T6: ``||C_E(u + n) - C_E(u)||^2 <= E ||n||^2 / (||u|| ||u + n||)``."""
    gen = torch.Generator().manual_seed(seed)
    e = 10.0**log_e
    u = (torch.randn(dim, generator=gen, dtype=torch.float64) * 3).to(dtype)
    v = (u.double() + 10.0**log_noise * _unit(gen, dim) * u.double().norm()).to(dtype)
    ud, vd = u.double(), v.double()
    if float(vd.norm()) == 0.0:
        return
    lhs = float(((conserve(v, e).double() - conserve(u, e).double()) ** 2).sum())
    rhs = e * float(((vd - ud) ** 2).sum()) / (float(ud.norm()) * float(vd.norm()))
    rtol = tolerance(dtype).energy_rtol
    assert lhs <= rhs * (1 + 4 * _F64) + 5 * rtol * e, (lhs, rhs)


@given(
    _DTYPES,
    st.integers(2, 16),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
    st.floats(-1.0, 1.0),
    st.floats(-2.0, 2.0),
)
def test_conserve_bounded_accumulation(
    dtype: torch.dtype, dim: int, depth: int, seed: int, log_e: float, log_sigma: float
) -> None:
    """T7 (conserved): with C_E after every layer and noise at every boundary, the noise
    energy ``||h_k - s_k||^2`` stays <= 4E at every depth, for arbitrary layers and noise."""
    gen = torch.Generator().manual_seed(seed)
    e = 10.0**log_e
    sigma = 10.0**log_sigma
    s = conserve(torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype), e)
    h = conserve((s.double() + sigma * torch.randn(dim, generator=gen)).to(dtype), e)
    bound = 4 * (e + energy_atol(dtype, e, dim))
    for _ in range(depth):
        assert float(((h.double() - s.double()) ** 2).sum()) <= bound
        w = torch.randn(dim, dim, generator=gen, dtype=torch.float64) * 3
        s = conserve((w @ s.double()).to(dtype), e)
        noise = sigma * torch.randn(dim, generator=gen, dtype=torch.float64)
        h = conserve((w @ h.double() + noise).to(dtype), e)
    assert float(((h.double() - s.double()) ** 2).sum()) <= bound


@given(
    st.sampled_from([0.5, 0.9, 1.0, 1.1]),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
    st.floats(-1.0, 1.0),
)
def test_conserve_unconserved_accumulation(
    gain: float, depth: int, seed: int, log_sigma: float
) -> None:
    """T7 (unconserved): additive noise of variance sigma^2 through orthogonal layers of gain
    g accumulates to variance ``sigma^2 sum_{j<k} g^(2j)`` per unit (Monte Carlo).

    The per-unit errors are i.i.d. N(0, V), so the sample mean of ``e^2`` over ``m``
    values has standard deviation ``V sqrt(2/m)``; the test allows 6 of them
    (false-alarm probability about 2e-9 per example).
    """
    gen = torch.Generator().manual_seed(seed)
    dim, samples = 8, 4000
    sigma = 10.0**log_sigma
    err = torch.zeros(samples, dim, dtype=torch.float64)
    for _ in range(depth):
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        err = gain * err @ q.T + sigma * torch.randn(
            samples, dim, generator=gen, dtype=torch.float64
        )
    predicted = sigma**2 * sum(gain ** (2 * j) for j in range(depth))
    measured = float((err**2).mean())
    assert abs(measured / predicted - 1) <= 6 * math.sqrt(2 / (samples * dim)), (
        measured,
        predicted,
    )


@given(
    st.sampled_from([torch.float16, torch.bfloat16]),
    st.integers(1, 64),
    st.integers(0, 2**32 - 1),
    st.floats(-2.0, 2.0),
    st.floats(-4.0, 4.0),
)
def test_conserve_low_precision_energy(
    dtype: torch.dtype, dim: int, seed: int, log_e: float, log_scale: float
) -> None:
    """FP16, BF16: the energy of ``conserve(x, E)`` for float16/bfloat16 input stays within
    the table's ``energy_atol`` (``energy_rtol(n) = 2u + u^2 + c(n) u_acc``, ``c(n)`` derived
    from the summation order of torch's CPU sum), measured exactly enough in float64 from
    the stored outputs."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(dim, generator=gen, dtype=torch.float64) * 10.0**log_scale).to(dtype)
    if not bool((x != 0).any()):
        return
    e = 10.0**log_e
    y = conserve(x, e).double()
    assert abs(float((y * y).sum()) - e) <= energy_atol(dtype, e, dim)


@given(
    st.integers(1, 8192),
    st.integers(0, 2**32 - 1),
    st.floats(-2.0, 2.0),
    st.floats(-4.0, 4.0),
    st.booleans(),
)
def test_conserve_float32_one_pass_energy(
    dim: int, seed: int, log_e: float, log_scale: float, equal: bool
) -> None:
    """FP32: the energy of ``conserve(x, E)`` for float32 input of ``n <= 8192`` features (the
    one-pass path) stays within the table's ``energy_atol`` (``c(n)`` derived from the
    norm kernel's lane order), measured in float64 from the stored outputs; ``equal`` rows
    (every element the same) make every lane accumulate the same rounding pattern."""
    gen = torch.Generator().manual_seed(seed)
    if equal:
        x = torch.full((dim,), 10.0**log_scale * (1 + torch.rand((), generator=gen).item()))
    else:
        x = (torch.randn(dim, generator=gen, dtype=torch.float64) * 10.0**log_scale).float()
    if not bool((x != 0).any()):
        return
    e = 10.0**log_e
    y = conserve(x[None], e)[0].double()
    assert abs(float((y * y).sum()) - e) <= energy_atol(torch.float32, e, dim)
