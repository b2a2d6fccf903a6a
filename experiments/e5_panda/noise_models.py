"""The E5 noise conditions, built from :mod:`conserve_verified.noise`, decomposed by where they act.

A condition has one strength ``sigma`` and up to three terms:

``image`` -- a realistic monocular-depth error of the depth map (before perception):
    :class:`~conserve_verified.noise.MonocularDepthNoise` with a global scale
    error (``scale_sigma = a``), a global shift (``shift_sigma = a · SHIFT_DEPTH``
    metres) and a local depth-proportional error (``pixel_sigma = a / 4``),
    ``a = IMAGE_FRACTION · sigma``, no holes (a depth map estimated from one image
    has scale/shift ambiguity and local error, not missing pixels).  A
    depth-scale error of a few percent already moves the perceived target by
    centimetres (camera ~1 m away, success radius 3 cm), hence the fraction.
``feature`` -- per-feature proportional error on the perception -> control boundary:
    ``h (1 + (sigma / 4) z)`` (uncorrelated
    :class:`~conserve_verified.noise.MultiplicativeNoise`).
``scale`` -- one feature-scale factor per sample on the boundary: ``h (1 + sigma z_0)``
    (fully correlated ``MultiplicativeNoise``).  ``C_E`` is 0-homogeneous (T3), so
    the conserved arm cancels this term *exactly, by construction*: the
    conserved arm's goals under it are its clean goals.

Conditions (:data:`CONDITIONS`): ``image`` (image term only), ``boundary``
(feature term only), ``scale`` (scale term only; cancelled by construction),
``both`` (image + feature: the realistic condition), ``all`` (image + feature +
scale: the earlier "monocular-depth-style" condition whose advantage was
compared with the paper's +18.9 pp), and ``gaussian`` (SNR-matched additive
Gaussian control: ``IMAGE_FRACTION · sigma`` on the image, ``sigma`` on the
features).  ``sigma = 0`` is the clean condition (no injector at all).  The
draws depend on (run seed, condition, sigma) only, so every arm receives
identical noise (same seeds, same shapes).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch

from conserve_verified.errors import InvalidArgument
from conserve_verified.noise import (
    Compose,
    GaussianNoise,
    MonocularDepthNoise,
    MultiplicativeNoise,
)

__all__ = [
    "BOUNDARY_CONDITIONS",
    "CONDITIONS",
    "IMAGE_FRACTION",
    "NOISES",
    "SHIFT_DEPTH",
    "T3_CANCELLED",
    "Injector",
    "injectors",
    "noise_seed",
]

CONDITIONS = ("image", "boundary", "scale", "both", "all", "gaussian")
#: Backwards-compatible name of the condition set (``monodepth`` = ``all``).
NOISES = (*CONDITIONS, "monodepth")
#: Conditions with a boundary term (where the conserved and control arms can differ).
BOUNDARY_CONDITIONS = ("boundary", "scale", "both", "all", "gaussian", "monodepth")
#: Conditions the conserved arm cancels exactly by construction (T3, 0-homogeneity).
T3_CANCELLED = ("scale",)
#: The depth image's noise strength relative to the boundary's sigma.
IMAGE_FRACTION = 0.1
#: Global shift SD of the depth map per unit of ``a`` (metres; about half the scene depth).
SHIFT_DEPTH = 0.5

Injector = Callable[[torch.Tensor, int], torch.Tensor]


def noise_seed(seed: int, noise: str, sigma: float) -> int:
    """Seed of a condition's noise stream: a function of (run seed, noise, sigma), not the arm."""
    return (seed * 1_000_003 + zlib.crc32(f"{noise}:{sigma!r}".encode())) % 2**62


def _image(sigma: float, s: int) -> Injector:
    a = IMAGE_FRACTION * sigma
    return MonocularDepthNoise(
        scale_sigma=a, pixel_sigma=a / 4, shift_sigma=a * SHIFT_DEPTH, hole_prob=0.0, seed=s
    )


def injectors(noise: str, sigma: float, seed: int) -> tuple[Injector | None, Injector | None]:
    """``(image_injector, boundary_injector)`` of a condition; ``None`` where it has no term."""
    if noise not in NOISES:
        raise InvalidArgument("noise", noise, f"must be one of {NOISES}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
        raise InvalidArgument("sigma", sigma, "must be a real number >= 0")
    if sigma == 0:
        return None, None
    cond = "all" if noise == "monodepth" else noise
    s = noise_seed(seed, cond, sigma)
    if cond == "gaussian":
        return (
            GaussianNoise(IMAGE_FRACTION * sigma, relative=True, seed=s),
            GaussianNoise(sigma, relative=True, seed=s + 1),
        )
    image = _image(sigma, s) if cond in ("image", "both", "all") else None
    terms: list[Injector] = []
    if cond in ("scale", "all"):
        terms.append(MultiplicativeNoise(sigma, correlation=1.0, seed=s + 1))
    if cond in ("boundary", "both", "all"):
        terms.append(MultiplicativeNoise(sigma / 4, correlation=0.0, seed=s + 2))
    boundary: Injector | None = None
    if len(terms) == 1:
        boundary = terms[0]
    elif terms:
        boundary = Compose(*terms)
    return image, boundary
