"""Small model builders for the experiments, as lists of *stages* for pipelines.

A model is returned as a list of ``nn.Module`` stages so that it can be wrapped
as a :class:`~conserve_verified.Pipeline` (boundaries between stages, where
noise is injected) or a conserved pipeline (``C_E`` after the hook at each
boundary):

* :func:`mlp_stages` -- a modular MLP of ``depth`` stages (``depth - 1`` boundaries);
* :func:`cnn_stages` -- a small CNN of ``depth`` stages (conv blocks, then a linear head);
* :func:`resnet18_stages` -- ResNet-18 adapted to small images (3×3 stem, no
  max-pool), six stages: stem, the four residual layers, the head; with or
  without BatchNorm;
* :func:`build_pipeline` -- wrap stages as ``"baseline"``/``"energy_penalized"``
  (plain :class:`~conserve_verified.Pipeline`) or ``"conserved"``;
* :func:`without_reprojection` -- the normalisation-only control of a conserved
  pipeline: the same stages (so the same weights and the same in-stage ``C_E``),
  no ``C_E`` after the boundary hook.

Conserved boundaries carry energy ``energy_per_feature * n_k`` per sample
(``n_k`` = features at boundary ``k``), i.e. unit RMS per feature by default,
both where noise is added and after it (``C_E`` before and after the hook), so
that a noise level ``sigma`` per feature means the same SNR (``1/sigma²``) at
every conserved boundary.  ``energy_per_feature`` may also be one value per
boundary (e.g. the baseline's own RMS² there).  Identity: the activation reaching
each boundary of a conserved pipeline, and the one leaving it, has
``rms == sqrt(energy_per_feature)`` per sample.

Where noise enters relative to ``C_E`` (a boundary hook ``n``):

* conserved arm: ``stage_k -> C_E -> n -> C_E -> stage_{k+1}`` (in-stage
  normalisation, noise, re-projection);
* normalisation-only control (:func:`without_reprojection`, same weights):
  ``stage_k -> C_E -> n -> stage_{k+1}``;
* baseline: ``stage_k -> n -> stage_{k+1}``.

Trained clean, the conserved arm and a control trained on its own are the same
network: without noise the re-projection acts on a vector already on the shell,
where ``C_E`` is the identity (T2, idempotence), so one trained model serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .errors import InvalidArgument, InvalidArgumentType
from .operators import Conserved, ConserveEnergy, Pipeline

__all__ = [
    "ARMS",
    "BasicBlock",
    "ConservedStages",
    "boundary_features",
    "boundary_shapes",
    "build_pipeline",
    "cnn_stages",
    "mlp_stages",
    "resnet18_stages",
    "without_reprojection",
]

#: The three arms compared by the conservation experiments.
ARMS: tuple[str, ...] = ("baseline", "energy_penalized", "conserved")


def _positive_int(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(name, value, "an int")
    if value < low:
        raise InvalidArgument(name, value, f"must be >= {low}")
    return value


def mlp_stages(
    input_shape: Sequence[int], num_classes: int, width: int = 64, depth: int = 3
) -> list[nn.Module]:
    """A modular MLP of ``depth`` stages and ``depth - 1`` boundaries of ``width`` features.

    Stages: ``[Flatten, Linear, ReLU]``, ``depth - 2`` × ``[Linear, ReLU]``, ``Linear``.
    """
    depth = _positive_int("depth", depth, 2)
    width = _positive_int("width", width)
    n_in = math.prod(input_shape)
    stages: list[nn.Module] = [nn.Sequential(nn.Flatten(), nn.Linear(n_in, width), nn.ReLU())]
    for _ in range(depth - 2):
        stages.append(nn.Sequential(nn.Linear(width, width), nn.ReLU()))
    stages.append(nn.Linear(width, _positive_int("num_classes", num_classes, 2)))
    return stages


def _conv_dims(input_shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    if len(input_shape) not in (2, 3):
        raise InvalidArgument("input_shape", tuple(input_shape), "expected (C, L) or (C, H, W)")
    return input_shape[0], tuple(input_shape[1:])


def cnn_stages(
    input_shape: Sequence[int], num_classes: int, width: int = 16, depth: int = 3
) -> list[nn.Module]:
    """``depth - 1`` conv blocks (3-wide conv, ReLU; stride 2 after the first) and a linear head.

    Works for 1-D ``(C, L)`` and 2-D ``(C, H, W)`` inputs; every block has
    ``width`` channels.
    """
    depth = _positive_int("depth", depth, 2)
    width = _positive_int("width", width)
    c_in, spatial = _conv_dims(input_shape)
    conv = nn.Conv1d if len(spatial) == 1 else nn.Conv2d
    stages: list[nn.Module] = []
    c = c_in
    for i in range(depth - 1):
        stride = 1 if i == 0 else 2
        stages.append(nn.Sequential(conv(c, width, 3, stride=stride, padding=1), nn.ReLU()))
        c = width
    pool = nn.AdaptiveAvgPool1d(1) if len(spatial) == 1 else nn.AdaptiveAvgPool2d(1)
    stages.append(nn.Sequential(pool, nn.Flatten(), nn.Linear(width, num_classes)))
    return stages


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convs with a shortcut; BatchNorm optional."""

    def __init__(self, c_in: int, c_out: int, stride: int, batchnorm: bool) -> None:
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if batchnorm else nn.Identity()

        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not batchnorm)
        self.bn1 = norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not batchnorm)
        self.bn2 = norm(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=not batchnorm), norm(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet18_stages(
    input_shape: Sequence[int], num_classes: int, base_width: int = 64, batchnorm: bool = True
) -> list[nn.Module]:
    """ResNet-18 for small images: stem (3×3 conv), layers 1–4 (2 blocks each), head.

    Widths ``base_width × (1, 2, 4, 8)``, strides ``(1, 2, 2, 2)``; six stages,
    five boundaries.  Without BatchNorm, convs get biases.
    """
    if len(input_shape) != 3:
        raise InvalidArgument("input_shape", tuple(input_shape), "ResNet-18 needs (C, H, W)")
    w = _positive_int("base_width", base_width)
    stem: list[nn.Module] = [nn.Conv2d(input_shape[0], w, 3, 1, 1, bias=not batchnorm)]
    if batchnorm:
        stem.append(nn.BatchNorm2d(w))
    stem.append(nn.ReLU())
    stages: list[nn.Module] = [nn.Sequential(*stem)]
    c = w
    for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        c_out = w * mult
        stages.append(
            nn.Sequential(
                BasicBlock(c, c_out, stride, batchnorm), BasicBlock(c_out, c_out, 1, batchnorm)
            )
        )
        c = c_out
    stages.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)))
    return stages


