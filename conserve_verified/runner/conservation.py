"""The conservation experiments' shared steps: build an arm, train it clean, evaluate it noisy.

Noise enters through one function, :func:`make_injector`, built on
:mod:`conserve_verified.noise`, under two conventions:

``absolute``
    noise of scale ``level`` per feature, as the papers state it;
``relative``
    noise of scale ``level · rms(h)`` for each sample's activation ``h`` at the
    boundary (SNR-matched: the same signal-to-noise ratio for every arm).

Noise kinds: ``gaussian`` (additive, uncorrelated), ``bias`` (a fixed random
offset of RMS ``level``), ``dropout`` (``p = level``; multiplicative, so both
conventions coincide) and ``adversarial`` (PGD at the input within an energy
budget ``level``, ``||delta||² <= level · ||x||²``; relative by construction).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..data import Dataset, load
from ..errors import InvalidArgument
from ..models import build_pipeline, cnn_stages, mlp_stages, resnet18_stages
from ..noise import BiasNoise, DropoutNoise, GaussianNoise, pgd
from ..operators import Pipeline
from .workloads import accuracy, boundary_stats, retention_pct, train_classifier

__all__ = [
    "CONVENTIONS",
    "NOISE_KINDS",
    "build_model",
    "evaluate_noise",
    "gaussian_sweep",
    "make_injector",
    "stored_retention",
    "train_and_sweep",
    "train_arm",
]

CONVENTIONS: tuple[str, ...] = ("absolute", "relative")
NOISE_KINDS: tuple[str, ...] = ("gaussian", "bias", "dropout", "adversarial")

Hook = Callable[[torch.Tensor, int], torch.Tensor]


def make_injector(kind: str, level: float, convention: str, seed: int) -> Hook:
    """The boundary hook for a stochastic noise ``kind`` at ``level`` under ``convention``."""
    if convention not in CONVENTIONS:
        raise InvalidArgument("convention", convention, f"valid: {list(CONVENTIONS)}")
    rel = convention == "relative"
    if kind == "gaussian":
        return GaussianNoise(level, relative=rel, seed=seed)
    if kind == "bias":
        return BiasNoise(level, mode="random", relative=rel, seed=seed)
    if kind == "dropout":
        return DropoutNoise(level, seed=seed)
    raise InvalidArgument("kind", kind, f"not a boundary injector; valid: {list(NOISE_KINDS)}")


def build_model(config: dict[str, Any], data: Dataset) -> Pipeline:
    """The pipeline of ``config["arm"]`` for ``config["model"]`` (mlp, cnn or resnet18)."""
    model = config.get("model", "mlp")
    shape, k = data.input_shape, data.num_classes
    if model == "mlp":
        stages = mlp_stages(shape, k, int(config["width"]), int(config["depth"]))
    elif model == "cnn":
        stages = cnn_stages(shape, k, int(config["width"]), int(config["depth"]))
    elif model == "resnet18":
        stages = resnet18_stages(shape, k, int(config["width"]), bool(config["batchnorm"]))
    else:
        raise InvalidArgument("model", model, "valid: ['mlp', 'cnn', 'resnet18']")
    return build_pipeline(stages, str(config["arm"]), shape)


def train_arm(
    config: dict[str, Any], data: Dataset, device: torch.device
) -> tuple[Pipeline, dict[str, Any]]:
    """Seed, build and train (clean) the arm of ``config``; return it and its clean metrics.

    The ``energy_penalized`` arm trains with ``CE + config["penalty"] · E``.
    """
    seed = int(config["seed"])
    torch.manual_seed(seed)
    model = build_model(config, data)
    penalty = float(config.get("penalty", 0.0)) if config["arm"] == "energy_penalized" else 0.0
    res = train_classifier(
        model,
        data,
        epochs=int(config["epochs"]),
        seed=seed,
        lr=float(config.get("lr", 1e-3)),
        penalty=penalty,
        max_train=config.get("max_train"),
        device=device,
    )
    x, y = data.x_test, data.y_test
    clean = accuracy(model, x, y, device=device)
    stats = boundary_stats(model, x[:512], device=device)
    return model, {
        "clean_accuracy": clean,
        "boundary_rms": stats["rms"],
        "mean_boundary_rms": sum(stats["rms"]) / max(1, len(stats["rms"])),
        "train_seconds": round(res.seconds, 3),
        "train_loss": res.final_loss,
    }


def evaluate_noise(
    model: Pipeline,
    data: Dataset,
    kind: str,
    level: float,
    convention: str,
    seed: int,
    clean: float,
    device: torch.device,
) -> dict[str, Any]:
    """Accuracy and retention (``100 · noisy / clean``) under one noise condition."""
    x, y = data.x_test, data.y_test
    if kind == "adversarial":
        adv = pgd(model, x.to(device), y.to(device), budget=level, norm="l2", steps=10, seed=seed)
        acc = accuracy(model, adv.x, y, device=device)
    else:
        acc = accuracy(model, x, y, make_injector(kind, level, convention, seed), device=device)
    if not math.isfinite(acc):
        raise InvalidArgument("accuracy", acc, "is not finite")
    return {
        "kind": kind,
        "level": level,
        "convention": convention,
        "accuracy": acc,
        "retention_pct": retention_pct(acc, clean),
    }


def gaussian_sweep(
    model: Pipeline,
    data: Dataset,
    sigmas: list[float],
    clean: float,
    device: torch.device,
    seed_of: Callable[[int, int], int],
) -> list[dict[str, Any]]:
    """:func:`evaluate_noise` under Gaussian noise for every convention and ``sigma``.

    Identity: entry ``c * len(sigmas) + s`` is ``evaluate_noise(model, data, "gaussian",
    sigmas[s], CONVENTIONS[c], seed_of(c, s), clean, device)``.
    """
    return [
        evaluate_noise(model, data, "gaussian", sigma, conv, seed_of(c, s), clean, device)
        for c, conv in enumerate(CONVENTIONS)
        for s, sigma in enumerate(sigmas)
    ]


def stored_retention(record: dict[str, Any], level: float, convention: str) -> float | None:
    """The retention (%) a record stored for noise ``level`` under ``convention``, else ``None``."""
    for e in record["metrics"]["evaluations"]:
        if e["level"] == level and e["convention"] == convention:
            return float(e["retention_pct"])
    return None


def train_and_sweep(
    config: dict[str, Any],
    ctx: Any,
    sigmas: list[float],
    seed_of: Callable[[int, int], int],
) -> dict[str, Any]:
    """One Gaussian-noise cell: train ``config``'s arm on ``ctx``'s data, then sweep.

    Identity: the result is ``train_arm``'s metrics plus ``"evaluations"`` =
    :func:`gaussian_sweep` over ``sigmas`` with ``seed_of``; ``ctx`` is the
    runner's :class:`~conserve_verified.runner.protocol.RunContext`.
    """
    data = load(ctx.data, ctx.data_dir)
    model, metrics = train_arm(config, data, ctx.device)
    evals = gaussian_sweep(model, data, sigmas, metrics["clean_accuracy"], ctx.device, seed_of)
    return {**metrics, "evaluations": evals}
