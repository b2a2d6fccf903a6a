r"""Energy-first architectures and the training-efficiency metric of claim M3.

Architectures (:data:`ARCHITECTURES`), each paired with the conventional
baseline it is compared with, at matched parameter count (identical, or within
5% for ``mlp+free_energy``, whose per-unit noise scales add ``width`` parameters
per boundary):

======================= ========== =====================================================
name                    baseline   model and objective
======================= ========== =====================================================
``mlp``                 --         MLP (``width``, ``depth`` stages), cross entropy
                                   ``L_CE``
``resmlp``              --         residual MLP: stem, ``h_{k+1} = h_k + ReLU(W_k h_k +
                                   b_k)``, head (the layer shapes of ``mlp``), ``L_CE``
``cnn``                 --         small CNN (:func:`~conserve_verified.models.cnn_stages`)
``mlp+energy``          ``mlp``    activation-energy first: ``L_CE + λ_E · E``, ``E =
                                   mean_k mean_i ||h_k[i]||² / n_k`` (boundary
                                   activations)
``mlp+conserved``       ``mlp``    ``C_E`` at every boundary (unit RMS per feature),
                                   ``L_CE``
``mlp+free_energy``     ``mlp``    free energy (variational, Gaussian): at each boundary
                                   ``z = μ + σ ⊙ ε``, ``ε ~ N(0, I)``, ``σ = exp(s)``
                                   learned per unit; ``L_CE(z) + β · KL``, ``KL =
                                   mean_k mean_i KL(N(μ_i, σ²) ‖ N(0, I)) / n_k``, the
                                   negative ELBO of a stochastic-boundary network with
                                   a standard-normal prior; ``z = μ`` at evaluation
``resmlp+least_action`` ``resmlp`` least action: ``L_CE + λ_K · K``, kinetic term ``K =
                                   Σ_k mean_i ||h_{k+1}[i] − h_k[i]||² / n`` over
                                   consecutive boundaries (the continuous-depth kinetic
                                   regulariser)
``cnn+conserved``       ``cnn``    ``C_E`` at every boundary of the CNN
======================= ========== =====================================================

``KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²)`` per unit.  CNNs need an
image or signal input (``(C, L)`` or ``(C, H, W)``); tabular inputs have none.

Training (:func:`train_curve`): Adam, a fixed number of optimizer steps,
mini-batches drawn from seeded epoch permutations; test accuracy evaluated at
step 0 and every ``eval_every`` steps up to the budget (the learning curve).

**Training efficiency** (defined before any run; not changed after):

* primary -- *steps to target* (:func:`steps_to_target`): the first optimizer
  step at which the learning curve, linearly interpolated between
  evaluations, reaches the target test accuracy ``τ``; a run that never
  reaches it is *censored* at the step budget (its value is the budget).
  ``τ = TARGET_FRACTION · (mean final test accuracy of the comparison's
  baseline over seeds)`` on the same dataset, ``TARGET_FRACTION = 0.9``;
* gain % (:func:`efficiency_gain`) ``= 100 · (mean_b − mean_v) / mean_b`` of
  the steps to target of baseline ``b`` and energy-first variant ``v`` paired
  by seed (same batch order, same initial weights where the shapes agree), with
  a 95% paired bootstrap percentile CI over seeds and a paired t-test;
* secondary -- accuracy at the step budget, area under the learning curve
  (:func:`curve_auc`, mean accuracy over the budget), and training wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import InvalidArgument, InvalidArgumentType
from .models import build_pipeline, cnn_stages, mlp_stages
from .operators import Pipeline
from .runner.verdict import Estimate

__all__ = [
    "ARCHITECTURES",
    "ENERGY_LAMBDA",
    "FREE_ENERGY_BETA",
    "KINETIC_LAMBDA",
    "TARGET_FRACTION",
    "ArchSpec",
    "Curve",
    "GaussianBoundary",
    "Residual",
    "StepsToTarget",
    "activation_energy",
    "build_model",
    "curve_auc",
    "efficiency_gain",
    "kinetic_energy",
    "parameter_count",
    "steps_to_target",
    "supports",
    "train_curve",
]

#: ``λ_E`` of ``mlp+energy``: the λ at which the λ-sweep measures M2 (``ANOVA_LAMBDA``),
#: inside its no-loss range for the MLP (chosen from the sweep, never on this test set).
ENERGY_LAMBDA = 1e-2
#: ``λ_K`` of ``resmlp+least_action`` (same order as ``λ_E``; fixed before running).
KINETIC_LAMBDA = 1e-2
#: ``β`` of ``mlp+free_energy`` (the KL weight; same as ``λ_E``, fixed before running).
FREE_ENERGY_BETA = 1e-2
#: Initial noise scale ``σ`` of the free-energy boundaries.
FREE_ENERGY_SIGMA0 = 0.1
#: Target accuracy = this fraction of the baseline's mean final test accuracy.
TARGET_FRACTION = 0.9


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: its family (``mlp``/``resmlp``/``cnn``), baseline and objective."""

    name: str
    family: str
    baseline: str | None
    objective: str
    description: str


