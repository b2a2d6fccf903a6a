"""Cost of conservation in a whole pipeline: ``Conserved`` against the same ``Pipeline``.

Two models, each timed forward (inference, ``torch.no_grad``) and forward+backward
(a training step without the optimiser):

* ``mlp``: :func:`conserve_verified.models.mlp_stages` with 4 stages (3 boundaries),
  input and hidden width ``w``, batch ``b``;
* ``resnet18``: :func:`conserve_verified.models.resnet18_stages` (6 stages,
  5 boundaries, BatchNorm) on ``3 × s × s`` images, conserved over all non-batch
  dims of each boundary by :class:`~conserve_verified.models.ConservedStages`.

Each conserved model runs with contracts off (``CONSERVE_CHECKS=off``) and on
(``raise``: a float64 energy check at every boundary).  Ratios are conserved
time / plain time (``1.05`` = 5% overhead).  A third candidate, ``normalized``,
is the plain pipeline with ``F.normalize`` over the same feature dims at every
boundary (a boundary hook): the cost of torch's own normalisation at the same
places, i.e. the floor any out-of-place per-sample rescaling pays there.

Compiled rows: the plain and the conserved model under ``torch.compile(fullgraph=True)``
(backend ``profile.compile_backend``), the conserved one with checks off and on
(the contract is an opaque op that reads the mode when the compiled code runs);
MLP only (compiling the ResNet-18 takes minutes on the 2-core reference machine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from conserve_verified import Conserved, Pipeline, contracts
from conserve_verified.models import (
    ConservedStages,
    boundary_features,
    mlp_stages,
    resnet18_stages,
)

from ._timing import best_of_rounds

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["mlp_models", "model_row", "run", "step"]


def step(
    model: nn.Module, x: torch.Tensor, train: bool, mode: contracts.CheckMode
) -> Callable[[], Any]:
    """One timed step of ``model`` on ``x`` under checks ``mode``: the forward in
    ``no_grad`` (``train=False``) or the gradient of ``mean(model(x)**2)``."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> Any:
        with contracts.checks(mode):
            if not train:
                with torch.no_grad():
                    return model(x)
            return torch.autograd.grad(model(x).square().mean(), params)

    return step


def _normalize_boundary(h: torch.Tensor, index: int) -> torch.Tensor:
    """``F.normalize`` over all non-batch dims (the peer of ``C_E`` at a boundary)."""
    return F.normalize(h.flatten(1), dim=1).view_as(h)


def _normalized_step(plain: Pipeline, x: torch.Tensor, train: bool) -> Callable[[], Any]:
    inner = step(plain, x, train, "off")

    def run() -> Any:
        with plain.boundary_hook(_normalize_boundary):
            return inner()

    return run


def model_row(
    name: str,
    plain: Pipeline,
    conserved: nn.Module,
    x: torch.Tensor,
    profile: Profile,
    compiled_rows: bool = False,
) -> dict[str, Any]:
    """Timings of ``plain``, ``conserved`` (checks off/on), ``normalized`` and their ratios."""
    plain.eval()
    conserved.eval()
    torch._dynamo.reset()
    backend = profile.compile_backend
    # torch.compile of a module returns a module (OptimizedModule) sharing its parameters
    compiled_plain = cast(
        nn.Module, torch.compile(plain, fullgraph=True, dynamic=False, backend=backend)
    )
    compiled = cast(
        nn.Module, torch.compile(conserved, fullgraph=True, dynamic=False, backend=backend)
    )
    candidates: dict[str, Callable[[], Any]] = {}
    for train, label in ((False, "fwd"), (True, "fwd_bwd")):
        candidates[f"plain.{label}"] = step(plain, x, train, "off")
        candidates[f"conserved.{label}"] = step(conserved, x, train, "off")
        candidates[f"conserved_checks.{label}"] = step(conserved, x, train, "raise")
        candidates[f"normalized.{label}"] = _normalized_step(plain, x, train)
        if compiled_rows:
            candidates[f"plain_compiled.{label}"] = step(compiled_plain, x, train, "off")
            candidates[f"conserved_compiled.{label}"] = step(compiled, x, train, "off")
            candidates[f"conserved_compiled_checks.{label}"] = step(compiled, x, train, "raise")
    t = best_of_rounds(candidates, profile.min_run_time, profile.threads, profile.rounds)
    ms = {k: v["median_ms"] for k, v in t.items()}
    ratios = {}
    for label in ("fwd", "fwd_bwd"):
        ratios[f"conserved_vs_plain.{label}"] = ms[f"conserved.{label}"] / ms[f"plain.{label}"]
        ratios[f"checks_on_vs_plain.{label}"] = (
            ms[f"conserved_checks.{label}"] / ms[f"plain.{label}"]
        )
        ratios[f"checks_on_vs_off.{label}"] = (
            ms[f"conserved_checks.{label}"] / ms[f"conserved.{label}"]
        )
        ratios[f"normalize_vs_plain.{label}"] = ms[f"normalized.{label}"] / ms[f"plain.{label}"]
        if compiled_rows:
            ratios[f"compiled_conserved_vs_plain.{label}"] = (
                ms[f"conserved_compiled.{label}"] / ms[f"plain_compiled.{label}"]
            )
            ratios[f"compiled_checks_on_vs_plain.{label}"] = (
                ms[f"conserved_compiled_checks.{label}"] / ms[f"plain_compiled.{label}"]
            )
            ratios[f"compiled_checks_on_vs_off.{label}"] = (
                ms[f"conserved_compiled_checks.{label}"] / ms[f"conserved_compiled.{label}"]
            )
    return {"model": name, "input_shape": list(x.shape), "timings": t, "ratios": ratios}


def mlp_models(profile: Profile) -> tuple[Pipeline, Conserved, torch.Tensor]:
    """The 4-stage MLP of ``profile.mlp`` (seed 0): the plain pipeline, the conserved one
    on the same stages (energy = width) and an input batch."""
    torch.manual_seed(0)
    batch, width = profile.mlp
    stages = mlp_stages((width,), num_classes=10, width=width, depth=4)
    x = torch.randn(batch, width)
    return Pipeline(*stages), Conserved(*stages, energy=width), x


def run(profile: Profile) -> dict[str, Any]:
    """The MLP and the ResNet-18 of ``profile``."""
    plain, conserved, x = mlp_models(profile)
    rows = [model_row("mlp", plain, conserved, x, profile, compiled_rows=True)]

    batch, base, size = profile.resnet
    shape = (3, size, size)
    stages = resnet18_stages(shape, num_classes=10, base_width=base, batchnorm=True)
    energies = [float(n) for n in boundary_features(stages, shape)]
    x = torch.randn(batch, *shape)
    rows.append(
        model_row(
            "resnet18", Pipeline(*stages), ConservedStages(*stages, energies=energies), x, profile
        )
    )
    return {"rows": rows}
