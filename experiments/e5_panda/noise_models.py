"""The E5 noise conditions, built from :mod:`conserve_verified.noise`.

Each condition has one strength ``sigma`` and acts at two places: on the
feature vector at the perception -> control boundary (the pipeline's boundary
hook) with strength ``sigma``, and on the depth image before perception with
strength ``IMAGE_FRACTION * sigma`` -- a depth-scale error of a few percent
already moves the perceived target by centimetres (the camera is ~1 m away and
the success radius is 3 cm), so the image carries a tenth of the boundary's sigma.

* ``"monodepth"`` (monocular-depth-style):
  image: :class:`~conserve_verified.noise.MonocularDepthNoise` with per-image
  scale error ``scale_sigma = s``, per-pixel depth-proportional error
  ``pixel_sigma = s / 4`` (``s = IMAGE_FRACTION * sigma``), and no holes
  (``hole_prob = 0``): a depth map estimated from one image has scale
  ambiguity and depth-proportional error, but no missing pixels -- holes are a
  failure of active/stereo sensors;
  features: the same model on the feature vector, ``h * (1 + sigma z_0) *
  (1 + sigma/4 z)`` -- one scale error per sample (fully correlated
  :class:`~conserve_verified.noise.MultiplicativeNoise`) and a proportional
  error per feature (uncorrelated).
* ``"gaussian"`` (control condition, SNR-matched): additive Gaussian noise
  relative to each sample's RMS, ``IMAGE_FRACTION * sigma`` on the image and
  ``sigma`` on the features (:class:`~conserve_verified.noise.GaussianNoise`,
  ``relative=True``).

``sigma = 0`` is the clean condition (no injector at all).  Both arms of a cell
receive identical noise draws (same seeds, same shapes).
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

__all__ = ["IMAGE_FRACTION", "NOISES", "Injector", "injectors", "noise_seed"]

NOISES = ("monodepth", "gaussian")
#: The depth image's noise strength relative to the boundary's sigma.
IMAGE_FRACTION = 0.1

Injector = Callable[[torch.Tensor, int], torch.Tensor]


def noise_seed(seed: int, noise: str, sigma: float) -> int:
    """Seed of a condition's noise stream: a function of (run seed, noise, sigma), not the arm."""
    return (seed * 1_000_003 + zlib.crc32(f"{noise}:{sigma!r}".encode())) % 2**62


def injectors(noise: str, sigma: float, seed: int) -> tuple[Injector | None, Injector | None]:
    """``(image_injector, boundary_injector)`` of a condition; ``(None, None)`` if clean."""
    if noise not in NOISES:
        raise InvalidArgument("noise", noise, f"must be one of {NOISES}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
        raise InvalidArgument("sigma", sigma, "must be a real number >= 0")
    if sigma == 0:
        return None, None
    s = noise_seed(seed, noise, sigma)
    if noise == "monodepth":
        image: Injector = MonocularDepthNoise(
            scale_sigma=IMAGE_FRACTION * sigma,
            pixel_sigma=IMAGE_FRACTION * sigma / 4,
            hole_prob=0.0,
            seed=s,
        )
        boundary: Injector = Compose(
            MultiplicativeNoise(sigma, correlation=1.0, seed=s + 1),
            MultiplicativeNoise(sigma / 4, correlation=0.0, seed=s + 2),
        )
    else:
        image = GaussianNoise(IMAGE_FRACTION * sigma, relative=True, seed=s)
        boundary = GaussianNoise(sigma, relative=True, seed=s + 1)
    return image, boundary