ARCHITECTURES: dict[str, ArchSpec] = {
    "mlp": ArchSpec("mlp", "mlp", None, "ce", "plain MLP"),
    "resmlp": ArchSpec("resmlp", "resmlp", None, "ce", "residual MLP"),
    "cnn": ArchSpec("cnn", "cnn", None, "ce", "small CNN"),
    "mlp+energy": ArchSpec(
        "mlp+energy", "mlp", "mlp", "energy", "activation energy first (L_CE + λ_E·E)"
    ),
    "mlp+conserved": ArchSpec("mlp+conserved", "mlp", "mlp", "ce", "C_E at every boundary"),
    "mlp+free_energy": ArchSpec(
        "mlp+free_energy", "mlp", "mlp", "free_energy", "free energy (Gaussian boundaries + KL)"
    ),
    "resmlp+least_action": ArchSpec(
        "resmlp+least_action", "resmlp", "resmlp", "kinetic", "least action (L_CE + λ_K·K)"
    ),
    "cnn+conserved": ArchSpec("cnn+conserved", "cnn", "cnn", "ce", "C_E at every CNN boundary"),
}


def _arch(name: object) -> ArchSpec:
    if not isinstance(name, str):
        raise InvalidArgumentType("arch", name, "a str")
    if name not in ARCHITECTURES:
        raise InvalidArgument("arch", name, f"unknown architecture; valid: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def supports(arch: str, input_shape: Sequence[int]) -> bool:
    """Whether ``arch`` applies to ``input_shape`` (a CNN needs ``(C, L)`` or ``(C, H, W)``)."""
    return _arch(arch).family != "cnn" or len(tuple(input_shape)) in (2, 3)


class Residual(nn.Module):
    """Residual step ``h + ReLU(W h + b)`` of width ``width`` (one ``Linear``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + torch.relu(self.linear(h))


class GaussianBoundary(nn.Module):
    """Stochastic boundary ``z = μ + exp(s) ⊙ ε`` (training) or ``z = μ`` (evaluation).

    After a training-mode forward, :attr:`kl` holds the batch mean of
    ``Σ_i ½ (μ_i² + σ_i² − 1 − 2 s_i) / n`` (the per-feature KL to ``N(0, I)``).
    """

    def __init__(self, width: int, sigma0: float = FREE_ENERGY_SIGMA0) -> None:
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((width,), math.log(sigma0)))
        self.kl: torch.Tensor = torch.zeros(())

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        s = self.log_sigma
        sigma2 = torch.exp(2.0 * s)
        kl = 0.5 * (mu.pow(2) + sigma2 - 1.0 - 2.0 * s)
        self.kl = kl.mean()
        if not self.training:
            return mu
        return mu + torch.exp(s) * torch.randn_like(mu)


def build_model(
    arch: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: int = 64,
    depth: int = 4,
    cnn_width: int = 16,
    cnn_depth: int = 3,
) -> Pipeline:
    """The :class:`~conserve_verified.Pipeline` of ``arch`` (see the module table).

    Identity: ``mlp``, ``mlp+energy``, ``mlp+conserved``, ``resmlp`` and
    ``resmlp+least_action`` have the same layer shapes, built in the same order,
    so the same torch seed gives them the same initial weights.
    """
    spec = _arch(arch)
    shape = tuple(int(s) for s in input_shape)
    if not supports(arch, shape):
        raise InvalidArgument(
            "input_shape", shape, f"{arch} needs (C, L) or (C, H, W) inputs; tabular has none"
        )
    if spec.family == "cnn":
        stages = cnn_stages(shape, num_classes, cnn_width, cnn_depth)
        return build_pipeline(
            stages, "conserved" if arch.endswith("conserved") else "baseline", shape
        )
    stages = mlp_stages(shape, num_classes, width, depth)
    if spec.family == "resmlp":
        hidden: list[nn.Module] = [stages[0]]
        hidden += [Residual(width) for _ in range(depth - 2)]
        # reuse the MLP's initial weights: same shapes, same construction order
        for res, stage in zip(hidden[1:], stages[1:-1], strict=True):
            assert isinstance(res, Residual) and isinstance(stage, nn.Sequential)
            res.linear.load_state_dict(stage[0].state_dict())
        return Pipeline(*hidden, stages[-1])
    if arch == "mlp+conserved":
        return build_pipeline(stages, "conserved", shape)
    if arch == "mlp+free_energy":
        wrapped: list[nn.Module] = [nn.Sequential(s, GaussianBoundary(width)) for s in stages[:-1]]
        return Pipeline(*wrapped, stages[-1])
    return Pipeline(*stages)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (``sum(p.numel())`` over ``requires_grad`` tensors)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def activation_energy(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """``E = mean_k mean_i ||h_k[i]||² / n_k`` over boundary activations ``h_k`` (0 if none).

    The λ-sweep's energy (:mod:`conserve_verified.runner.workloads`).
    """
    if not states:
        return torch.zeros(())
    return torch.stack([h.flatten(1).pow(2).mean(1).mean() for h in states]).mean()


def kinetic_energy(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """``K = Σ_k mean_i ||h_{k+1}[i] − h_k[i]||² / n`` over consecutive boundary states.

    ``n`` is the number of features of a state; 0 for fewer than two states.
    Raises :class:`InvalidArgument` when consecutive states differ in shape.
    """
    if len(states) < 2:
        return torch.zeros(())
    terms = []
    for k in range(len(states) - 1):
        a, b = states[k], states[k + 1]
        if a.shape != b.shape:
            raise InvalidArgument(
                "states", [tuple(s.shape) for s in states], "consecutive states need equal shapes"
            )
        terms.append((b - a).flatten(1).pow(2).mean(1).mean())
    return torch.stack(terms).sum()


def _capture(model: Pipeline, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def hook(h: torch.Tensor, _i: int) -> torch.Tensor:
        captured.append(h)
        return h

    with model.boundary_hook(hook):
        logits = model(x)
    return logits, captured


def objective(arch: str, model: Pipeline, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss of ``arch`` on a batch (module table): ``L_CE`` plus its term."""
    spec = _arch(arch)
    if spec.objective == "ce":
        return nn.functional.cross_entropy(model(x), y)
    if spec.objective == "free_energy":
        logits = model(x)
        kls = [m.kl for m in model.modules() if isinstance(m, GaussianBoundary)]
        kl = torch.stack(kls).mean() if kls else torch.zeros(())
        return nn.functional.cross_entropy(logits, y) + FREE_ENERGY_BETA * kl
    logits, states = _capture(model, x)
    ce = nn.functional.cross_entropy(logits, y)
    if spec.objective == "energy":
        return ce + ENERGY_LAMBDA * activation_energy(states)
    return ce + KINETIC_LAMBDA * kinetic_energy(states)


@dataclass(frozen=True)
class Curve:
    """A learning curve: test accuracy ``acc[j]`` after ``steps[j]`` optimizer steps."""

    steps: list[int]
    acc: list[float]
    train_seconds: float
    final_loss: float


@torch.no_grad()
def _accuracy(model: Pipeline, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    out = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return out


def train_curve(
    arch: str,
    model: Pipeline,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    *,
    steps: int,
    eval_every: int,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 64,
) -> Curve:
    """Train ``model`` with ``arch``'s objective for ``steps`` Adam steps; its learning curve.

    Identity: ``curve.steps == [0, e, 2e, ..., steps]`` (the budget is always
    the last point); the batch order depends only on ``seed``; evaluation time
    is not in ``train_seconds``.  Raises :class:`InvalidArgument` for a
    non-finite loss.
    """
    for name, v, low in (
        ("steps", steps, 1),
        ("eval_every", eval_every, 1),
        ("batch_size", batch_size, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise InvalidArgument(name, v, f"must be an int >= {low}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = x_train.shape[0]
    order = torch.randperm(n, generator=gen)
    pos = 0
    marks = sorted({*range(0, steps, eval_every), steps})
    curve_steps, curve_acc = [0], [_accuracy(model, x_eval, y_eval)]
    model.train()
    seconds, loss_v = 0.0, math.nan
    for step in range(1, steps + 1):
        if pos + batch_size > n and pos > 0:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        t0 = time.perf_counter()
        loss = objective(arch, model, x_train[idx], y_train[idx])
        if not bool(torch.isfinite(loss)):
            raise InvalidArgument("training loss", float(loss), f"became non-finite at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        loss_v = float(loss.detach())
        if step in marks:
            curve_steps.append(step)
            curve_acc.append(_accuracy(model, x_eval, y_eval))
    model.eval()
    return Curve(curve_steps, curve_acc, seconds, loss_v)


def _curve(steps: Sequence[float], acc: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(list(steps), dtype=np.float64)
    a = np.asarray(list(acc), dtype=np.float64)
    if s.ndim != 1 or s.size < 1 or s.shape != a.shape:
        raise InvalidArgument("steps/acc", (s.shape, a.shape), "need equal 1-D lengths >= 1")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(a))):
        raise InvalidArgument("steps/acc", (list(steps), list(acc)), "contain NaN or Inf")
    if s.size > 1 and not np.all(np.diff(s) > 0):
        raise InvalidArgument("steps", list(steps), "must be strictly increasing")
    return s, a


@dataclass(frozen=True)
class StepsToTarget:
    """Steps to reach the target (the budget when censored) and whether it was censored."""

    steps: float
    censored: bool


def steps_to_target(steps: Sequence[float], acc: Sequence[float], target: float) -> StepsToTarget:
    """First step at which the linearly interpolated curve reaches ``target``; censored at the end.

    Identity: with ``j`` the first index such that ``acc[j] >= target``, the
    value is ``steps[0]`` if ``j == 0``, else ``s_{j-1} + (target − a_{j-1}) ·
    (s_j − s_{j-1}) / (a_j − a_{j-1})``; if no point reaches it, it is
    ``StepsToTarget(steps[-1], censored=True)`` (the budget).
    """
    s, a = _curve(steps, acc)
    if (
        isinstance(target, bool)
        or not isinstance(target, (int, float))
        or not math.isfinite(target)
    ):
        raise InvalidArgument("target", target, "must be a finite real number")
    hit = np.nonzero(a >= target)[0]
    if hit.size == 0:
        return StepsToTarget(float(s[-1]), True)
    j = int(hit[0])
    if j == 0:
        return StepsToTarget(float(s[0]), False)
    frac = (target - a[j - 1]) / (a[j] - a[j - 1])
    return StepsToTarget(float(s[j - 1] + frac * (s[j] - s[j - 1])), False)


def curve_auc(steps: Sequence[float], acc: Sequence[float]) -> float:
    """Mean accuracy over the budget: ``trapezoid(acc, steps) / (steps[-1] − steps[0])``.

    Identity: a constant curve ``a`` has AUC ``a``; one point: its accuracy.
    """
    s, a = _curve(steps, acc)
    if s.size == 1:
        return float(a[0])
    return float(np.trapezoid(a, s) / (s[-1] - s[0]))


def efficiency_gain(
    baseline: Sequence[float],
    variant: Sequence[float],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Gain % ``100 · (mean(b) − mean(v)) / mean(b)`` of paired (by seed) costs, with its CI.

    The CI is a 95% percentile bootstrap over seeds, resampling pairs
    (``scipy.stats.bootstrap``, ``paired=True``); the p-value is the paired
    t-test ``scipy.stats.ttest_rel(b, v)`` (differences all equal: ``p = 1``
    when they are 0, else 0); the effect size is Cohen's ``d_z`` of ``b − v``.
    Costs must be finite and > 0; one pair gives the mean alone ("grid too small").
    """
    from scipy import stats as st

    b = np.asarray(list(baseline), dtype=np.float64)
    v = np.asarray(list(variant), dtype=np.float64)
    if b.ndim != 1 or b.shape != v.shape or b.size < 1:
        raise InvalidArgument("baseline/variant", (b.shape, v.shape), "need equal lengths >= 1")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(v))) or b.min() <= 0 or v.min() <= 0:
        raise InvalidArgument("baseline/variant", (list(b), list(v)), "must be finite and > 0")

    def gain(bb: np.ndarray, vv: np.ndarray, axis: int = -1) -> np.ndarray:
        mb = np.mean(bb, axis=axis)
        return np.asarray(100.0 * (mb - np.mean(vv, axis=axis)) / mb)

    g = float(gain(b, v))
    method = "paired bootstrap over seeds (percentile) / paired t"
    n = int(b.size)
    if n < 2:
        return Estimate(g, None, None, None, n, None, method)
    d = b - v
    if float(np.std(d)) == 0.0:
        p = 1.0 if float(d[0]) == 0.0 else 0.0
        if float(np.std(b)) == 0.0:
            return Estimate(g, g, g, p, n, None, method)
    else:
        p = float(st.ttest_rel(b, v).pvalue)
    res = st.bootstrap(
        (b, v),
        gain,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    sd = float(np.std(d, ddof=1))
    dz = float(np.mean(d)) / sd if sd > 0 else None
    return Estimate(g, low, high, p, n, dz, method)
