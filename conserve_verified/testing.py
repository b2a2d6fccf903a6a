"""Shipped test oracles and Hypothesis strategies for users' own models.

Oracles measure in float64 from the stored values of the tensors under test,
so any error they report comes from the code under test, not from the check.
Tolerances come from :mod:`conserve_verified.tolerances`.

Strategies produce *hard* tensors: mixed magnitudes across the whole exponent
range of the dtype (subnormals included), near-zero and huge samples, every
supported float dtype, and odd shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from ._math import feature_count, normalize_dims
from .errors import ConservationViolation, InvalidArgument, check_int
from .operators import ConserveEnergy, hooked_boundaries
from .tolerances import energy_atol

__all__ = [
    "FLOAT_DTYPES",
    "HardTensor",
    "assert_energy_conserved",
    "assert_energy_equals",
    "assert_equivariant",
    "assert_gauge_invariant",
    "float_dtypes",
    "hard_tensors",
    "measure_energy",
]

#: Every float dtype the library supports, widest first.
FLOAT_DTYPES: tuple[torch.dtype, ...] = (
    torch.float64,
    torch.float32,
    torch.bfloat16,
    torch.float16,
)


def measure_energy(y: torch.Tensor, dim: int | Sequence[int] = -1) -> torch.Tensor:
    """Per-sample energy of ``y``'s stored values, computed exactly enough in float64."""
    dims = normalize_dims(y, dim)
    return y.detach().to(torch.float64).pow(2).sum(dims)


def assert_energy_equals(
    y: Any, energy: float, dim: int | Sequence[int] = -1, where: str = "tensor"
) -> None:
    """Check every sample of ``y`` has energy ``energy`` within the dtype's table tolerance."""
    if not isinstance(y, torch.Tensor):
        raise ConservationViolation(f"{where}: expected a tensor output, got {type(y).__name__}")
    if not bool(torch.isfinite(y).all()):
        raise ConservationViolation(f"{where}: output contains non-finite values")
    dims = normalize_dims(y, dim)
    measured = measure_energy(y, dims)
    atol = energy_atol(y.dtype, energy, feature_count(y, dims))
    err = (measured - energy).abs()
    if err.numel() and float(err.max()) > atol:
        i = int(err.argmax())
        raise ConservationViolation(
            f"{where}: sample {i} has energy {float(measured.flatten()[i])!r}, expected {energy!r} "
            f"(|error| {float(err.max()):.3e} > tolerance {atol:.3e} for {y.dtype})"
        )


def _boundaries(model: nn.Module) -> list[tuple[str, ConserveEnergy]]:
    """Every conservation boundary of ``model``: ``ConserveEnergy`` submodules and hooked ones."""
    found = [(n or "<root>", m) for n, m in model.named_modules() if isinstance(m, ConserveEnergy)]
    found += [(h.name, h.conserver) for _, h in hooked_boundaries(model)]
    return found


def assert_energy_conserved(
    fn_or_module: Callable[..., Any],
    *inputs: Any,
    energy: float | None = None,
    dim: int | Sequence[int] | None = None,
) -> None:
    """Oracle: run ``fn_or_module(*inputs)`` and check energy conservation.

    Identity checked: every conservation boundary executed by the forward pass
    outputs energy ``E_b`` per sample over its dims ``D_b`` (within the dtype's
    table tolerance), where ``E_b``/``D_b`` are that boundary's own settings.

    * ``nn.Module`` with conservation boundaries -- :class:`ConserveEnergy`
      submodules (a :class:`~conserve_verified.Conserved` pipeline) and/or
      submodules hooked by :func:`~conserve_verified.conserve_boundaries`,
      found anywhere in the model: the output of *every* boundary is checked.
    * Otherwise (a plain module or function) the output itself is checked
      against ``energy`` (required) over ``dim`` (default ``-1``); passing
      ``energy`` checks the output even when the model has boundaries.

    Raises :class:`~conserve_verified.errors.ConservationViolation` naming the
    boundary and the sample whose energy is off by more than the dtype's tolerance.
    """
    if not callable(fn_or_module):
        raise InvalidArgument("fn_or_module", fn_or_module, "must be callable")
    boundaries: list[tuple[str, ConserveEnergy]] = []
    if isinstance(fn_or_module, nn.Module):
        boundaries = _boundaries(fn_or_module)
    if boundaries and energy is None:
        captured: list[tuple[str, ConserveEnergy, torch.Tensor]] = []
        handles = [
            m.register_forward_hook(lambda mod, _i, out, n=n: captured.append((n, mod, out)))
            for n, m in boundaries
        ]
        try:
            with torch.no_grad():
                fn_or_module(*inputs)
        finally:
            for h in handles:
                h.remove()
        if not captured:
            raise ConservationViolation(
                f"none of the {len(boundaries)} conservation boundaries "
                f"({', '.join(repr(n) for n, _ in boundaries)}) was executed by the forward pass"
            )
        for name, mod, out in captured:
            if not isinstance(out, torch.Tensor):
                raise ConservationViolation(f"boundary {name!r}: output is not a tensor")
            assert_energy_equals(out, mod.energy, mod.dims_for(out), f"boundary {name!r}")
        return
    if energy is None:
        raise InvalidArgument(
            "energy",
            energy,
            "required when the model has no conservation boundary (no ConserveEnergy "
            "submodule, no conserve_boundaries hook): pass energy= to check its output",
        )
    with torch.no_grad():
        y = fn_or_module(*inputs)
    assert_energy_equals(y, float(energy), -1 if dim is None else dim, "output")


