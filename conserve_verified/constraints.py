r"""One constraint interface, three ways to impose it: penalty, hard projection, ACE.

A :class:`Constraint` measures a violation ``v >= 0`` (a 1-D tensor, one entry per
component, e.g. one per boundary) that is differentiable in what it measures; it is
satisfied at tolerance ``eps`` when ``v <= eps`` componentwise.  Shipped constraints:

* :class:`EnergyConstraint` -- ``v_k = mean_i | ||h_k[i]||^2 - E |`` for activations
  ``h_1, ..., h_K`` (one component per boundary); projection ``C_E``;
* :class:`EquivarianceConstraint` -- ``v = mean_{g, i} ||f(rho_in(g) x_i) - rho_out(g)
  f(x_i)||^2 / d_out`` for a model ``f``; projection: the group-averaged model;
* :class:`LinearEquivarianceConstraint` -- ``v = ||W - P(W)||_F^2`` for a weight ``W``;
  projection: the group average ``P(W)`` (parameters).

Strategies (each a callable returning the term to add to the loss):

* :class:`Penalty` ``(lam)``: term ``lam * sum(v)``; no projection, no state.
* :class:`Hard`: projects (``strategy.project(...)``) so the constraint holds exactly;
  the loss term is zero.
* :class:`ACE`: adaptive constrained learning.  A dual variable ``lam_k >= 0`` per
  component and a tolerance schedule ``eps_t`` from loose to tight; term
  ``sum_k lam_k (v_k - eps_t)``; after each optimiser step :meth:`ACE.step` performs
  the projected dual ascent

  .. math:: \lambda \leftarrow \max(0,\ \lambda + \eta\,(v - \varepsilon_t))

  on the measured violation and advances ``t``.  Identities: ``lam >= 0`` after every
  step (theorem A2); at ``eps = 0`` the feasible set of the energy constraint is exactly
  the conserved set ``{h != 0 : h = C_E(h)}`` (theorem A3).

Use in a plain torch training loop:

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) and None
>>> enc, head = nn.Linear(4, 8), nn.Linear(8, 3)
>>> opt = torch.optim.SGD([*enc.parameters(), *head.parameters()], lr=0.02)
>>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
>>> ace = ACE(EnergyConstraint(energy=1.0), dual_lr=0.1,
...           schedule=ToleranceSchedule(start=1.0, end=0.1, steps=200))
>>> for _ in range(400):
...     h = ace.project(enc(x))                 # identity for ACE/Penalty, C_E for Hard
...     loss = nn.functional.cross_entropy(head(h), y) + ace(h)
...     opt.zero_grad(); loss.backward(); opt.step()
...     ace.step()                              # dual ascent, tighten the tolerance
>>> ace.satisfied(), bool((ace.dual >= 0).all())
(True, True)
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from ._math import check_energy_value, conserve, energy, normalize_dims, validate_tensor
from .equivariance import GroupAveraged, Representation, average_linear, check_compatible
from .errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "ACE",
    "Constraint",
    "EnergyConstraint",
    "EquivarianceConstraint",
    "Hard",
    "LinearEquivarianceConstraint",
    "Penalty",
    "Strategy",
    "ToleranceSchedule",
    "dual_update",
]

Reduction = Literal["mean", "max"]


def _check_real(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(name, value, "a real number")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise InvalidArgument(
            name, value, "must be a finite number " + ("> 0" if positive else ">= 0")
        )
    return v


# --------------------------------------------------------------------------- constraints


class Constraint(abc.ABC):
    """A measurable violation ``v(...) >= 0``; satisfied at tolerance ``eps`` iff ``v <= eps``."""

    @abc.abstractmethod
    def violation(self, *args: Any) -> torch.Tensor:
        """1-D tensor of non-negative violations, one per component (differentiable)."""

    @abc.abstractmethod
    def project(self, *args: Any) -> Any:
        """The exact projection onto the constraint set (used by :class:`Hard`)."""


class EnergyConstraint(Constraint):
    """``| ||h||^2 - E | <= eps`` per sample, one component per activation tensor.

    ``violation(h_1, ..., h_K)[k]`` is the mean (or with ``reduction="max"`` the
    largest) over samples of ``| ||h_k[i]||^2 - E |`` with the norm over ``dim``;
    ``project(h) == conserve(h, E, dim)``.  Identity (A3): at ``eps = 0`` the constraint
    holds for a nonzero ``h`` iff ``h == C_E(h)``.
    """

    def __init__(
        self, energy: float = 1.0, dim: int | Sequence[int] = -1, reduction: Reduction = "mean"
    ) -> None:
        self.energy = check_energy_value(energy, torch.float64)
        self.dim = dim
        if reduction not in ("mean", "max"):
            raise InvalidArgument("reduction", reduction, "must be 'mean' or 'max'")
        self.reduction: Reduction = reduction

    def violation(self, *hs: torch.Tensor) -> torch.Tensor:
        if not hs:
            raise InvalidArgument("hs", hs, "pass at least one activation tensor")
        out = []
        for k, h in enumerate(hs):
            h = validate_tensor(h, f"hs[{k}]")
            normalize_dims(h, self.dim)
            gap = (energy(h, self.dim) - self.energy).abs()
            out.append(gap.mean() if self.reduction == "mean" else gap.max())
        return torch.stack(out)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return conserve(h, self.energy, self.dim)

    def __repr__(self) -> str:
        return (
            f"EnergyConstraint(energy={self.energy}, dim={self.dim}, reduction={self.reduction!r})"
        )


class EquivarianceConstraint(Constraint):
    """``f(rho_in(g) x) == rho_out(g) f(x)`` for all ``g`` in the group, measured on inputs.

    ``violation(f, x)`` is the one-component tensor ``mean_{g, i} ||f(rho_in(g) x_i) -
    rho_out(g) f(x_i)||^2 / d_out`` (0 iff ``f`` is equivariant on the batch);
    ``project(f)`` is the exactly equivariant :class:`~.equivariance.GroupAveraged` model.
    """

    def __init__(self, rep_in: Representation, rep_out: Representation) -> None:
        check_compatible(rep_in, rep_out)
        self.rep_in = rep_in
        self.rep_out = rep_out

    def violation(self, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if not callable(f):
            raise InvalidArgumentType("f", f, "a callable tensor -> tensor")
        x = self.rep_in._check_input(x)
        order = self.rep_in.order
        batch = x.shape[: x.ndim - len(self.rep_in.event_shape)]
        xs = self.rep_in.act_all(x).reshape(-1, *x.shape[len(batch) :])
        ys = f(xs)
        ys = ys.reshape(order, *batch, *self.rep_out.event_shape)
        e = self.rep_in.identity
        gaps = [ys[g] - self.rep_out.act(ys[e], g) for g in range(order) if g != e]
        if not gaps:
            return ys.new_zeros(1)
        return torch.stack(gaps).pow(2).mean().reshape(1)

    def project(self, f: Callable[[torch.Tensor], torch.Tensor]) -> GroupAveraged:
        return GroupAveraged(f, self.rep_in, self.rep_out)

    def __repr__(self) -> str:
        return f"EquivarianceConstraint({self.rep_in.name!r} -> {self.rep_out.name!r})"


class LinearEquivarianceConstraint(Constraint):
    """``rho_out(g) W == W rho_in(g)`` for a weight ``W`` of shape ``(d_out, d_in)``.

    ``violation(W) = [||W - P(W)||_F^2]`` and ``project(W) = P(W)`` (the group average,
    an orthogonal projection for orthogonal representations; theorem A1).
    """

    def __init__(self, rep_in: Representation, rep_out: Representation) -> None:
        check_compatible(rep_in, rep_out)
        self.rep_in = rep_in
        self.rep_out = rep_out

    def violation(self, weight: torch.Tensor) -> torch.Tensor:
        p = average_linear(weight, self.rep_in, self.rep_out)
        return (weight - p).pow(2).sum().reshape(1)

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        return average_linear(weight, self.rep_in, self.rep_out)


# --------------------------------------------------------------------------- strategies


class Strategy(abc.ABC):
    """How a :class:`Constraint` is imposed in training.

    Protocol per training step: ``out = strategy.project(out)`` (where the strategy
    projects), ``loss = task_loss + strategy(*args)``, backward, optimiser step,
    ``strategy.step()``.  ``last_violation`` holds the detached violation measured by
    the latest call.
    """

    def __init__(self, constraint: Constraint) -> None:
        if not isinstance(constraint, Constraint):
            raise InvalidArgumentType("constraint", constraint, "a Constraint")
        self.constraint = constraint
        self.last_violation: torch.Tensor | None = None

    def measure(self, *args: Any) -> torch.Tensor:
        """Measure the violation of ``args``, record it detached, and return it."""
        v = self.constraint.violation(*args)
        self.last_violation = v.detach()
        return v

    def project(self, *args: Any) -> Any:
        """Identity on the first argument (only :class:`Hard` projects)."""
        return args[0]

    @abc.abstractmethod
    def __call__(self, *args: Any) -> torch.Tensor:
        """Scalar term to add to the loss; records ``last_violation``."""

    def step(self) -> None:  # noqa: B027 - a deliberate no-op default
        """Update internal state after an optimiser step (no-op except for ACE)."""

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state for logging."""
        v = self.last_violation
        return {"violation": None if v is None else v.tolist()}