@torch.no_grad()
def boundary_shapes(
    stages: Sequence[nn.Module], input_shape: Sequence[int]
) -> list[tuple[int, ...]]:
    """Per-sample shape at each boundary (the output of every stage but the last)."""
    was = [m.training for m in stages]
    for m in stages:
        m.eval()
    h = torch.zeros(2, *input_shape)
    out = []
    for m in list(stages)[:-1]:
        h = m(h)
        out.append(tuple(h.shape[1:]))
    for m, t in zip(stages, was, strict=True):
        m.train(t)
    return out


def boundary_features(stages: Sequence[nn.Module], input_shape: Sequence[int]) -> list[int]:
    """Number of features per sample at each boundary: ``prod`` of :func:`boundary_shapes`."""
    return [math.prod(s) for s in boundary_shapes(stages, input_shape)]


class ConservedStages(Pipeline):
    """A pipeline applying ``C_{E_k}`` at boundary ``k`` after the hook, one energy per boundary.

    The same semantics as :class:`~conserve_verified.Conserved`, for models whose
    boundaries have different sizes.  Identity: boundary ``k`` carries energy
    ``energies[k]`` per sample over all non-batch dims.
    """

    def __init__(self, *modules: nn.Module, energies: Sequence[float]) -> None:
        super().__init__(*modules)
        if len(energies) != self.num_boundaries:
            raise InvalidArgument(
                "energies", list(energies), f"need one per boundary ({self.num_boundaries})"
            )
        self.conservers = nn.ModuleList(
            _AllDims(ConserveEnergy(e, -1, zero="uniform")) for e in energies
        )
        self.energies = [float(e) for e in energies]

    def boundary(self, h: torch.Tensor, index: int) -> torch.Tensor:
        out: torch.Tensor = self.conservers[index](super().boundary(h, index))
        return out