def assert_gauge_invariant(
    model: nn.Module,
    x: torch.Tensor,
    trials: int = 3,
    spread: float = 1.0,
    seed: int = 0,
    powers_of_two: bool = False,
    strict: bool = True,
) -> None:
    """Oracle (G1): random gauge transformations leave ``model(x)`` unchanged.

    Works on plain modules, :class:`~conserve_verified.Conserved` pipelines and
    models hooked by :func:`~conserve_verified.conserve_boundaries` alike (the
    trace sees every conservation boundary).  Traces ``model``'s rescaling symmetry with
    :func:`conserve_verified.gauge.gauge_structure`, applies ``trials`` random
    gauge transformations (log-scales uniform in ``[-spread, spread]``, or
    powers of two with ``powers_of_two``) to copies of ``model`` and checks
    ``max|model'(x) - model(x)| <= function_rtol * S`` with the
    ``function_rtol`` of the output dtype, where ``S`` is the largest magnitude
    among the output and the outputs of ``model``'s leaf modules (rounding
    errors are relative to the largest numbers in the computation, which an
    output reduced by cancellation can hide).  ``model`` itself is not modified;
    models with dropout should be passed in eval mode.

    Raises :class:`~conserve_verified.errors.ConservationViolation` when an
    output moves by more than that, and
    :class:`~conserve_verified.errors.InvalidArgument` when the model has no
    free scale (the check would be vacuous) or is not positively homogeneous.
    """
    import copy

    from .gauge import gauge_structure, gauge_transform, random_log_scales
    from .tolerances import tolerance

    if not isinstance(model, nn.Module):
        raise InvalidArgument("model", model, "must be an nn.Module")
    check_int("trials", trials)
    structure = gauge_structure(copy.deepcopy(model), x, strict=strict)
    if structure.num_scales == 0:
        raise InvalidArgument(
            "model", type(model).__name__, "has no free gauge scale: invariance would be vacuous"
        )
    gen = torch.Generator().manual_seed(seed)
    reference = copy.deepcopy(model)
    magnitudes: list[float] = []

    def _record(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.numel() and out.is_floating_point():
            magnitudes.append(float(out.detach().abs().max()))

    leaves = [m for m in reference.modules() if not list(m.children())]
    handles = [m.register_forward_hook(_record) for m in leaves]
    with torch.no_grad():
        try:
            y = reference(x)
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(y, torch.Tensor):
            raise InvalidArgument("model", type(model).__name__, "must return a tensor")
        ref = y.detach().to(torch.float64)
        scale = max([float(ref.abs().max()) if ref.numel() else 0.0, *magnitudes])
        bound = tolerance(y.dtype).function_rtol * scale
        for trial in range(trials):
            twin = copy.deepcopy(model)
            u = random_log_scales(structure, spread, gen, powers_of_two)
            gauge_transform(twin, structure, u)
            err = float((twin(x).detach().to(torch.float64) - ref).abs().max())
            if not err <= bound:  # NaN fails
                raise ConservationViolation(
                    f"gauge invariance: trial {trial} moved the output by {err:.3e} > "
                    f"tolerance {bound:.3e} (function_rtol of {y.dtype} x largest activation "
                    f"{scale:.3e}); "
                    f"log-scales in [{float(u.min()):.3f}, {float(u.max()):.3f}] over "
                    f"{structure.num_scales} scales"
                )


def assert_equivariant(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    rep_in: Any,
    rep_out: Any,
    atol: float | None = None,
    rtol: float | None = None,
    elements: Sequence[int] | None = None,
) -> None:
    """Oracle: ``model(rho_in(g) x) == rho_out(g) model(x)`` for every group element ``g``.

    ``rep_in``/``rep_out`` are :class:`~conserve_verified.equivariance.Representation`
    objects of the same group.  Compared in float64 elementwise within
    ``atol + rtol * |rho_out(g) model(x)|``; defaults: ``rtol = function_rtol`` of the
    output dtype and ``atol = function_rtol * max|model(x)|``.  Raises
    :class:`~conserve_verified.errors.ConservationViolation` naming the element and the
    largest deviation.
    """
    from .equivariance import check_compatible
    from .tolerances import tolerance

    check_compatible(rep_in, rep_out)
    gs = range(rep_in.order) if elements is None else elements
    with torch.no_grad():
        fx = model(x)
        row = tolerance(fx.dtype)
        r = row.function_rtol if rtol is None else float(rtol)
        a = row.function_rtol * float(fx.detach().abs().max()) if atol is None else float(atol)
        for g in gs:
            lhs = model(rep_in.act(x, g)).detach().double()
            rhs = rep_out.act(fx, g).detach().double()
            excess = (lhs - rhs).abs() - (a + r * rhs.abs())
            if not bool(torch.isfinite(lhs).all()) or float(excess.max()) > 0.0:
                raise ConservationViolation(
                    f"not equivariant under element {g} of {rep_in.name}: max |f(g x) - g f(x)| "
                    f"= {float((lhs - rhs).abs().max()):.3e} (atol {a:.3e}, rtol {r:.3e})"
                )


# --------------------------------------------------------------------------- strategies


def float_dtypes() -> st.SearchStrategy[torch.dtype]:
    """Every supported float dtype."""
    return st.sampled_from(FLOAT_DTYPES)


@dataclass(frozen=True)
class HardTensor:
    """A generated tensor and the feature dims it should be reduced over."""

    x: torch.Tensor
    dim: int | tuple[int, ...]

    def __repr__(self) -> str:
        return f"HardTensor(dim={self.dim}, x={self.x!r})"


def _exponent_range(dtype: torch.dtype) -> tuple[int, int]:
    info = torch.finfo(dtype)
    # from the smallest subnormal up to (but not touching) the overflow threshold
    lo = math.floor(math.log2(float(info.smallest_normal) * info.eps))
    hi = math.floor(math.log2(info.max)) - 1
    return lo, hi


@st.composite
def hard_tensors(
    draw: st.DrawFn,
    dtypes: st.SearchStrategy[torch.dtype] | None = None,
    max_batch: int = 4,
    max_features: int = 40,
    allow_zero_samples: bool = False,
    conv: bool | None = None,
) -> HardTensor:
    """Tensors of hard values: every sample nonzero unless ``allow_zero_samples``.

    Each sample draws a base exponent anywhere in the dtype's range (subnormal to
    near-overflow) and a spread, so one sample mixes magnitudes up to
    ``2**spread`` apart; a fraction of zeros is sprinkled in; a few elements are
    drawn individually (so Hypothesis can shrink towards them), the rest come
    from a seeded generator.  Shapes are ``(B, n)`` reduced over ``-1`` or
    ``(B, C, H, W)`` reduced over ``(1, 2, 3)``.
    """
    dtype = draw(dtypes if dtypes is not None else float_dtypes())
    lo, hi = _exponent_range(dtype)
    info = torch.finfo(dtype)
    use_conv = draw(st.booleans()) if conv is None else conv
    batch = draw(st.integers(1, max_batch))
    if use_conv:
        c, h, w = (draw(st.integers(1, 4)) for _ in range(3))
        shape: tuple[int, ...] = (batch, c, h, w)
        dim: int | tuple[int, ...] = (1, 2, 3)
    else:
        shape = (batch, draw(st.integers(1, max_features)))
        dim = -1
    n = math.prod(shape[1:])
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    rows = []
    for _ in range(batch):
        base = draw(st.integers(lo, hi))
        spread = draw(st.integers(0, 60))
        zero_frac = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9]))
        mant = torch.rand(n, generator=gen, dtype=torch.float64) * 4.0 - 2.0
        exps = torch.randint(max(lo, base - spread), base + 1, (n,), generator=gen).to(
            torch.float64
        )
        vals = mant * torch.pow(2.0, exps)
        vals[torch.rand(n, generator=gen) < zero_frac] = 0.0
        for _ in range(draw(st.integers(0, min(3, n)))):
            k = draw(st.integers(0, n - 1))
            vals[k] = draw(st.sampled_from([0.0, 1.0, -1.0])) * 2.0 ** draw(st.integers(lo, hi))
        vals = vals.clamp(-info.max, info.max)
        row = vals.to(dtype)
        if not allow_zero_samples and not bool((row != 0).any()):
            k = draw(st.integers(0, n - 1))
            row[k] = max(2.0**base, float(info.smallest_normal) * info.eps)
        rows.append(row)
    x = torch.stack(rows).reshape(shape)
    return HardTensor(x=x, dim=dim)
