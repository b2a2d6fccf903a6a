r"""The gauge action on parameters, orbit norms, imbalance and the balancing penalty.

Notation: ``u in R^K`` are log-scales (``alpha = exp(u)``); for scale ``k``

* ``a_k`` = sum of squares of its producer entries (incoming weights and bias),
* ``b_k`` = sum of squares of its consumer entries (outgoing weights),
* ``delta_k = a_k - b_k`` is its *imbalance* and ``(1/4) log(a_k / b_k)`` its
  *log-scale imbalance* (the log-distance to the balanced point of a single
  neuron, G2: ``alpha**4 = b/a``),
* ``t_k`` is the *orbit tangent*: ``+p`` on producer entries, ``-p`` on consumer
  entries (``d/du_k`` of the action at ``u = 0``).

Identities (tests of the same name in ``tests/test_gauge_action.py``):

* ``gauge_transform(model, s, u)`` then ``gauge_transform(model, s, -u)`` is the identity;
* ``orbit_norms`` under the action: ``a_k -> exp(2 u_k) a_k`` for an isolated neuron;
* ``grad balance_penalty = 4 mu sum_k delta_k t_k`` (tangent to the orbit, G4);
* ``sum_k d(||theta||^2)/du_k = 2 delta_k`` -- the norm is stationary on the
  orbit exactly where every ``delta_k = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import InvalidArgument, InvalidArgumentType
from ..tolerances import accumulation_dtype
from ._structure import GaugeStructure, ParamAction

__all__ = [
    "balance_penalty",
    "gauge_transform",
    "imbalance",
    "log_imbalance",
    "log_scale_penalty_step",
    "orbit_norms",
    "orbit_tangent",
    "random_log_scales",
    "transformed_parameters",
]


def _check_structure(structure: object) -> GaugeStructure:
    if not isinstance(structure, GaugeStructure):
        raise InvalidArgumentType("structure", structure, "a GaugeStructure (see gauge_structure)")
    return structure


def _check_log_scales(structure: GaugeStructure, u: object) -> torch.Tensor:
    if not isinstance(u, torch.Tensor) or not u.is_floating_point():
        raise InvalidArgumentType("log_scales", u, "a floating tensor of shape (num_scales,)")
    if tuple(u.shape) != (structure.num_scales,):
        raise InvalidArgument(
            "log_scales",
            u,
            f"expected shape ({structure.num_scales},), one log-scale per free scale",
        )
    if not bool(torch.isfinite(u).all()):
        raise InvalidArgument("log_scales", u, "must be finite")
    return u


def _log_factor(act: ParamAction, u_ext: torch.Tensor, ndim: int) -> torch.Tensor:
    """``u_ext[prod]`` along dim 0 minus ``u_ext[cons]`` along dim 1, broadcastable."""
    out = torch.zeros((), dtype=u_ext.dtype, device=u_ext.device)
    if act.prod is not None:
        out = out + u_ext[act.prod.to(u_ext.device)].reshape((-1,) + (1,) * (ndim - 1))
    if act.cons is not None:
        shape = (1, -1) + (1,) * (ndim - 2)
        out = out - u_ext[act.cons.to(u_ext.device)].reshape(shape)
    return out


def _extend(u: torch.Tensor) -> torch.Tensor:
    return torch.cat([u, u.new_zeros(1)])


def transformed_parameters(
    params: Mapping[str, torch.Tensor], structure: GaugeStructure, log_scales: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Parameters after the gauge action ``g(u)``, differentiable in both arguments.

    Identity: ``p -> p * exp(u[prod] - u[cons])`` entrywise (see :class:`ParamAction`);
    parameters the gauge does not touch are returned as they are.  Usable with
    :func:`torch.func.functional_call`.
    """
    s = _check_structure(structure)
    u_ext = _extend(_check_log_scales(s, log_scales))
    out = dict(params)
    for act in s.actions:
        p = params[act.name]
        out[act.name] = p * torch.exp(_log_factor(act, u_ext.to(p.device), p.ndim)).to(p.dtype)
    return out