class Penalty(Strategy):
    """Soft constraint: loss term ``lam * sum(v)`` with a fixed weight ``lam >= 0``."""

    def __init__(self, constraint: Constraint, lam: float) -> None:
        super().__init__(constraint)
        self.lam = _check_real("lam", lam)

    def __call__(self, *args: Any) -> torch.Tensor:
        return self.lam * self.measure(*args).sum()

    def __repr__(self) -> str:
        return f"Penalty({self.constraint!r}, lam={self.lam})"


class Hard(Strategy):
    """Hard constraint by exact projection: ``project`` applies ``constraint.project``.

    The loss term is zero (the measured violation is still recorded), e.g. for an
    :class:`EnergyConstraint` ``project(h) == C_E(h)`` and the violation of the
    projected activations is at rounding level.
    """

    def project(self, *args: Any) -> Any:
        return self.constraint.project(*args)

    def __call__(self, *args: Any) -> torch.Tensor:
        v = self.measure(*args)
        return v.sum() * 0.0

    def __repr__(self) -> str:
        return f"Hard({self.constraint!r})"


class ToleranceSchedule:
    """Tolerance homotopy ``eps_t`` from ``start`` (loose) to ``end`` (tight) over ``steps``.

    ``kind="geometric"``: ``eps_t = start * (end / start) ** min(t / steps, 1)``;
    ``kind="linear"``: ``eps_t = start + (end - start) * min(t / steps, 1)``.
    ``eps_t`` is non-increasing and equals ``end`` for ``t >= steps``.
    """

    def __init__(
        self,
        start: float,
        end: float,
        steps: int,
        kind: Literal["geometric", "linear"] = "geometric",
    ) -> None:
        self.start = _check_real("start", start)
        self.end = _check_real("end", end)
        if self.end > self.start:
            raise InvalidArgument(
                "end", end, f"must be <= start={self.start} (tighten, not loosen)"
            )
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise InvalidArgumentType("steps", steps, "an int")
        if steps < 1:
            raise InvalidArgument("steps", steps, "must be >= 1")
        if kind not in ("geometric", "linear"):
            raise InvalidArgument("kind", kind, "must be 'geometric' or 'linear'")
        if kind == "geometric" and self.end == 0.0:
            raise InvalidArgument("end", end, "must be > 0 for a geometric schedule")
        self.steps = steps
        self.kind = kind

    def __call__(self, t: int) -> float:
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise InvalidArgument("t", t, "must be an int >= 0")
        s = min(t / self.steps, 1.0)
        if s >= 1.0:
            return self.end
        if self.kind == "geometric":
            return self.start * (self.end / self.start) ** s
        return self.start + (self.end - self.start) * s

    def __repr__(self) -> str:
        return (
            f"ToleranceSchedule({self.start}, {self.end}, steps={self.steps}, kind={self.kind!r})"
        )


