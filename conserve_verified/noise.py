r"""Noise models for module boundaries and for every neuron of a layer.

One interface for all stochastic injectors: an injector is constructed from its
parameters and a ``seed`` (an ``int`` or a ``torch.Generator``) and is called as
``injector(h, index=0) -> h'``, so it can be installed as a pipeline boundary
hook (``pipeline.boundary_hook(injector)``) or on the outputs of layers of any
model (:func:`inject`, every neuron of the layer gets its own noise, as in
analog hardware).  The output has the shape and dtype of ``h``; the noise is
drawn and applied in the accumulation dtype of
:mod:`conserve_verified.tolerances` (float32 for float16/bfloat16).

Notation: a *sample* is one index outside the feature dims ``dim`` (default:
every dim but the first); ``n`` is the number of features per sample and
``rms(h) = ||h|| / sqrt(n)`` over the feature dims.  ``z`` and ``z_0`` are
independent standard normal variables; ``z`` is drawn per element, ``z_0``
once per sample (shared by all its features).  With a correlation ``c`` the
unit noise is ``xi = sqrt(c) z_0 + sqrt(1 - c) z`` so that

.. math:: \mathbb E[\xi_i] = 0,\quad \mathbb E[\xi_i^2] = 1,\quad
          \mathbb E[\xi_i \xi_j] = c \ (i \ne j).

``c = 0`` is uncorrelated noise (each neuron its own source), ``c = 1`` fully
correlated noise (one source for the whole layer).

Injectors (the exact distribution of each is stated in its docstring):

* :class:`GaussianNoise` -- additive ``h + s xi`` (``s = sigma`` or ``sigma * rms(h)``);
* :class:`MultiplicativeNoise` -- ``h (1 + sigma xi)``;
* :class:`BiasNoise` -- a systematic offset, the same for every sample and call;
* :class:`DropoutNoise` -- Bernoulli masking;
* :class:`MonocularDepthNoise` -- depth images: depth-proportional scale error,
  holes at depth edges, quantisation;
* :class:`Compose` -- several injectors in sequence;
* :class:`ReferenceScaled` -- additive noise scaled per sample by the RMS of a
  *reference* activation (the CLEAN activation at that boundary), so that an
  SNR-matched level is not inflated by noise injected at earlier boundaries.

Adversarial attacks are functions over a whole pipeline: :func:`fgsm` and
:func:`pgd` (L2 and L-infinity), with the budget given as a fraction of the
energy of the attacked boundary, ``||delta||^2 <= budget * ||h||^2`` per
sample, so conserved and baseline pipelines face the same relative attack.
They return an :class:`Adversarial`, itself a boundary hook.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ._math import normalize_dims, safe_norm, validate_finite, validate_tensor
from .errors import InvalidArgument, InvalidArgumentType
from .operators import BoundaryHandle, Pipeline
from .tolerances import accumulation_dtype

__all__ = [
    "Adversarial",
    "BiasNoise",
    "Compose",
    "DropoutNoise",
    "GaussianNoise",
    "MonocularDepthNoise",
    "MultiplicativeNoise",
    "NoiseHandle",
    "NoiseInjector",
    "ReferenceScaled",
    "Seed",
    "fgsm",
    "inject",
    "pgd",
]

#: A seed: a non-negative ``int`` or a ``torch.Generator`` used as is.
Seed = int | torch.Generator

Norm = Literal["linf", "l2"]
_NORMS: tuple[str, ...] = ("linf", "l2")


# --------------------------------------------------------------------------- validation


def _real(name: str, value: Any, *, low: float, high: float = math.inf, **kw: bool) -> float:
    """A finite real in ``[low, high]`` (open at an end when ``low_open``/``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(name, value, "a real number")
    v = float(value)
    low_open, high_open = kw.get("low_open", False), kw.get("high_open", False)
    ok = math.isfinite(v) and (v > low if low_open else v >= low)
    ok = ok and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise InvalidArgument(name, value, f"must be a finite number in {lo}{low:g}, {high:g}{hi}")
    return v


def _check_seed(seed: Any) -> Seed:
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentType("seed", seed, "an int or a torch.Generator")
    if not 0 <= seed < 2**63:
        raise InvalidArgument("seed", seed, "must be in [0, 2**63)")
    return seed


def _check_dim(dim: Any) -> int | tuple[int, ...] | None:
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, (int, tuple, list)):
        raise InvalidArgumentType("dim", dim, "None, an int or a tuple of ints")
    if isinstance(dim, (tuple, list)):
        if not dim or any(isinstance(d, bool) or not isinstance(d, int) for d in dim):
            raise InvalidArgument("dim", dim, "must be a non-empty tuple of ints")
        return tuple(dim)
    return dim