def _exact_exp(log_factor: torch.Tensor) -> torch.Tensor:
    """``exp(log_factor)`` in float64, exactly ``2**k`` where ``log_factor = k log 2``."""
    k = torch.round(log_factor / math.log(2.0))
    pow2 = (log_factor - k * math.log(2.0)).abs() <= 1e-12 * (1.0 + k.abs())
    exact = torch.ldexp(torch.ones_like(log_factor), k.to(torch.int32))
    return torch.where(pow2, exact, torch.exp(log_factor))


def gauge_transform(model: nn.Module, structure: GaugeStructure, log_scales: torch.Tensor) -> None:
    """Apply ``g(u)`` to ``model``'s parameters in place (G1: the function is unchanged).

    The factors are computed in float64 and each parameter entry is rounded
    once to its dtype; integer ``u / log(2)`` (powers of two) act exactly.
    """
    s = _check_structure(structure)
    params = s.check_model(model)
    u_ext = _extend(_check_log_scales(s, log_scales).detach().to(torch.float64))
    with torch.no_grad():
        for act in s.actions:
            p = params[act.name]
            factor = _exact_exp(_log_factor(act, u_ext.to(p.device), p.ndim))
            p.copy_((p.to(torch.float64) * factor).to(p.dtype))


def random_log_scales(
    structure: GaugeStructure,
    spread: float = 1.0,
    generator: torch.Generator | None = None,
    powers_of_two: bool = False,
) -> torch.Tensor:
    """Random log-scales, uniform in ``[-spread, spread]`` (float64).

    With ``powers_of_two`` the scales are ``2**k`` with integer ``|k| <= spread``,
    so the action is exact in floating point.
    """
    s = _check_structure(structure)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not spread >= 0:
        raise InvalidArgument("spread", spread, "must be a real number >= 0")
    r = torch.rand(s.num_scales, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    if powers_of_two:
        k = torch.round(r * float(spread))
        return k * torch.log(torch.tensor(2.0, dtype=torch.float64))
    return r * float(spread)


def _norms_from(
    params: Mapping[str, torch.Tensor], s: GaugeStructure
) -> tuple[torch.Tensor, torch.Tensor]:
    first = next(iter(params.values()), None)
    dtype = torch.float64 if first is None else accumulation_dtype(first.dtype)
    device = torch.device("cpu") if first is None else first.device
    a = torch.zeros(s.num_scales + 1, dtype=dtype, device=device)
    b = torch.zeros(s.num_scales + 1, dtype=dtype, device=device)
    for act in s.actions:
        sq = params[act.name].to(dtype) ** 2
        if act.prod is not None:
            rows = sq.reshape(sq.shape[0], -1).sum(1)
            a = a.index_add(0, act.prod.to(device), rows)
        if act.cons is not None:
            cols = sq.transpose(0, 1).reshape(sq.shape[1], -1).sum(1)
            b = b.index_add(0, act.cons.to(device), cols)
    return a[:-1], b[:-1]


def orbit_norms(
    model_or_params: nn.Module | Mapping[str, torch.Tensor], structure: GaugeStructure
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)``: per-scale squared norms of producer and consumer entries.

    Differentiable in the parameters; accumulated in the accumulation dtype of
    the parameters (float32 for half precision).  Identity (G2): the total
    norm contributed by an isolated neuron at scale ``alpha`` is
    ``alpha**2 a + b / alpha**2``.
    """
    s = _check_structure(structure)
    if isinstance(model_or_params, nn.Module):
        params: Mapping[str, torch.Tensor] = s.check_model(model_or_params)
    elif isinstance(model_or_params, Mapping):
        params = model_or_params
    else:
        raise InvalidArgumentType(
            "model_or_params", model_or_params, "an nn.Module or a mapping of parameters"
        )
    return _norms_from(params, s)


def imbalance(
    model_or_params: nn.Module | Mapping[str, torch.Tensor], structure: GaugeStructure
) -> torch.Tensor:
    """Per-scale imbalance ``delta_k = a_k - b_k`` (G3: constant under gradient flow)."""
    a, b = orbit_norms(model_or_params, structure)
    return a - b


def log_imbalance(model: nn.Module, structure: GaugeStructure) -> torch.Tensor:
    """Per-scale log-scale imbalance ``(1/4) log(a_k / b_k)`` (float64, detached).

    It is the log-scale by which neuron ``k`` sits away from its balanced point
    (``0`` when balanced).  A scale without consumer entries (``b = 0``) or
    with no producer norm (``a = 0``) has no balanced point: its entry is
    ``+inf`` or ``-inf`` by this definition, never NaN (``0`` when both vanish).
    """
    a, b = orbit_norms(model, structure)
    a, b = a.detach().double(), b.detach().double()
    out = 0.25 * (torch.log(a) - torch.log(b))
    return torch.where((a == 0) & (b == 0), torch.zeros_like(out), out)


def orbit_tangent(
    model: nn.Module, structure: GaugeStructure, weights: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Tangent vector ``sum_k weights_k t_k`` of the orbit at ``model`` (per parameter).

    Identity: it equals ``d/dε g(ε weights) θ`` at ``ε = 0``, so the directional
    derivative of the model's function along it is 0 (infinitesimal G1).
    """
    s = _check_structure(structure)
    params = s.check_model(model)
    w_ext = _extend(_check_log_scales(s, weights).to(torch.float64))
    out = {}
    for act in s.actions:
        p = params[act.name].detach()
        out[act.name] = (p.to(torch.float64) * _log_factor(act, w_ext, p.ndim)).to(p.dtype)
    return out


def balance_penalty(
    model_or_params: nn.Module | Mapping[str, torch.Tensor],
    structure: GaugeStructure,
    mu: float = 1.0,
) -> torch.Tensor:
    """Norm-balancing penalty ``R(θ) = mu * sum_k delta_k**2`` over compensated scales.

    Identity (G4): ``grad R = 4 mu sum_k delta_k t_k`` is tangent to the orbit,
    so a gradient step on ``R`` alone changes the function only at second
    order, and for an isolated neuron gradient flow gives
    ``d delta / dt = -8 mu (a + b) delta``.
    """
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not mu >= 0:
        raise InvalidArgument("mu", mu, "must be a real number >= 0")
    s = _check_structure(structure)
    a, b = orbit_norms(model_or_params, s)
    delta = (a - b)[s.compensated.to(a.device)]
    return float(mu) * (delta**2).sum()


def log_scale_penalty_step(
    model: nn.Module, structure: GaugeStructure, rate: float = 0.5
) -> torch.Tensor:
    """One preconditioned step on ``R`` in log-scale coordinates only; returns the step ``u``.

    ``u_k = -rate * (dR/du_k) / (8 mu (a_k + b_k)**2)`` at ``u = 0``: the
    gradient of ``R(g(u) θ)`` in log-scale coordinates divided by its diagonal
    Gauss-Newton curvature (``mu`` cancels).  For an isolated neuron this is
    ``u = -rate * delta / (2 (a + b))`` -- the Newton step towards ``delta = 0``
    with ``|u| <= rate / 2`` -- so it cannot blow up the scales.  The step is
    applied with :func:`gauge_transform`, hence the function is unchanged
    exactly (up to one rounding per parameter) whatever the rate, unlike a
    Euclidean step on ``R``, which moves off the orbit at second order.
    Identity: ``dR/du_k = <grad R, t_k>``.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise InvalidArgument("rate", rate, "must be a real number in [0, 1]")
    s = _check_structure(structure)
    params = {k: v.detach().to(torch.float64) for k, v in s.check_model(model).items()}
    u = torch.zeros(s.num_scales, dtype=torch.float64, requires_grad=True)
    r = balance_penalty(transformed_parameters(params, s, u), s, 1.0)
    (grad,) = torch.autograd.grad(r, u)
    a, b = _norms_from(params, s)
    curvature = 8.0 * (a + b) ** 2
    step = torch.where(curvature > 0, -float(rate) * grad / curvature.clamp_min(1e-300), 0.0)
    gauge_transform(model, s, step)
    return step.detach()