def dual_update(
    dual: torch.Tensor, violation: torch.Tensor, tolerance: float, lr: float
) -> torch.Tensor:
    """Projected dual ascent ``max(0, dual + lr * (violation - tolerance))``.

    Identity (theorem A2): the result is ``>= 0`` elementwise whenever ``dual >= 0``,
    for every violation, tolerance and ``lr > 0``; it is non-finite only if an input is.
    """
    return torch.clamp(dual + lr * (violation - tolerance), min=0.0)


class ACE(Strategy):
    """Adaptive constrained learning: dual variables and a tolerance homotopy.

    Args:
        constraint: the constraint; its violation has ``K`` components, each with a
            dual variable ``lam_k`` (allocated at the first call, initialised to ``init``).
        dual_lr: dual step size ``eta > 0``.
        schedule: tolerance schedule ``eps_t`` (loose to tight).
        init: initial dual value ``>= 0`` (default 0: start unconstrained).
        aim: fraction in ``(0, 1]`` of the tolerance that the dual ascent aims at.
            Sub-gradient and stochastic steps make the violation oscillate around
            the level the duals settle at; aiming at ``aim * eps_t`` leaves that
            oscillation room inside ``eps_t`` (default 0.5).

    Loss term: ``sum_k lam_k (v_k - aim * eps_t)`` (its gradient is that of
    ``sum_k lam_k v_k``).  :meth:`step` applies :func:`dual_update` with the last
    measured violation and target ``aim * eps_t``, and advances ``t``.
    :meth:`satisfied` tells whether the last measured violation is within the final
    tolerance ``schedule.end``.
    """

    def __init__(
        self,
        constraint: Constraint,
        dual_lr: float,
        schedule: ToleranceSchedule,
        init: float = 0.0,
        aim: float = 0.5,
    ) -> None:
        super().__init__(constraint)
        self.dual_lr = _check_real("dual_lr", dual_lr, positive=True)
        if not isinstance(schedule, ToleranceSchedule):
            raise InvalidArgumentType("schedule", schedule, "a ToleranceSchedule")
        self.schedule = schedule
        self.init = _check_real("init", init)
        self.aim = _check_real("aim", aim, positive=True)
        if self.aim > 1.0:
            raise InvalidArgument("aim", aim, "must be in (0, 1]")
        self.dual: torch.Tensor | None = None
        self.t = 0

    @property
    def tolerance(self) -> float:
        """Current tolerance ``eps_t``."""
        return self.schedule(self.t)

    def __call__(self, *args: Any) -> torch.Tensor:
        v = self.measure(*args)
        if self.dual is None or self.dual.shape != v.shape:
            if self.dual is not None:
                raise InvalidArgument(
                    "violation",
                    tuple(v.shape),
                    f"has {v.numel()} components but the dual has {self.dual.numel()}",
                )
            self.dual = torch.full(v.shape, self.init, dtype=torch.float64)
        lam = self.dual.to(device=v.device, dtype=v.dtype)
        return (lam * (v - self.aim * self.tolerance)).sum()

    def step(self) -> None:
        """Dual ascent on the last measured violation, then ``t += 1``."""
        if self.last_violation is None or self.dual is None:
            raise InvalidArgument("step", None, "call the strategy on a batch before step()")
        v = self.last_violation.to(device="cpu", dtype=torch.float64)
        self.dual = dual_update(self.dual, v, self.aim * self.tolerance, self.dual_lr)
        self.t += 1

    def satisfied(self, violation: torch.Tensor | None = None) -> bool:
        """Whether ``violation`` (default: the last measured one) is ``<= schedule.end``."""
        v = self.last_violation if violation is None else violation
        if v is None:
            raise InvalidArgument("violation", None, "nothing measured yet")
        return bool((v.detach() <= self.schedule.end).all())

    def state(self) -> dict[str, Any]:
        out = super().state()
        out.update(
            dual=None if self.dual is None else self.dual.tolist(),
            tolerance=self.tolerance,
            t=self.t,
        )
        return out

    def __repr__(self) -> str:
        return f"ACE({self.constraint!r}, dual_lr={self.dual_lr}, schedule={self.schedule!r})"
