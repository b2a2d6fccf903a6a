"""The analytic noise predictor against its Monte Carlo twin: time and agreement.

A conserved MLP (:func:`conserve_verified.models.mlp_stages`, ``depth`` stages)
with small additive Gaussian noise (``SIGMA``, absolute; the predictor is exact
to first order in the noise) at every boundary;
:func:`conserve_verified.propagation.predict` and
:func:`~conserve_verified.propagation.monte_carlo` (``samples`` noisy passes per
input) are timed on the same inputs, each after one untimed warm-up call; the
predictor (milliseconds) as the median of ``PREDICT_REPEATS`` calls, the Monte
Carlo estimate once.  Agreement: the relative difference of the mean noise
variance at the last tap, and its largest value over all taps (the Monte Carlo
estimate itself has a relative standard error of about ``sqrt(2 / samples)``).
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import torch

from conserve_verified import Conserved
from conserve_verified.models import mlp_stages
from conserve_verified.noise import GaussianNoise
from conserve_verified.propagation import monte_carlo, predict

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["PREDICT_REPEATS", "SIGMA", "run"]

#: Noise scale per feature (activations at the boundaries have RMS 1: ``E = width``).
SIGMA = 0.05
#: The predictor is timed as the median of this many calls.
PREDICT_REPEATS = 15


def run(profile: Profile) -> dict[str, Any]:
    """Seconds of predictor and Monte Carlo, their ratio, and the relative disagreement."""
    inputs, width, depth, samples = profile.propagation
    torch.manual_seed(0)
    model = Conserved(*mlp_stages((width,), 10, width=width, depth=depth), energy=float(width))
    model.eval()
    x = torch.randn(inputs, width)
    predict(model, x, boundary_noise=GaussianNoise(SIGMA, seed=1))  # warm-up, untimed
    monte_carlo(model, x, boundary_noise=GaussianNoise(SIGMA, seed=1), samples=min(samples, 100))

    times = []
    for _ in range(PREDICT_REPEATS):
        start = time.perf_counter()
        predicted = predict(model, x, boundary_noise=GaussianNoise(SIGMA, seed=0))
        times.append(time.perf_counter() - start)
    predict_s = statistics.median(times)
    noise = GaussianNoise(SIGMA, seed=0)
    start = time.perf_counter()
    measured = monte_carlo(model, x, boundary_noise=noise, samples=samples)
    mc_s = time.perf_counter() - start

    rel = [
        abs(p.noise_variance - m.noise_variance) / max(m.noise_variance, 1e-300)
        for p, m in zip(predicted, measured, strict=True)
        if m.noise_variance > 0
    ]
    return {
        "model": f"Conserved MLP, width {width}, {depth} stages",
        "inputs": inputs,
        "samples": samples,
        "taps": len(predicted),
        "predict_s": predict_s,
        "monte_carlo_s": mc_s,
        "speedup": mc_s / predict_s if predict_s > 0 else float("inf"),
        "last_tap_relative_difference": rel[-1] if rel else None,
        "max_relative_difference": max(rel) if rel else None,
    }
