"""Training and evaluation of pipeline classifiers, shared by the experiments.

* :func:`train_classifier` -- mini-batch Adam on cross entropy, optionally plus
  the activation-energy penalty ``λ · E`` where ``E`` is the mean over
  boundaries of the per-feature mean square of the activation entering each
  boundary (``E = mean_k mean_i ||h_k[i]||² / n_k``);
* :func:`accuracy` -- fraction of correct predictions, optionally with a
  boundary hook (a noise injector) installed;
* :func:`boundary_stats` -- RMS and energy per feature of the activations
  entering each boundary (what the noise is added to), on clean data;
* :func:`retention_pct` -- ``100 · noisy / clean`` accuracy.

Everything is deterministic given the seed (own ``torch.Generator`` for the
batch order; the model's initialisation is seeded by the caller).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..data import Dataset
from ..errors import InvalidArgument
from ..operators import Pipeline

__all__ = [
    "TrainResult",
    "accuracy",
    "boundary_stats",
    "retention_pct",
    "subset",
    "train_classifier",
]

Hook = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_classifier`."""

    seconds: float
    final_loss: float
    final_energy: float
    steps: int


def subset(
    x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` samples (all of them when ``n`` is ``None`` or larger)."""
    if n is None or n >= x.shape[0]:
        return x, y
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=g)[:n]
    return x[idx], y[idx]


def _forward_capture(model: Pipeline, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def capture(h: torch.Tensor, _i: int) -> torch.Tensor:
        captured.append(h)
        return h

    with model.boundary_hook(capture):
        logits = model(x)
    return logits, captured


def _energy_per_feature(hs: list[torch.Tensor]) -> torch.Tensor:
    if not hs:
        return torch.zeros(())
    return torch.stack([h.flatten(1).pow(2).mean(1).mean() for h in hs]).mean()


def train_classifier(
    model: Pipeline,
    data: Dataset,
    *,
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    penalty: float = 0.0,
    max_train: int | None = None,
    device: torch.device | None = None,
) -> TrainResult:
    """Train ``model`` on ``data``'s training split; loss ``CE + penalty · E`` (see module doc).

    Raises :class:`InvalidArgument` when the loss becomes non-finite.
    """
    if epochs < 0 or batch_size < 1 or penalty < 0 or not math.isfinite(penalty):
        raise InvalidArgument("epochs/batch_size/penalty", (epochs, batch_size, penalty), "invalid")
    dev = device or torch.device("cpu")
    model.to(dev)
    x, y = subset(data.x_train, data.y_train, max_train, seed)
    x, y = x.to(dev), y.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    loss_v, energy_v, steps = math.nan, math.nan, 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen).to(dev)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]
            logits, hs = _forward_capture(model, x[idx])
            e = _energy_per_feature(hs)
            loss = nn.functional.cross_entropy(logits, y[idx])
            total = loss + penalty * e if penalty > 0 else loss
            if not bool(torch.isfinite(total)):
                raise InvalidArgument(
                    "training loss", float(total), f"became non-finite at step {steps}"
                )
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            loss_v, energy_v, steps = float(loss.detach()), float(e.detach()), steps + 1
    model.eval()
    return TrainResult(time.perf_counter() - t0, loss_v, energy_v, steps)


@torch.no_grad()
def accuracy(
    model: Pipeline,
    x: torch.Tensor,
    y: torch.Tensor,
    hook: Hook | None = None,
    batch_size: int = 1024,
    device: torch.device | None = None,
) -> float:
    """Fraction of ``x`` classified as ``y`` (in eval mode), with ``hook`` at every boundary."""
    dev = device or torch.device("cpu")
    model.eval()
    correct = 0
    with model.boundary_hook(hook):
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start : start + batch_size].to(dev), y[start : start + batch_size].to(dev)
            correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(1, x.shape[0])


@torch.no_grad()
def boundary_stats(
    model: Pipeline, x: torch.Tensor, device: torch.device | None = None
) -> dict[str, list[float]]:
    """Clean activations entering each boundary: ``{"rms": [...], "energy_per_feature": [...]}``.

    ``rms_k = sqrt(mean_i ||h_k[i]||² / n_k)`` over the samples of ``x``.
    """
    dev = device or torch.device("cpu")
    model.eval()
    _, hs = _forward_capture(model, x.to(dev))
    ms = [float(h.flatten(1).pow(2).mean()) for h in hs]
    return {"rms": [math.sqrt(m) for m in ms], "energy_per_feature": ms}


def retention_pct(noisy: float, clean: float) -> float:
    """``100 · noisy / clean``; :class:`InvalidArgument` when ``clean`` is 0."""
    if clean <= 0:
        raise InvalidArgument("clean accuracy", clean, "must be > 0 to define retention")
    return 100.0 * noisy / clean
