"""MNIST-1D, generated procedurally (Greydanus, "Scaling down deep learning", 2020).

Ten 12-point templates (one per digit) are each transformed at random:
padded with 36–60 zeros, stretched to 72 points, scaled by ``1 ± 0.2``,
circularly translated by up to 48 points, their zero padding filled with
Gaussian-smoothed correlated noise (scale 0.25, filter σ = 2), i.i.d. noise
(0.02) added everywhere, sheared by a random linear trend (±0.375) and
resampled to 40 points.  5,000 samples (500 per class), shuffled, 80% / 20%
train / test.  Deterministic from ``seed`` (default 42, as in the paper);
uses its own :class:`numpy.random.Generator`, not the global one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MNIST1DParams", "load_mnist1d_arrays", "make_mnist1d", "templates"]


@dataclass(frozen=True)
class MNIST1DParams:
    """Generator parameters (defaults: the paper's)."""

    num_samples: int = 5000
    train_split: float = 0.8
    template_len: int = 12
    padding: tuple[int, int] = (36, 60)
    scale_coeff: float = 0.4
    max_translation: int = 48
    corr_noise_scale: float = 0.25
    iid_noise_scale: float = 2e-2
    shear_scale: float = 0.75
    final_seq_length: int = 40


_TEMPLATES = np.asarray(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ],
    dtype=np.float64,
)


def templates() -> np.ndarray:
    """The ten templates, standardised per row, shifted to start at 0 and divided by 6."""
    x = _TEMPLATES - _TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    x = x - x[:, :1]
    return x / 6.0


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, len(x)), x)


def _transform(x: np.ndarray, rng: np.random.Generator, d: MNIST1DParams) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    low, high = d.padding
    p = low + int(rng.random() * (high - low + 1))
    h = np.concatenate([x + 1e-8, np.zeros(p)])
    h = _interpolate(h, d.template_len + high)
    h = h * (1.0 + d.scale_coeff * (rng.random() - 0.5))
    h = np.roll(h, int(rng.integers(d.max_translation)))
    corr = gaussian_filter1d(d.corr_noise_scale * rng.standard_normal(h.shape), 2)
    h = np.where(h != 0, h, corr)
    h = h + d.iid_noise_scale * rng.standard_normal(h.shape)
    h = h - d.shear_scale * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(h))
    return _interpolate(h, d.final_seq_length)


def make_mnist1d(
    seed: int = 42, params: MNIST1DParams | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; ``x`` float32 ``(N, 1, 40)``, ``y`` int64.

    Identity: the same ``seed`` gives bit-identical arrays; classes are balanced
    (``params.num_samples // 10`` per class before the split).
    """
    d = params or MNIST1DParams()
    rng = np.random.default_rng(seed)
    t = templates()
    per_class = d.num_samples // len(t)
    xs, ys = [], []
    for label in range(len(t)):
        for _ in range(per_class):
            xs.append(_transform(t[label], rng, d))
            ys.append(label)
    order = rng.permutation(len(ys))
    x = np.stack(xs)[order].astype(np.float32)[:, None, :]
    y = np.asarray(ys, dtype=np.int64)[order]
    n_train = int(d.train_split * len(y))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def load_mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The default MNIST-1D split (seed 42, 5,000 samples)."""
    return make_mnist1d()