def _check_boundaries(boundaries: Any) -> frozenset[int] | None:
    if boundaries is None:
        return None
    if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Iterable):
        raise InvalidArgumentType("boundaries", boundaries, "None or an iterable of ints")
    out = list(boundaries)
    for b in out:
        if isinstance(b, bool) or not isinstance(b, int):
            raise InvalidArgumentType("boundaries", boundaries, "None or an iterable of ints")
        if b < 0:
            raise InvalidArgument("boundaries", boundaries, "boundary indices must be >= 0")
    return frozenset(out)


def _check_index(index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidArgumentType("index", index, "an int")
    return index


def _feature_dims(h: torch.Tensor, dim: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(1, h.ndim)) if h.ndim >= 2 else (0,)
    return normalize_dims(h, dim)


def _sample_shape(h: torch.Tensor, dims: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of ``h`` with every feature dim reduced to size 1 (keepdim)."""
    return tuple(1 if d in dims else s for d, s in enumerate(h.shape))


def _rms(h: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Per-sample ``||h|| / sqrt(n)`` over ``dims`` (keepdim), overflow/underflow safe."""
    n = math.prod(h.shape[d] for d in dims)
    return (safe_norm(h, dims) / math.sqrt(n)).reshape(_sample_shape(h, dims))


# --------------------------------------------------------------------------- base class


class NoiseInjector(abc.ABC):
    """Base class: seeding, boundary selection, validation and dtype handling.

    Args:
        seed: an ``int`` (a generator per device is created from it and
            :meth:`reset` restarts the stream) or a ``torch.Generator`` (used
            as is; noise is drawn on its device and moved to ``h``'s device).
        dim: feature dims of a sample (``None``: every dim but the first).
        boundaries: boundary indices at which the injector acts (``None``:
            all); at any other index ``h`` is returned unchanged.

    Identity: ``injector(h, index)`` has ``h``'s shape and dtype; two injectors
    built with the same parameters and the same ``int`` seed produce the same
    output for the same sequence of calls.
    """

    def __init__(
        self,
        *,
        seed: Seed = 0,
        dim: int | Sequence[int] | None = None,
        boundaries: Iterable[int] | None = None,
    ) -> None:
        self.seed = _check_seed(seed)
        self.dim = _check_dim(dim)
        self.boundaries = _check_boundaries(boundaries)
        self._generators: dict[torch.device, torch.Generator] = {}

    # -- randomness
    def reset(self) -> None:
        """Restart the random stream (``int`` seeds only; a given generator is the caller's)."""
        self._generators.clear()

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator used for noise on ``device``."""
        if isinstance(self.seed, torch.Generator):
            return self.seed
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device).manual_seed(self.seed)
            self._generators[device] = gen
        return gen

    def _normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        gen = self.generator(like.device)
        z = torch.randn(tuple(shape), generator=gen, dtype=like.dtype, device=gen.device)
        return z.to(like.device)

    def _uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        gen = self.generator(like.device)
        u = torch.rand(tuple(shape), generator=gen, dtype=like.dtype, device=gen.device)
        return u.to(like.device)

    def _unit_noise(self, h: torch.Tensor, dims: tuple[int, ...], c: float) -> torch.Tensor:
        """``xi = sqrt(c) z_0 + sqrt(1 - c) z``: unit variance, correlation ``c`` per sample."""
        if c == 0.0:
            return self._normal(h.shape, h)
        if c == 1.0:
            return self._normal(_sample_shape(h, dims), h).expand(h.shape)
        z0 = self._normal(_sample_shape(h, dims), h)
        z = self._normal(h.shape, h)
        return math.sqrt(c) * z0 + math.sqrt(1.0 - c) * z

    # -- the interface
    def __call__(self, h: torch.Tensor, index: int = 0) -> torch.Tensor:
        h = validate_tensor(h, "h")
        index = _check_index(index)
        if self.boundaries is not None and index not in self.boundaries:
            return h
        validate_finite(h.detach(), "h")
        dims = _feature_dims(h, self.dim)
        if h.numel() == 0:
            return h.clone()
        out = self._apply(h.to(accumulation_dtype(h.dtype)), dims, index)
        return out.to(h.dtype)

    @abc.abstractmethod
    def _apply(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        """The noise model on ``h`` in its accumulation dtype."""

    def _repr_params(self) -> str:
        return ""

    def __repr__(self) -> str:
        seed = "<generator>" if isinstance(self.seed, torch.Generator) else self.seed
        extra = self._repr_params()
        return f"{type(self).__name__}({extra}{', ' if extra else ''}seed={seed})"


# --------------------------------------------------------------------------- Gaussian


class GaussianNoise(NoiseInjector):
    r"""Additive Gaussian noise ``h + s * xi`` with correlation ``c`` within a sample.

    ``s = sigma`` (absolute) or, with ``relative=True``, ``s = sigma * rms(h)``
    per sample, so the signal-to-noise ratio ``||h||^2 / E||noise||^2`` is
    exactly ``1 / sigma**2`` for every sample (SNR-matched comparisons).

    Distribution (given ``h``): the noise ``y - h`` is Gaussian with

    * mean 0,
    * per-element variance ``s**2``,
    * covariance ``c s**2`` between two features of one sample, 0 across samples.

    ``correlation=0`` is uncorrelated noise, ``correlation=1`` one shared
    value per sample (fully correlated).
    """

    def __init__(
        self,
        sigma: float,
        *,
        relative: bool = False,
        correlation: float = 0.0,
        seed: Seed = 0,
        dim: int | Sequence[int] | None = None,
        boundaries: Iterable[int] | None = None,
    ) -> None:
        super().__init__(seed=seed, dim=dim, boundaries=boundaries)
        self.sigma = _real("sigma", sigma, low=0.0)
        if not isinstance(relative, bool):
            raise InvalidArgumentType("relative", relative, "a bool")
        self.relative = relative
        self.correlation = _real("correlation", correlation, low=0.0, high=1.0)

    def _apply(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        scale: float | torch.Tensor = self.sigma
        if self.relative:
            scale = self.sigma * _rms(h.detach(), dims)
        return h + scale * self._unit_noise(h, dims, self.correlation)

    def _repr_params(self) -> str:
        return f"sigma={self.sigma}, relative={self.relative}, correlation={self.correlation}"


class MultiplicativeNoise(NoiseInjector):
    r"""Multiplicative Gaussian noise ``h * (1 + sigma * xi)``.

    Distribution (given ``h``): the noise ``y - h = sigma * h * xi`` has

    * mean 0,
    * per-element variance ``sigma**2 * h_i**2``,
    * covariance ``c sigma**2 h_i h_j`` between features ``i != j`` of one sample.

    The noise is relative by construction (the SNR is ``1 / sigma**2``).
    """

    def __init__(
        self,
        sigma: float,
        *,
        correlation: float = 0.0,
        seed: Seed = 0,
        dim: int | Sequence[int] | None = None,
        boundaries: Iterable[int] | None = None,
    ) -> None:
        super().__init__(seed=seed, dim=dim, boundaries=boundaries)
        self.sigma = _real("sigma", sigma, low=0.0)
        self.correlation = _real("correlation", correlation, low=0.0, high=1.0)

    def _apply(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        return h * (1.0 + self.sigma * self._unit_noise(h, dims, self.correlation))

    def _repr_params(self) -> str:
        return f"sigma={self.sigma}, correlation={self.correlation}"


# --------------------------------------------------------------------------- bias, dropout


class BiasNoise(NoiseInjector):
    r"""Systematic bias: ``h + b``, the same offset ``b`` for every sample and every call.

    ``mode="constant"``: ``b_i = magnitude`` for every feature.
    ``mode="random"``: ``b`` is drawn once per (boundary index, feature shape)
    from the seed, a standard normal vector rescaled to root-mean-square exactly 1,
    times ``magnitude``.  With ``relative=True`` the offset is multiplied by
    ``rms(h)`` of each sample.

    Identity: ``rms(y - h) == magnitude`` (times ``rms(h)`` if relative) for
    every sample; the offset is deterministic, so its variance over samples
    (absolute mode) is 0.
    """

    def __init__(
        self,
        magnitude: float,
        *,
        mode: Literal["constant", "random"] = "constant",
        relative: bool = False,
        seed: Seed = 0,
        dim: int | Sequence[int] | None = None,
        boundaries: Iterable[int] | None = None,
    ) -> None:
        super().__init__(seed=seed, dim=dim, boundaries=boundaries)
        self.magnitude = _real("magnitude", magnitude, low=-math.inf)
        if mode not in ("constant", "random"):
            raise InvalidArgument("mode", mode, "must be 'constant' or 'random'")
        self.mode = mode
        if not isinstance(relative, bool):
            raise InvalidArgumentType("relative", relative, "a bool")
        self.relative = relative
        self._offsets: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    def reset(self) -> None:
        super().reset()
        self._offsets.clear()

    def offset(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        """The unit-RMS direction of ``b`` for boundary ``index`` (shape: ``h``'s feature dims)."""
        fshape = tuple(h.shape[d] if d in dims else 1 for d in range(h.ndim))
        if self.mode == "constant":
            return torch.ones(fshape, dtype=h.dtype, device=h.device)
        key = (index, fshape)
        b = self._offsets.get(key)
        if b is None:
            b = self._normal(fshape, torch.empty(0, dtype=torch.float64, device=h.device))
            b = b / b.pow(2).mean().sqrt()
            self._offsets[key] = b
        return b.to(device=h.device, dtype=h.dtype)

    def _apply(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        b = self.magnitude * self.offset(h, dims, index)
        if self.relative:
            b = b * _rms(h.detach(), dims)
        return h + b

    def _repr_params(self) -> str:
        return f"magnitude={self.magnitude}, mode={self.mode!r}, relative={self.relative}"


class DropoutNoise(NoiseInjector):
    r"""Dropout: ``y_i = m_i h_i / (1 - p)`` with ``m_i ~ Bernoulli(1 - p)`` independent.

    With ``rescale=False`` the factor ``1 / (1 - p)`` is omitted.

    Distribution (given ``h``, ``rescale=True``): ``E[y_i] = h_i`` and
    ``Var[y_i] = h_i**2 p / (1 - p)``; with ``rescale=False``
    ``E[y_i] = (1 - p) h_i`` and ``Var[y_i] = p (1 - p) h_i**2``.
    Unlike ``nn.Dropout`` it acts in eval mode too (it is a noise model).
    """

    def __init__(
        self,
        p: float,
        *,
        rescale: bool = True,
        seed: Seed = 0,
        dim: int | Sequence[int] | None = None,
        boundaries: Iterable[int] | None = None,
    ) -> None:
        super().__init__(seed=seed, dim=dim, boundaries=boundaries)
        self.p = _real("p", p, low=0.0, high=1.0, high_open=True)
        if not isinstance(rescale, bool):
            raise InvalidArgumentType("rescale", rescale, "a bool")
        self.rescale = rescale

    def _apply(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        keep = (self._uniform(h.shape, h) >= self.p).to(h.dtype)
        factor = 1.0 / (1.0 - self.p) if self.rescale else 1.0
        return h * keep * factor

    def _repr_params(self) -> str:
        return f"p={self.p}, rescale={self.rescale}"


# --------------------------------------------------------------------------- depth


class MonocularDepthNoise(NoiseInjector):
    r"""Monocular-depth-style corruption of depth images ``(N, H, W)`` or ``(N, 1, H, W)``.

    For each image with clean depth ``d >= 0``, in this order:

    1. global scale/shift and local error:
       ``d' = d * s * (1 + pixel_sigma * z) + shift_sigma * z_1``, with one scale
       ``s = 1 + scale_sigma * z_0`` and one shift ``shift_sigma * z_1`` per image
       (the scale-and-shift ambiguity of a depth map estimated from one image)
       and ``z`` per pixel, so ``E[d'] = d`` and
       ``Var[d'] = d**2 ((1 + scale_sigma**2)(1 + pixel_sigma**2) - 1) + shift_sigma**2``;
    2. quantisation (``quantization > 0``): ``d'' = step * round(d' / step)``,
       so ``|d'' - d'| <= step / 2``;
    3. holes at depth edges: a pixel is an *edge* if its clean depth differs
       from a 4-neighbour's by more than ``edge_threshold``; each edge pixel
       independently becomes a hole (value ``hole_value``) with probability
       ``hole_prob``.  No pixel that is not an edge becomes a hole.

    ``dim`` is not used (the image layout fixes the feature dims).
    """

    def __init__(
        self,
        *,
        scale_sigma: float = 0.05,
        pixel_sigma: float = 0.01,
        shift_sigma: float = 0.0,
        edge_threshold: float = 0.1,
        hole_prob: float = 0.5,
        quantization: float = 0.0,
        hole_value: float = 0.0,
        seed: Seed = 0,
        boundaries: Iterable[int] | None = None,
    ) -> None:
        super().__init__(seed=seed, dim=None, boundaries=boundaries)
        self.scale_sigma = _real("scale_sigma", scale_sigma, low=0.0)
        self.pixel_sigma = _real("pixel_sigma", pixel_sigma, low=0.0)
        self.shift_sigma = _real("shift_sigma", shift_sigma, low=0.0)
        self.edge_threshold = _real("edge_threshold", edge_threshold, low=0.0)
        self.hole_prob = _real("hole_prob", hole_prob, low=0.0, high=1.0)
        self.quantization = _real("quantization", quantization, low=0.0)
        self.hole_value = _real("hole_value", hole_value, low=-math.inf)

    @staticmethod
    def edges(d: torch.Tensor, threshold: float) -> torch.Tensor:
        """Boolean mask of pixels whose depth differs from a 4-neighbour by more than threshold."""
        mask = torch.zeros_like(d, dtype=torch.bool)
        dy = (d[..., 1:, :] - d[..., :-1, :]).abs() > threshold
        dx = (d[..., :, 1:] - d[..., :, :-1]).abs() > threshold
        mask[..., 1:, :] |= dy
        mask[..., :-1, :] |= dy
        mask[..., :, 1:] |= dx
        mask[..., :, :-1] |= dx
        return mask

    def _apply(self, h: torch.Tensor, dims: tuple[int, ...], index: int) -> torch.Tensor:
        if h.ndim not in (3, 4) or (h.ndim == 4 and h.shape[1] != 1):
            raise InvalidArgument(
                "h",
                h,
                "expected depth images (N, H, W) or (N, 1, H, W)",
            )
        if bool((h < 0).any()):
            raise InvalidArgument("h", h, "depth must be >= 0")
        n = h.shape[0]
        per_image = (n,) + (1,) * (h.ndim - 1)
        s = 1.0 + self.scale_sigma * self._normal(per_image, h)
        out = h * s * (1.0 + self.pixel_sigma * self._normal(h.shape, h))
        if self.shift_sigma > 0.0:
            out = out + self.shift_sigma * self._normal(per_image, h)
        if self.quantization > 0.0:
            out = torch.round(out / self.quantization) * self.quantization
        if self.hole_prob > 0.0:
            holes = self.edges(h.detach(), self.edge_threshold)
            holes &= self._uniform(h.shape, h) < self.hole_prob
            out = torch.where(holes, torch.full_like(out, self.hole_value), out)
        return out

    def _repr_params(self) -> str:
        return (
            f"scale_sigma={self.scale_sigma}, pixel_sigma={self.pixel_sigma}, "
            f"shift_sigma={self.shift_sigma}, "
            f"edge_threshold={self.edge_threshold}, hole_prob={self.hole_prob}, "
            f"quantization={self.quantization}"
        )


# --------------------------------------------------------------------------- composition


class Compose:
    """Injectors applied in order: ``Compose(a, b)(h, i) == b(a(h, i), i)``.

    E.g. ``Compose(MultiplicativeNoise(0.1), GaussianNoise(0.1))`` is the
    analog-hardware neuron ``h (1 + xi_M) + xi_A``.
    """

    def __init__(self, *injectors: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
        if not injectors:
            raise InvalidArgument("injectors", injectors, "compose at least one injector")
        for i, inj in enumerate(injectors):
            if not callable(inj):
                raise InvalidArgumentType(f"injectors[{i}]", inj, "a callable (h, index) -> h")
        self.injectors = injectors

    def __call__(self, h: torch.Tensor, index: int = 0) -> torch.Tensor:
        for inj in self.injectors:
            h = inj(h, index)
        return h

    def reset(self) -> None:
        """Reset every member that can be reset."""
        for inj in self.injectors:
            if isinstance(inj, (NoiseInjector, Compose)):
                inj.reset()

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.injectors))})"


class ReferenceScaled:
    """Additive noise in units of a reference RMS: ``h + r_k * (inner(h, k) - h)``.

    ``inner`` is an additive injector of absolute scale (e.g.
    ``GaussianNoise(sigma)`` or ``BiasNoise(sigma, mode="random")``) and
    ``r_k`` the per-sample RMS of the *reference* activation at boundary ``k``
    (:meth:`set_reference`, typically the clean forward pass of the same batch).

    Identity: for ``inner = GaussianNoise(sigma)`` the noise ``y - h`` at
    boundary ``k`` is Gaussian with per-element SD ``sigma * r_k`` per sample, so
    ``E||y - h||² / ||h_clean||² == sigma²`` (SNR ``1/sigma²`` against the clean
    signal) whatever earlier boundaries did to ``h``.  Boundaries without a
    reference are returned unchanged.
    """

    def __init__(self, inner: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
        if not callable(inner):
            raise InvalidArgumentType("inner", inner, "a callable (h, index) -> h")
        self.inner = inner
        self._ref: dict[int, torch.Tensor] = {}

    @staticmethod
    def sample_rms(h: torch.Tensor) -> torch.Tensor:
        """Per-sample ``||h|| / sqrt(n)`` over every dim but the first, shaped to broadcast."""
        h = validate_tensor(h, "h")
        dims = _feature_dims(h, None)
        return _rms(h.detach().to(accumulation_dtype(h.dtype)), dims)

    def set_reference(self, activations: Sequence[torch.Tensor]) -> None:
        """Use the per-sample RMS of ``activations[k]`` as ``r_k`` (one tensor per boundary)."""
        self._ref = {k: self.sample_rms(h) for k, h in enumerate(activations)}

    def __call__(self, h: torch.Tensor, index: int = 0) -> torch.Tensor:
        index = _check_index(index)
        ref = self._ref.get(index)
        if ref is None:
            return h
        if ref.shape[0] != h.shape[0]:
            raise InvalidArgument(
                "h", tuple(h.shape), f"batch size differs from the reference's ({ref.shape[0]})"
            )
        noisy = self.inner(h, index)
        return (h + ref.to(h.dtype) * (noisy - h)).to(h.dtype)

    def reset(self) -> None:
        """Reset the inner injector's stream (when it has one)."""
        if isinstance(self.inner, (NoiseInjector, Compose)):
            self.inner.reset()

    def __repr__(self) -> str:
        return f"ReferenceScaled({self.inner!r})"


class NoiseHandle(BoundaryHandle):
    """Handle returned by :func:`inject`; ``remove()`` takes the noise out again."""


_DEFAULT_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def inject(
    model: nn.Module,
    injector: Callable[[torch.Tensor, int], torch.Tensor],
    names: Iterable[str] | None = None,
    layer_types: tuple[type[nn.Module], ...] = _DEFAULT_LAYERS,
) -> NoiseHandle:
    """Add noise to every neuron of the named layers (default: every Linear/Conv layer).

    Installs forward hooks so that the output of layer ``names[k]`` becomes
    ``injector(output, k)``.  Returns a :class:`NoiseHandle` (context manager).
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module")
    if not callable(injector):
        raise InvalidArgumentType("injector", injector, "a callable (h, index) -> h")
    modules = dict(model.named_modules())
    if names is None:
        chosen = [n for n, m in modules.items() if isinstance(m, layer_types)]
    else:
        chosen = list(names)
        missing = [n for n in chosen if n not in modules]
        if missing:
            raise InvalidArgument(
                "names", missing, f"no such submodules; the model has: {sorted(modules)}"
            )
    if not chosen:
        raise InvalidArgument("names", names, "no layer to inject noise into")
    handles = []
    for k, name in enumerate(chosen):

        def _hook(_m: nn.Module, _inp: Any, out: Any, k: int = k) -> torch.Tensor:
            return injector(out, k)

        handles.append(modules[name].register_forward_hook(_hook))
    return NoiseHandle(handles, chosen)


# --------------------------------------------------------------------------- adversarial


@dataclass
class Adversarial:
    """An adversarial perturbation ``delta`` of boundary ``boundary`` (``None``: the input).

    Usage (identical for input and boundary attacks)::

        adv = pgd(pipeline, x, y, budget=0.05, norm="l2", boundary=0)
        with pipeline.boundary_hook(adv):
            logits = pipeline(adv.x)

    Attributes:
        delta: the perturbation, shape of the attacked activation.
        x: the input to feed (``x + delta`` for input attacks, else ``x``).
        boundary: attacked boundary index, or ``None`` for the input.
        radius: per-sample radius in ``norm`` (``sqrt(budget * ||h||^2)`` for
            L2, ``sqrt(budget * ||h||^2 / n)`` for L-infinity).
        norm, budget: as requested.

    Identity: ``||delta||^2 <= budget * ||h||^2`` per sample (``h`` the clean
    activation at the attacked place), in both norms.
    """

    delta: torch.Tensor
    x: torch.Tensor
    boundary: int | None
    radius: torch.Tensor
    norm: str
    budget: float
    previous: Callable[[torch.Tensor, int], torch.Tensor] | None = None

    def __call__(self, h: torch.Tensor, index: int = 0) -> torch.Tensor:
        if self.previous is not None:
            h = self.previous(h, index)
        if self.boundary is not None and index == self.boundary:
            return h + self.delta.to(h.dtype)
        return h


def _pipeline_hook(model: nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor] | None:
    hook = getattr(model, "_hook", None)
    return hook if callable(hook) else None


def _clean_activation(model: nn.Module, x: torch.Tensor, boundary: int | None) -> torch.Tensor:
    if boundary is None:
        return x.detach()
    if not isinstance(model, Pipeline):
        raise InvalidArgumentType("model", model, "a Pipeline when boundary is given")
    if not 0 <= boundary < model.num_boundaries:
        raise InvalidArgument(
            "boundary", boundary, f"pipeline has boundaries 0..{model.num_boundaries - 1}"
        )
    captured: list[torch.Tensor] = []
    prev = _pipeline_hook(model)

    def _capture(h: torch.Tensor, i: int) -> torch.Tensor:
        h = prev(h, i) if prev is not None else h
        if i == boundary:
            captured.append(h.detach())
        return h

    with torch.no_grad(), model.boundary_hook(_capture):
        model(x)
    return captured[0]


def _loss_fn(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None) -> Any:
    if loss is None:
        return lambda logits, y: nn.functional.cross_entropy(logits, y, reduction="sum")
    if not callable(loss):
        raise InvalidArgumentType("loss", loss, "a callable (logits, target) -> scalar")
    return loss


def _forward_with(
    model: nn.Module, x: torch.Tensor, delta: torch.Tensor, boundary: int | None
) -> torch.Tensor:
    if boundary is None:
        out: torch.Tensor = model(x + delta)
        return out
    if not isinstance(model, Pipeline):
        raise InvalidArgumentType("model", model, "a Pipeline when boundary is given")
    prev = _pipeline_hook(model)

    def _add(h: torch.Tensor, i: int) -> torch.Tensor:
        h = prev(h, i) if prev is not None else h
        return h + delta if i == boundary else h

    with model.boundary_hook(_add):
        out = model(x)
    return out


def _attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: float,
    norm: str,
    boundary: int | None,
    loss: Any,
    steps: int,
    step_size: float,
    random_start: bool,
    seed: Seed,
) -> Adversarial:
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module")
    x = validate_tensor(x, "x")
    if not isinstance(y, torch.Tensor):
        raise InvalidArgumentType("y", y, "a torch.Tensor of targets")
    budget = _real("budget", budget, low=0.0)
    if norm not in _NORMS:
        raise InvalidArgument("norm", norm, f"must be one of {_NORMS}")
    if boundary is not None:
        boundary = _check_index(boundary)
    seed = _check_seed(seed)
    lossf = _loss_fn(loss)
    h = _clean_activation(model, x, boundary)
    acc = accumulation_dtype(h.dtype)
    dims = tuple(range(1, h.ndim))
    n = math.prod(h.shape[d] for d in dims)
    shape = _sample_shape(h, dims)
    e = h.to(acc).pow(2).sum(dims, keepdim=True) if dims else h.to(acc).pow(2)
    radius = (budget * e).sqrt() if norm == "l2" else (budget * e / n).sqrt()
    radius = radius.reshape(shape)

    def project(d: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            return torch.maximum(torch.minimum(d, radius), -radius)
        nrm = d.pow(2).sum(dims, keepdim=True).sqrt() if dims else d.abs()
        return d * torch.where(nrm > radius, radius / nrm.clamp_min(torch.finfo(acc).tiny), 1.0)

    def ascent(g: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            return g.sign()
        gn = g.pow(2).sum(dims, keepdim=True).sqrt() if dims else g.abs()
        return torch.where(gn > 0, g / gn.clamp_min(torch.finfo(acc).tiny), 0.0)

    delta = torch.zeros(h.shape, dtype=acc, device=h.device)
    if random_start:
        gen = (
            seed
            if isinstance(seed, torch.Generator)
            else torch.Generator(device=h.device).manual_seed(seed)
        )
        if norm == "linf":
            u = torch.rand(h.shape, generator=gen, dtype=acc, device=gen.device).to(h.device)
            delta = (2.0 * u - 1.0) * radius
        else:  # uniform in the L2 ball: Gaussian direction, radius * U**(1/n)
            z = torch.randn(h.shape, generator=gen, dtype=acc, device=gen.device).to(h.device)
            u = torch.rand(shape, generator=gen, dtype=acc, device=gen.device).to(h.device)
            delta = project(ascent(z) * radius * u.pow(1.0 / n))
    with torch.enable_grad():
        for _ in range(steps):
            d = delta.detach().requires_grad_(True)
            out = _forward_with(model, x, d.to(h.dtype), boundary)
            (g,) = torch.autograd.grad(lossf(out, y), d)
            delta = project(delta + step_size * radius * ascent(g.to(acc)))
    delta = delta.detach().to(h.dtype)
    x_out = (x + delta).detach() if boundary is None else x
    return Adversarial(
        delta=delta,
        x=x_out,
        boundary=boundary,
        radius=radius,
        norm=norm,
        budget=budget,
        previous=_pipeline_hook(model),
    )


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: float,
    *,
    norm: Norm = "linf",
    boundary: int | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Adversarial:
    r"""Fast gradient (sign) method, end-to-end through ``model``.

    One step from ``delta = 0``: ``delta = eps * sign(g)`` (L-infinity) or
    ``delta = eps * g / ||g||`` (L2), ``g`` the gradient of ``loss`` (default:
    summed cross entropy) with respect to the activation at ``boundary`` (a
    boundary of a :class:`~conserve_verified.Pipeline`, after any installed
    hook) or the input (``boundary=None``).  ``eps`` per sample is set by the
    energy budget: ``||delta||^2 <= budget * ||h||^2``.
    """
    return _attack(model, x, y, budget, norm, boundary, loss, 1, 1.0, False, 0)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: float,
    *,
    norm: Norm = "linf",
    boundary: int | None = None,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    seed: Seed = 0,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Adversarial:
    r"""Projected gradient descent (ascent on the loss) inside the energy-budget ball.

    ``steps`` steps of ``delta <- P(delta + step_size * eps * ascent(g))`` where
    ``ascent`` is ``sign`` (L-infinity) or ``g / ||g||`` (L2) and ``P`` projects on
    the ball of radius ``eps`` (per sample, from ``budget`` as in :func:`fgsm`).
    ``step_size`` is a fraction of ``eps`` (default ``2.5 / steps``);
    ``random_start`` begins at a uniform point of the ball drawn from ``seed``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise InvalidArgumentType("steps", steps, "an int")
    if steps < 1:
        raise InvalidArgument("steps", steps, "must be >= 1")
    alpha = 2.5 / steps if step_size is None else _real("step_size", step_size, low=0.0)
    if not isinstance(random_start, bool):
        raise InvalidArgumentType("random_start", random_start, "a bool")
    return _attack(model, x, y, budget, norm, boundary, loss, steps, alpha, random_start, seed)
