"""Perception and the learned part of control for E5, as the two stages of a pipeline.

* :class:`DepthEncoder` (perception): z-depth image ``(N, 1, H, W)`` in metres
  -> feature vector ``(N, feature_dim)``.
* :class:`GoalHead` (learned part of control): feature vector -> Cartesian goal
  ``(N, 3)`` in metres, which the :class:`~.controller.DLSController` then reaches.

:func:`build_pipeline` joins them as ``Pipeline(encoder, head)`` (plain) or
``Conserved(encoder, head, energy=feature_dim)``, so the single boundary is
exactly where perception features enter control, and a boundary hook (a noise
injector) acts on the feature vector.  Training is supervised end to end on
ray-cast images of random targets (:func:`render_dataset`, :func:`train_pipeline`).

Identity: for the conserved arm, the boundary activation of every sample has
energy ``feature_dim`` (the RMS feature is 1), whatever the hook did to its scale.
"""

from __future__ import annotations

from typing import Literal

import mujoco
import numpy as np
import torch
from torch import nn

from ..errors import InvalidArgument
from ..operators import Conserved, Pipeline
from .camera import DepthCamera
from .scene import WORKSPACE_HIGH, WORKSPACE_LOW, PandaScene, place_target

__all__ = [
    "Arm",
    "DepthEncoder",
    "GoalHead",
    "build_pipeline",
    "estimate_goals",
    "normalized_control",
    "render_dataset",
    "train_pipeline",
]

Arm = Literal["plain", "conserved"]
_ARMS = ("plain", "conserved")


def render_dataset(scene: PandaScene, camera: DepthCamera, targets: np.ndarray) -> np.ndarray:
    """Depth images ``(n, H, W)`` float32 of the home-posed arm with the target at each row."""
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != 3:
        raise InvalidArgument("targets", t.shape, "must have shape (n, 3)")
    data = scene.new_data()
    out = np.empty((t.shape[0], camera.height, camera.width), dtype=np.float32)
    for i, p in enumerate(t):
        place_target(scene, data, p)
        mujoco.mj_kinematics(scene.model, data)
        out[i] = camera.depth(scene.model, data)
    return out


class DepthEncoder(nn.Module):
    """Perception: depth image (metres) -> features.

    The depth is first mapped to ``(depth - depth_offset) / depth_scale`` (fixed,
    not learned), then two strided convolutions and a linear layer.
    """

    def __init__(
        self,
        image_size: int,
        feature_dim: int,
        depth_offset: float = 1.0,
        depth_scale: float = 0.25,
    ) -> None:
        super().__init__()
        if image_size < 8 or image_size % 4:
            raise InvalidArgument("image_size", image_size, "must be a multiple of 4, >= 8")
        if feature_dim < 2:
            raise InvalidArgument("feature_dim", feature_dim, "must be >= 2")
        self.depth_offset = depth_offset
        self.depth_scale = depth_scale
        side = image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * side * side, feature_dim),
        )

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net((depth - self.depth_offset) / self.depth_scale)
        return out


class GoalHead(nn.Module):
    """Learned part of control: features -> goal (metres), via the workspace box.

    The network predicts normalised coordinates ``u``; the goal is
    ``centre + half_range * u`` with the workspace box's centre and half-range.
    """

    centre: torch.Tensor
    half_range: torch.Tensor

    def __init__(self, feature_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 3))
        lo = torch.as_tensor(WORKSPACE_LOW, dtype=torch.float32)
        hi = torch.as_tensor(WORKSPACE_HIGH, dtype=torch.float32)
        self.register_buffer("centre", (lo + hi) / 2)
        self.register_buffer("half_range", (hi - lo) / 2)

    def normalise(self, goal: torch.Tensor) -> torch.Tensor:
        """Inverse of the output map: ``(goal - centre) / half_range``."""
        return (goal - self.centre) / self.half_range

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.centre + self.half_range * self.net(features)
        return out


def build_pipeline(arm: Arm, image_size: int, feature_dim: int = 32) -> Pipeline:
    """``Pipeline(encoder, head)`` or ``Conserved(..., energy=feature_dim)`` for ``arm``.

    The conserved arm maps an all-zero feature vector to the uniform direction
    (``zero="uniform"``) instead of raising, so a trial never aborts on it.
    """
    if arm not in _ARMS:
        raise InvalidArgument("arm", arm, f"must be one of {_ARMS}")
    encoder = DepthEncoder(image_size, feature_dim)
    head = GoalHead(feature_dim)
    if arm == "plain":
        return Pipeline(encoder, head)
    return Conserved(encoder, head, energy=float(feature_dim), zero="uniform")


def normalized_control(pipeline: Pipeline) -> Pipeline:
    """The conserved pipeline with ``C_E`` moved *before* the boundary hook (no re-projection).

    ``Pipeline(Sequential(encoder, C_E), head)`` sharing the conserved arm's
    modules: the features are normalised, then the hook's noise reaches the head
    unprojected.  Identity: without a hook (or with a hook that keeps the
    features on the shell) it computes the conserved pipeline's function, since
    ``C_E`` is idempotent (T2); a per-sample feature scale is cancelled by the
    conserved arm (T3) but passes through this control.
    """
    if not isinstance(pipeline, Conserved) or len(pipeline.stages) != 2:
        raise InvalidArgument(
            "pipeline", type(pipeline).__name__, "must be a conserved E5 pipeline"
        )
    encoder, head = pipeline.stages[0], pipeline.stages[1]
    return Pipeline(nn.Sequential(encoder, pipeline.conservers[0]), head)


def _head(pipeline: Pipeline) -> GoalHead:
    head = pipeline.stages[-1]
    if not isinstance(head, GoalHead):
        raise InvalidArgument("pipeline", pipeline, "last stage must be a GoalHead")
    return head


def train_pipeline(
    pipeline: Pipeline,
    images: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> list[float]:
    """Train end to end with MSE on normalised goals; returns the mean loss per epoch.

    Deterministic given ``seed`` (initial weights are the caller's; the batch
    order comes from a generator seeded with ``seed``).
    """
    if images.shape[0] != targets.shape[0] or images.shape[0] == 0:
        raise InvalidArgument("images", images.shape, f"need one image per target {targets.shape}")
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    y = _head(pipeline).normalise(torch.as_tensor(targets, dtype=torch.float32))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(pipeline.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    head = _head(pipeline)
    losses = []
    pipeline.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            pred = head.normalise(pipeline(x[idx]))
            loss = torch.mean((pred - y[idx]) ** 2)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        sched.step()
        losses.append(total / x.shape[0])
    pipeline.eval()
    return losses


@torch.no_grad()
def estimate_goals(pipeline: Pipeline, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Goal estimates ``(n, 3)`` (float64, metres) for depth images ``(n, H, W)``."""
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 3:
        raise InvalidArgument("images", tuple(x.shape), "must have shape (n, H, W)")
    pipeline.eval()
    out: np.ndarray = pipeline(x.unsqueeze(1)).double().numpy()
    return out
