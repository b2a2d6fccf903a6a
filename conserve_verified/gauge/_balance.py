r"""Orbit selection: closed-form balancing, gauge-adapted coordinates, an imbalance monitor.

G2: for an isolated neuron with ``a = ||w_in||**2`` and ``b = ||w_out||**2`` the
norm ``alpha**2 a + b / alpha**2`` along its orbit is minimised at
``alpha**4 = b / a`` with value ``2 sqrt(a b)``.  In a deeper network the
neurons of consecutive layers share weights, so the norm
``N(u) = sum_entries p**2 exp(2 (u_prod - u_cons))`` couples them; ``N`` is
convex in the log-scales ``u`` and ``dN/du_k = 2 delta_k``, so its minimum is
the point where every neuron is balanced (``a_k = b_k``).  :func:`balance`
reaches it by sweeps of the closed form: neurons that share no parameter
entry (found by colouring the layers) take their G2 step simultaneously, and
each step can only lower ``N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgument, InvalidArgumentType, check_int
from ..tolerances import tolerance
from ._action import (
    _check_structure,
    gauge_transform,
    log_imbalance,
    orbit_norms,
    transformed_parameters,
)
from ._structure import GaugeStructure, gauge_structure

#: What :func:`balance` and :func:`gauge_coordinates` accept as ``structure``:
#: a traced :class:`GaugeStructure`, or an example input to trace the model with.
StructureOrInput = GaugeStructure | torch.Tensor | Sequence[torch.Tensor]


def _structure_for(model: nn.Module, structure: Any) -> GaugeStructure:
    """``structure`` itself, or ``gauge_structure(model, structure)`` for an example input."""
    if isinstance(structure, GaugeStructure):
        return structure
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module")
    if structure is None:
        raise InvalidArgument(
            "structure",
            None,
            "needed: pass an example input, balance(model, x), or a structure from "
            "gauge_structure(model, x)",
        )
    is_input = isinstance(structure, torch.Tensor) or (
        isinstance(structure, (tuple, list))
        and bool(structure)
        and all(isinstance(t, torch.Tensor) for t in structure)
    )
    if not is_input:
        raise InvalidArgumentType(
            "structure", structure, "a GaugeStructure or an example input tensor (or tuple)"
        )
    return gauge_structure(model, structure)


__all__ = [
    "BalanceReport",
    "GaugeCoordinates",
    "ImbalanceMonitor",
    "balance",
    "balanceable",
    "from_gauge_coordinates",
    "gauge_coordinates",
]


@dataclass(frozen=True)
class BalanceReport:
    """Outcome of :func:`balance`.

    Attributes:
        log_scales: total log-scales applied, ``θ_balanced = g(log_scales) θ``.
        sweeps: closed-form sweeps taken.
        max_log_imbalance: ``max_k |(1/4) log(a_k / b_k)|`` over balanceable scales after.
        converged: whether ``max_log_imbalance <= tol``.
        norm_before, norm_after: ``||θ||**2`` over the parameters the gauge touches.
    """

    log_scales: torch.Tensor
    sweeps: int
    max_log_imbalance: float
    converged: bool
    norm_before: float
    norm_after: float


def balanceable(model: nn.Module, structure: GaugeStructure) -> torch.Tensor:
    """Bool ``(K,)``: scales whose orbit norm has a minimum (``a_k > 0`` and ``b_k > 0``)."""
    a, b = orbit_norms(model, structure)
    return (a.detach() > 0) & (b.detach() > 0) & structure.compensated.to(a.device)


def _colours(s: GaugeStructure) -> list[torch.Tensor]:
    """Partition the scales into classes that share no parameter entry."""
    # block = the set of parameters a scale produces; scales in one block never
    # share an entry unless a parameter produces and consumes the same block.
    sig: dict[int, tuple[str, ...]] = {}
    for act in s.actions:
        if act.prod is not None:
            for k in act.prod.unique().tolist():
                sig[k] = (*sig.get(k, ()), act.name)
    for k in range(s.num_scales):
        sig.setdefault(k, ())
    blocks: dict[tuple[str, ...], list[int]] = {}
    for k, key in sig.items():
        blocks.setdefault(key, []).append(k)
    keys = list(blocks)
    index = {key: i for i, key in enumerate(keys)}
    block_of = {k: index[key] for k, key in sig.items()}
    adj: list[set[int]] = [set() for _ in keys]
    for act in s.actions:
        if act.prod is None or act.cons is None:
            continue
        pb = {block_of[k] for k in act.prod.unique().tolist() if k < s.num_scales}
        cb = {block_of[k] for k in act.cons.unique().tolist() if k < s.num_scales}
        if pb & cb:
            raise InvalidArgument(
                "structure",
                act.name,
                "a parameter both produces and consumes the same scales (weight sharing "
                "across its own output); balance() does not handle it",
            )
        for i in pb:
            adj[i] |= cb
        for j in cb:
            adj[j] |= pb
    colour: dict[int, int] = {}
    for i in sorted(range(len(keys)), key=lambda i: -len(adj[i])):
        used = {colour[j] for j in adj[i] if j in colour}
        colour[i] = next(c for c in range(len(keys) + 1) if c not in used)
    out: dict[int, list[int]] = {}
    for k in range(s.num_scales):
        out.setdefault(colour[block_of[k]], []).append(k)
    return [torch.tensor(v, dtype=torch.long) for _, v in sorted(out.items())]


def _touched_norm(model: nn.Module, s: GaugeStructure) -> float:
    params = s.check_model(model)
    return float(sum(params[a.name].detach().double().pow(2).sum() for a in s.actions))


def balance(
    model: nn.Module,
    structure: StructureOrInput | None = None,
    tol: float | None = None,
    max_sweeps: int = 500,
) -> BalanceReport:
    """Move ``model`` (in place) to the minimum-norm point of its gauge orbit.

    Identity (G2): afterwards ``a_k = b_k`` for every balanceable scale (within
    ``tol`` in log-scale), ``||θ||**2`` is the minimum over the orbit, and the
    model's function is unchanged (G1).  A one-hidden-layer network is
    balanced exactly by one sweep; deeper networks need a few sweeps.

    Scales without a minimum on their orbit (no consumer entries, e.g. the
    common scale in front of a conservation boundary, or a dead neuron with
    ``a = 0``) are left unchanged.

    Args:
        structure: the model's :class:`GaugeStructure`, or an example input
            (a tensor or tuple of tensors) with which ``balance`` traces it
            itself: ``balance(model, x)``.
        tol: stop when ``max |(1/4) log(a/b)| <= tol``; default: the
            ``function_rtol`` of the parameters' dtype.
        max_sweeps: upper bound on the sweeps.
    """
    s = _check_structure(_structure_for(model, structure))
    params = s.check_model(model)
    check_int("max_sweeps", max_sweeps)
    if tol is None:
        dtypes = [params[a.name].dtype for a in s.actions]
        tol = max((tolerance(d).function_rtol for d in dtypes), default=0.0)
    elif isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise InvalidArgument("tol", tol, "must be a real number >= 0")
    total = torch.zeros(s.num_scales, dtype=torch.float64)
    norm_before = _touched_norm(model, s)
    ok = balanceable(model, s).cpu()
    colours = [c[ok[c]] for c in _colours(s)]
    colours = [c for c in colours if c.numel()]

    def worst() -> float:
        li = log_imbalance(model, s).cpu()[ok]
        return float(li.abs().max()) if li.numel() else 0.0

    sweeps = 0
    err = worst()
    while err > tol and sweeps < max_sweeps:
        for c in colours:
            a, b = orbit_norms(model, s)
            a, b = a.detach().double().cpu(), b.detach().double().cpu()
            step = torch.zeros(s.num_scales, dtype=torch.float64)
            step[c] = 0.25 * (torch.log(b[c]) - torch.log(a[c]))
            gauge_transform(model, s, step)
            total += step
        sweeps += 1
        err = worst()
    return BalanceReport(total, sweeps, err, err <= tol, norm_before, _touched_norm(model, s))


@dataclass(frozen=True)
class GaugeCoordinates:
    """Gauge-adapted coordinates ``θ = g(log_scales) θ_balanced``.

    ``balanced`` is the invariant part (the same for every point of the orbit,
    up to the balancing tolerance); ``log_scales`` is the per-scale log-scale
    imbalance (0 at the balanced point; 0 for scales without a minimum).
    """

    balanced: dict[str, torch.Tensor]
    log_scales: torch.Tensor


def gauge_coordinates(
    model: nn.Module, structure: StructureOrInput | None = None, tol: float | None = None
) -> GaugeCoordinates:
    """Split ``model``'s parameters into (invariant part, per-scale log-scale imbalance).

    Identity: ``from_gauge_coordinates(gauge_coordinates(m, s), s) == params(m)``
    (up to rounding) and ``gauge_coordinates`` of ``g(u) m`` has the same
    ``balanced`` part as that of ``m``.
    """
    import copy

    structure = _structure_for(model, structure)
    twin = copy.deepcopy(model)
    report = balance(twin, structure, tol=tol)
    balanced = {k: v.detach().clone() for k, v in twin.named_parameters()}
    return GaugeCoordinates(balanced, -report.log_scales)


def from_gauge_coordinates(
    coords: GaugeCoordinates, structure: GaugeStructure
) -> dict[str, torch.Tensor]:
    """Parameters ``g(log_scales) θ_balanced`` (inverse of :func:`gauge_coordinates`)."""
    if not isinstance(coords, GaugeCoordinates):
        raise InvalidArgumentType("coords", coords, "GaugeCoordinates")
    params = {k: v.to(torch.float64) for k, v in coords.balanced.items()}
    out = transformed_parameters(params, structure, coords.log_scales)
    return {k: out[k].to(coords.balanced[k].dtype) for k in coords.balanced}


@dataclass
class ImbalanceMonitor:
    """Records the imbalance of a model during training (scale drift).

    Each :meth:`record` appends a dict with the step, ``max_abs_delta``
    (``max_k |a_k - b_k|``), ``mean_abs_log_imbalance`` and
    ``max_abs_log_imbalance`` (over balanceable scales, in log-scale units),
    and ``norm`` (``||θ||**2`` of the parameters the gauge touches).

    >>> from torch import nn
    >>> import torch
    >>> m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> mon = ImbalanceMonitor(m, torch.zeros(1, 3))
    >>> sorted(mon.record(0))
    ['max_abs_delta', 'max_abs_log_imbalance', 'mean_abs_log_imbalance', 'norm', 'step']
    """

    model: nn.Module
    example_input: Any = None
    structure: GaugeStructure | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.structure is None:
            if self.example_input is None:
                raise InvalidArgument(
                    "example_input", None, "needed to trace the model when no structure is given"
                )
            from ._structure import gauge_structure

            self.structure = gauge_structure(self.model, self.example_input)

    def record(self, step: int) -> dict[str, float]:
        """Measure now and append to :attr:`history`; returns the new entry."""
        s = self.structure
        assert s is not None
        a, b = orbit_norms(self.model, s)
        delta = (a - b).detach().double()
        ok = (a.detach() > 0) & (b.detach() > 0) & s.compensated.to(a.device)
        li = log_imbalance(self.model, s)[ok].abs()
        entry = {
            "step": float(step),
            "max_abs_delta": float(delta.abs().max()) if delta.numel() else 0.0,
            "mean_abs_log_imbalance": float(li.mean()) if li.numel() else 0.0,
            "max_abs_log_imbalance": float(li.max()) if li.numel() else 0.0,
            "norm": _touched_norm(self.model, s),
        }
        if not all(math.isfinite(v) for v in entry.values()):
            entry = {k: (v if math.isfinite(v) else math.inf) for k, v in entry.items()}
        self.history.append(entry)
        return entry

    def series(self, key: str) -> Sequence[float]:
        """The recorded values of one key, in order."""
        return [h[key] for h in self.history]