class _AllDims(nn.Module):
    """Apply a last-dim conserver to all non-batch dims (flatten, conserve, restore)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(h.reshape(h.shape[0], -1)).reshape(h.shape)
        return out


def _energies(
    energy_per_feature: float | Sequence[float], shapes: list[tuple[int, ...]]
) -> list[float]:
    if isinstance(energy_per_feature, (int, float)) and not isinstance(energy_per_feature, bool):
        per = [float(energy_per_feature)] * len(shapes)
    elif isinstance(energy_per_feature, Sequence) and not isinstance(energy_per_feature, str):
        per = [float(e) for e in energy_per_feature]
        if len(per) != len(shapes):
            raise InvalidArgument(
                "energy_per_feature", list(energy_per_feature), f"need {len(shapes)} values"
            )
    else:
        raise InvalidArgumentType("energy_per_feature", energy_per_feature, "a number or a list")
    for e in per:
        if not (math.isfinite(e) and e > 0):
            raise InvalidArgument("energy_per_feature", energy_per_feature, "must be finite > 0")
    return [e * math.prod(s) for e, s in zip(per, shapes, strict=True)]


def build_pipeline(
    stages: Sequence[nn.Module],
    arm: str,
    input_shape: Sequence[int],
    energy_per_feature: float | Sequence[float] = 1.0,
) -> Pipeline:
    """Wrap ``stages`` for ``arm`` (one of :data:`ARMS`).

    ``"conserved"``: every stage but the last ends in ``C_{E_k}`` (so the signal
    reaching a boundary lies on the energy shell, ``E_k = energy_per_feature_k · n_k``),
    and the pipeline applies ``C_{E_k}`` again after the boundary hook -- the
    setting of theorems T4/T5 (``x = s + n`` with ``||s||² = E``, then ``C_E(x)``).
    It is a :class:`~conserve_verified.Conserved` pipeline when every boundary has
    the same flat shape and energy, and a :class:`ConservedStages` otherwise.  The
    other arms are a plain :class:`~conserve_verified.Pipeline` (the penalty lives
    in the loss).
    """
    if arm not in ARMS:
        raise InvalidArgument("arm", arm, f"unknown arm; valid: {list(ARMS)}")
    if arm != "conserved":
        return Pipeline(*stages)
    shapes = boundary_shapes(stages, input_shape)
    energies = _energies(energy_per_feature, shapes)
    wrapped: list[nn.Module] = [
        nn.Sequential(stage, _AllDims(ConserveEnergy(e, -1, zero="uniform")))
        for stage, e in zip(list(stages)[:-1], energies, strict=True)
    ]
    wrapped.append(stages[-1])
    if len(set(shapes)) == 1 and len(shapes[0]) == 1 and len(set(energies)) == 1:
        return Conserved(*wrapped, energy=energies[0], dim=-1, zero="uniform")
    return ConservedStages(*wrapped, energies=energies)


def without_reprojection(pipeline: Pipeline) -> Pipeline:
    """The normalisation-only control of a conserved ``pipeline``: its stages, no post-hook ``C_E``.

    The result shares the stage modules (the same parameters, the in-stage
    ``C_E`` included); only the re-projection after the boundary hook is gone.
    Identity: with no hook (or a hook that keeps the activation on the shell),
    ``without_reprojection(p)(x) == p(x)`` up to rounding, since ``C_E`` is the
    identity on its shell (T2); with a noise hook ``n`` the boundary computes
    ``n(h)`` instead of ``C_E(n(h))``.
    """
    if not isinstance(pipeline, Pipeline):
        raise InvalidArgumentType("pipeline", pipeline, "a Pipeline")
    if not isinstance(pipeline, (Conserved, ConservedStages)):
        raise InvalidArgument("pipeline", type(pipeline).__name__, "is not a conserved pipeline")
    return Pipeline(*pipeline.stages)
