r"""Analytic noise-propagation predictor for MLP and conv pipelines, and its Monte Carlo twin.

The predictor propagates, for each input ``x`` separately, the mean ``mu`` and
the full covariance ``Sigma`` (over the flattened features) of the noisy
activation through the network, layer by layer:

* **affine layers** (``Linear``, ``Conv*``, average pooling, ``Flatten``,
  ``BatchNorm`` in eval mode, ...) ``y = A h + b``: ``mu' = A mu + b`` and
  ``Sigma' = A Sigma A^T`` -- exact (S1).  For one input unit-variance noise
  with correlation ``c`` the output variance of unit ``i`` is
  ``(1 - c) sum_j W_ij^2 + c (sum_j W_ij)^2`` (:func:`linear_noise_gain`):
  uncorrelated noise scales with the mean of the squared weights, correlated
  noise with the squared mean of the weights.
* **ReLU / LeakyReLU** (``activation="gaussian"``, default): the pre-activation
  is treated as Gaussian ``N(mu_i, s_i^2)``; mean and variance of the output are
  the exact Gaussian integrals (:func:`relu_gaussian_moments`), covariances
  between units are scaled by the expected slopes ``E[phi'(z_i)] E[phi'(z_j)]``
  (Stein's lemma, exact to first order in the correlation).
* **other elementwise activations**, or ``activation="slope"``: the local slope
  ``D = diag(phi'(mu))``: ``mu' = phi(mu)``, ``Sigma' = D Sigma D``.  A slope
  ``|phi'| <= g`` scales the noise variance by at most ``g^2`` (S2).
* **conservation** ``C_E`` (a :class:`~conserve_verified.Conserved` boundary or
  a :class:`~conserve_verified.ConserveEnergy` layer): its Jacobian at the mean,
  ``J = (r / rho) (I - u u^T)`` with ``rho = ||mu||``, ``u = mu / rho``,
  ``r = sqrt(E)`` -- the tangent projection scaled by ``r / rho``:
  ``Sigma' = J Sigma J^T``, ``mu' = C_E(mu)``.  This step is first order in
  ``||noise|| / rho``: accurate for small noise, not for large discrete jumps
  such as dropout of a unit carrying much of the energy.  Each ``C_E`` tap
  records this ratio (:attr:`LayerNoise.linearity`); with
  ``predict(..., linearity_threshold=LINEARITY_THRESHOLD)`` the noise that passed
  a ``C_E`` step above the threshold is tracked downstream
  (:attr:`LayerNoise.outside_share`), because a deep contracting stack amplifies
  the neglected ``O(ratio^2)`` terms relative to the first-order noise.
* **noise injectors** of :mod:`conserve_verified.noise` (exact second moments):
  additive ``Sigma += s^2 K`` with ``K = (1 - c) I + c 1 1^T`` (relative noise:
  ``s^2 = sigma^2 (||mu||^2 + tr Sigma) / n``); multiplicative
  ``Sigma += sigma^2 K o (Sigma + mu mu^T)``; dropout; absolute bias shifts ``mu``.

Noise can sit at the boundaries of a :class:`~conserve_verified.Pipeline`
(``boundary_noise``, installed as its boundary hook, before ``C_E`` in a
conserved pipeline) and/or on every neuron of every Linear/Conv layer
(``neuron_noise``, as :func:`conserve_verified.noise.inject` installs it).

:func:`monte_carlo` measures the same quantities by running the real model
with the real injectors many times; :func:`predict` and :func:`monte_carlo`
return the same :class:`LayerNoise` records, one per *tap* (the output of every
leaf module and of every boundary).

Accumulation over depth (S3): additive noise of variance ``sigma^2`` entering
after every layer of gain ``g`` accumulates as ``sigma^2 sum_{k<L} g^{2k}``
(:func:`accumulated_variance`), bounded in the depth ``L`` iff ``g < 1``, with
limit ``sigma^2 / (1 - g^2)`` (:func:`stationary_variance`).
"""

from __future__ import annotations

import contextlib
import math
import operator
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.fx as fx
from torch import nn

from ._math import conserve, normalize_dims, validate_finite, validate_tensor
from .errors import InvalidArgument, InvalidArgumentType
from .noise import (
    BiasNoise,
    Compose,
    DropoutNoise,
    GaussianNoise,
    MultiplicativeNoise,
    NoiseInjector,
    inject,
)
from .operators import (
    BoundaryTracer,
    Conserved,
    ConserveEnergy,
    Pipeline,
    hooked_boundaries,
    resolve_dims,
    traced_boundary,
)

__all__ = [
    "LINEARITY_THRESHOLD",
    "RESOLVED_SE",
    "ActivationMode",
    "LayerNoise",
    "accumulated_variance",
    "linear_noise_gain",
    "mean_variance_se",
    "monte_carlo",
    "predict",
    "relu_gaussian_moments",
    "resolved",
    "stationary_variance",
]

ActivationMode = Literal["gaussian", "slope"]

#: Validity threshold of the first-order ``C_E`` step on the linearity ratio
#: ``sqrt(tr Sigma) / rho`` (noise std over the clean norm where ``C_E`` is
#: linearised).  The neglected terms are of relative size ``O(ratio^2)`` per step,
#: but a deep, contracting stack amplifies them relative to the first-order noise:
#: in 20-boundary digits MLPs a ratio of 0.03-0.06 at a few boundaries gave 10-49%
#: error downstream, while at ratio <= 0.017 the same net agreed within 3%
#: (error ~ ratio^2: 37% / 2.7% / 0.5% at sigma 0.01 / 0.003 / 0.001).  Shallow
#: (2-boundary) nets stay within 1% up to ratio 0.056, so the threshold is a
#: conservative flag, not an error bound.
LINEARITY_THRESHOLD = 0.02
#: A predictor's error against :func:`monte_carlo` is *resolved* when it exceeds this
#: many of the estimate's relative standard errors
#: (:attr:`LayerNoise.noise_variance_rel_se`); a smaller difference is within the
#: estimate's own sampling error (about 95% of draws, the estimate being a mean).
RESOLVED_SE = 2.0


def resolved(rel_error: float | None, rel_se: float | None) -> bool | None:
    """Whether ``rel_error`` exceeds ``RESOLVED_SE * rel_se`` (``None`` if either is unknown)."""
    if rel_error is None or rel_se is None:
        return None
    return rel_error > RESOLVED_SE * rel_se


Injector = Callable[[torch.Tensor, int], torch.Tensor]

_NOISY_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_AFFINE: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.Dropout,
)
_RELU_TYPE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU)
_SMOOTH: tuple[type[nn.Module], ...] = (
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.ELU,
    nn.SiLU,
    nn.Softplus,
    nn.Hardtanh,
    nn.Softsign,
    nn.Mish,
)


# --------------------------------------------------------------------------- closed forms


def linear_noise_gain(weight: torch.Tensor, correlation: float = 0.0) -> torch.Tensor:
    r"""Per-output-unit variance of ``W xi`` for unit-variance noise ``xi`` with correlation ``c``.

    Identity (S1): ``Var[(W xi)_i] = (1 - c) sum_j W_ij^2 + c (sum_j W_ij)^2``, i.e.
    ``n (1 - c) mean_j(W_ij^2) + n^2 c mean_j(W_ij)^2`` for ``n`` inputs: the
    uncorrelated part grows with the mean of the squared weights, the
    correlated part with the squared mean of the weights.
    """
    w = validate_tensor(weight, "weight")
    if w.ndim != 2:
        raise InvalidArgument("weight", w, "must be 2-d")
    c = _unit_interval("correlation", correlation)
    return (1.0 - c) * w.pow(2).sum(1) + c * w.sum(1).pow(2)


def relu_gaussian_moments(
    mean: torch.Tensor, std: torch.Tensor, negative_slope: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Exact ``(E[phi(z)], Var[phi(z)], E[phi'(z)])`` for ``z ~ N(mean, std^2)``.

    ``phi(z) = max(z, a z)`` with ``a = negative_slope`` (ReLU for ``a = 0``).
    With ``t = mean / std``, ``P = Phi(t)``, ``p = phi_N(t)`` (standard normal
    cdf and pdf):

    * ``E[relu(z)] = mean P + std p``
    * ``E[relu(z)^2] = (mean^2 + std^2) P + mean std p``
    * ``E[phi'(z)] = a + (1 - a) P``
    * ``Var[phi(z)] = a^2 std^2 + (1-a)^2 Var[relu(z)] + 2 a (1-a) std^2 P``
      (using ``Cov(z, relu(z)) = std^2 P``, Stein's lemma).

    ``std = 0`` gives the deterministic limits (``Var = 0``, slope ``1[mean > 0]``
    or ``a``).  Computed in float64; ``Var[relu(z)] / std^2`` is clamped to
    ``[0, 1]`` (ReLU is 1-Lipschitz), which only removes rounding error.
    """
    mu = mean.to(torch.float64)
    s = std.to(torch.float64)
    a = float(negative_slope)
    pos = s > 0
    safe_s = torch.where(pos, s, torch.ones_like(s))
    t = mu / safe_s
    cdf = torch.special.ndtr(t)
    pdf = torch.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    m1 = safe_s * (t * cdf + pdf)
    # Var[relu]/s^2 = (t^2 + 1) P + t p - (t P + p)^2, clamped to [0, 1]
    v = ((t * t + 1.0) * cdf + t * pdf - (t * cdf + pdf) ** 2).clamp(0.0, 1.0)
    var_relu = v * safe_s * safe_s
    e_mean = a * mu + (1.0 - a) * m1
    e_var = a * a * s * s + (1.0 - a) ** 2 * var_relu + 2.0 * a * (1.0 - a) * s * s * cdf
    slope = a + (1.0 - a) * cdf
    det_slope = torch.where(mu > 0, torch.ones_like(mu), torch.full_like(mu, a))
    det_mean = torch.where(mu > 0, mu, a * mu)
    return (
        torch.where(pos, e_mean, det_mean),
        torch.where(pos, e_var, torch.zeros_like(mu)),
        torch.where(pos, slope, det_slope),
    )


_EPS64 = float(torch.finfo(torch.float64).eps)


def _relu_rest(mean: torch.Tensor, var: torch.Tensor, negative_slope: float) -> torch.Tensor:
    r"""``Var[phi(z)] - E[phi'(z)]^2 var >= 0`` for ``z ~ N(mean, var)``, without cancellation.

    With ``t = mean / std``, ``P = Phi(t)``, ``Q = Phi(-t)``, ``p = phi_N(t)`` and
    ``a = negative_slope``: ``(1 - a)^2 var [(t^2 + 1) P Q + t p (Q - P) - p^2]`` -- the
    difference of the two terms of :func:`relu_gaussian_moments` (``Var[relu(z)] / var =
    (t^2 + 1) P + t p - (t P + p)^2`` minus ``P^2``) rewritten with ``1 - P = Q``, so
    that it is accurate when both terms are close (``|t|`` large: the difference is
    then exponentially small, not rounding noise of size ``eps t^2``).  Clamped to
    ``[0, (1 - a)^2 var (1 - P^2)]`` (Stein's lemma and 1-Lipschitz).
    """
    pos = var > 0
    s = torch.where(pos, var, torch.ones_like(var)).sqrt()
    t = mean / s
    cdf, tail = torch.special.ndtr(t), torch.special.ndtr(-t)
    pdf = torch.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    h = (t * t + 1.0) * cdf * tail + t * pdf * (tail - cdf) - pdf * pdf
    h = torch.minimum(h.clamp_min(0.0), tail * (1.0 + cdf))
    a = float(negative_slope)
    return torch.where(pos, (1.0 - a) ** 2 * var * h, torch.zeros_like(var))


def accumulated_variance(sigma2: float, gain: float, depth: int) -> float:
    r"""Noise variance after ``depth`` layers, noise ``sigma2`` entering after each layer.

    Identity (S3): the recurrence ``v_0 = 0``, ``v_{k+1} = g^2 v_k + sigma2`` has
    ``v_L = sigma2 sum_{k=0}^{L-1} g^{2k}``; bounded in ``L`` iff ``|g| < 1`` (for
    ``sigma2 > 0``), with limit :func:`stationary_variance`.
    """
    s2 = _real_nonneg("sigma2", sigma2)
    g = _finite("gain", gain)
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise InvalidArgumentType("depth", depth, "an int")
    if depth < 0:
        raise InvalidArgument("depth", depth, "must be >= 0")
    g2 = g * g
    if g2 == 1.0:
        return s2 * depth
    return s2 * (1.0 - g2**depth) / (1.0 - g2)


def stationary_variance(sigma2: float, gain: float) -> float:
    """``lim_{L -> inf} accumulated_variance = sigma2 / (1 - g^2)`` if ``|g| < 1``, else ``inf``.

    (``0`` when ``sigma2 == 0``.)
    """
    s2 = _real_nonneg("sigma2", sigma2)
    g = _finite("gain", gain)
    if s2 == 0.0:
        return 0.0
    return s2 / (1.0 - g * g) if abs(g) < 1.0 else math.inf


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(name, value, "a real number")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(name, value, "must be finite")
    return v


def _real_nonneg(name: str, value: Any) -> float:
    v = _finite(name, value)
    if v < 0:
        raise InvalidArgument(name, value, "must be >= 0")
    return v


def _unit_interval(name: str, value: Any) -> float:
    v = _finite(name, value)
    if not 0.0 <= v <= 1.0:
        raise InvalidArgument(name, value, "must be in [0, 1]")
    return v


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class LayerNoise:
    """Noise statistics at one tap (a leaf module's or a boundary's output).

    Attributes:
        name: ``"stages.0.1:ReLU"``-style module path and type, or ``"boundary<i>"``.
        variance: ``(B, n)`` per input and per unit, the variance of the noisy
            activation over the noise.
        signal: ``(B, n)`` the clean (noise-free) activation.
        linearity: ``(B,)`` at a ``C_E`` tap of :func:`predict`, the ratio
            ``sqrt(tr Sigma) / rho`` of the noise std to the clean norm at the
            point where ``C_E`` is linearised (its Jacobian ``(r / rho)(I - u u^T)``
            is a first-order step, with neglected terms of relative size
            ``O(ratio^2)``); ``None`` elsewhere and for :func:`monte_carlo`.
        outside: ``(B, n)`` with ``predict(..., linearity_threshold=t)``, the part
            of :attr:`variance` that passed a ``C_E`` step outside the small-noise
            regime (linearity ratio > ``t``) and was carried here by the same
            linear maps; ``None`` without a threshold.
        mean: ``(B, n)`` the mean of the noisy activation over the noise
            (``None`` where not recorded); ``mean - signal`` is the systematic
            part of the noise (:attr:`bias`), e.g. the mean shift of a
            :class:`~conserve_verified.noise.BiasNoise`, whose variance is 0.
        variance_se: ``(B,)`` from :func:`monte_carlo`, the standard error of
            ``variance[b].mean()`` (the sampling error of the estimate, see
            :func:`mean_variance_se`); ``None`` for :func:`predict`, whose
            variance is computed, not sampled.
    """

    name: str
    variance: torch.Tensor
    signal: torch.Tensor
    linearity: torch.Tensor | None = None
    outside: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    variance_se: torch.Tensor | None = None

    @property
    def bias(self) -> torch.Tensor | None:
        """``(B, n)`` mean shift ``E[noisy] - clean`` (``None`` if :attr:`mean` is not recorded)."""
        return None if self.mean is None else self.mean - self.signal

    @property
    def noise_power(self) -> float:
        """Mean over inputs and units of ``E[(noisy - clean)^2] = variance + bias^2``."""
        b = self.bias
        return float(self.variance.mean() + (0.0 if b is None else b.pow(2).mean()))

    @property
    def noise_variance(self) -> float:
        """Mean over inputs and units of the noise variance."""
        return float(self.variance.mean())

    @property
    def noise_variance_se(self) -> float | None:
        """Standard error of :attr:`noise_variance` (``None`` unless sampled).

        Identity: ``sqrt(sum_b variance_se[b]^2) / B`` -- the inputs' estimates are
        independent and :attr:`noise_variance` is their mean.
        """
        if self.variance_se is None:
            return None
        return float(self.variance_se.pow(2).sum().sqrt() / self.variance_se.numel())

    @property
    def noise_variance_rel_se(self) -> float | None:
        """:attr:`noise_variance_se` over :attr:`noise_variance` (``None`` unless sampled
        with a nonzero variance)."""
        se = self.noise_variance_se
        v = self.noise_variance
        return None if se is None or v <= 0 else se / v

    @property
    def signal_power(self) -> float:
        """Mean over inputs and units of the squared clean activation."""
        return float(self.signal.pow(2).mean())

    @property
    def snr(self) -> float:
        """``signal_power / noise_variance`` (``inf`` without noise)."""
        v = self.noise_variance
        return self.signal_power / v if v > 0 else math.inf

    @property
    def max_linearity(self) -> float | None:
        """The largest :attr:`linearity` over inputs (``None`` at a tap without ``C_E``)."""
        return None if self.linearity is None else float(self.linearity.max())

    @property
    def outside_share(self) -> float | None:
        """Largest over inputs of the share of the noise variance (summed over units)
        that passed an out-of-regime ``C_E`` step (``None`` without a threshold)."""
        if self.outside is None:
            return None
        total = self.variance.sum(-1)
        part = self.outside.sum(-1)
        share = torch.where(total > 0, part / total.clamp_min(1e-300), torch.zeros_like(total))
        return float(share.clamp(0.0, 1.0).max())


# --------------------------------------------------------------------------- model walk


@dataclass(frozen=True)
class _Op:
    kind: Literal["module", "boundary"]
    module: nn.Module | None
    index: int
    name: str


def _leaves(m: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    if isinstance(m, nn.Sequential):
        for name, child in m.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
        return
    if not isinstance(m, (*_AFFINE, *_RELU_TYPE, *_SMOOTH, ConserveEnergy)):
        raise InvalidArgument(
            "model",
            f"<{type(m).__name__} at {prefix or '<root>'!r}>",
            "unsupported module for the noise predictor; supported: affine layers, "
            "elementwise activations, ConserveEnergy, nn.Sequential",
        )
    yield prefix, m


def _ops(model: nn.Module) -> list[_Op]:
    ops: list[_Op] = []
    if isinstance(model, Pipeline):
        for i, stage in enumerate(model.stages):
            for name, m in _leaves(stage, f"stages.{i}"):
                ops.append(_Op("module", m, -1, f"{name}:{type(m).__name__}"))
            if i < model.num_boundaries:
                ops.append(_Op("boundary", None, i, f"boundary{i}"))
    else:
        for name, m in _leaves(model, ""):
            ops.append(_Op("module", m, -1, f"{name}:{type(m).__name__}"))
    return ops


def _check_model(model: Any, boundary_noise: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module (Pipeline, Sequential or a layer)")
    if boundary_noise is not None and not isinstance(model, Pipeline):
        raise InvalidArgument(
            "boundary_noise", boundary_noise, "needs a Pipeline (boundaries are its stage joints)"
        )
    for name, inj in (("boundary_noise", boundary_noise),):
        if inj is not None and not callable(inj):
            raise InvalidArgumentType(name, inj, "a noise injector")
    return model


# --------------------------------------------------------------------------- moment steps


def _flat(h: torch.Tensor) -> torch.Tensor:
    return h.reshape(h.shape[0], -1)


def _call64(m: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``m(h)`` evaluated in float64 without modifying ``m``."""
    state = {k: v.detach().to(torch.float64) for k, v in m.named_parameters()}
    state.update(
        {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in m.named_buffers()}
    )
    if not state:
        out: torch.Tensor = m(h)
        return out
    out = torch.func.functional_call(m, state, (h,))
    return out


def _affine(
    m: nn.Module, mean: torch.Tensor, cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Dropout)) and m.training:
        raise InvalidArgument(
            "model", f"<{type(m).__name__} in training mode>", "call model.eval() first"
        )
    if isinstance(m, nn.Linear):
        w = m.weight.detach().to(torch.float64)
        b = None if m.bias is None else m.bias.detach().to(torch.float64)
        # A Sigma A^T per sample as two batched matmuls (no transposed copies)
        return nn.functional.linear(mean, w, b), torch.matmul(torch.matmul(w, cov), w.T)
    fshape = mean.shape[1:]
    with torch.no_grad():
        new_mean = _call64(m, mean)
        a = (
            _dense_conv_matrix(
                m, m.weight.detach().to(torch.float64), tuple(fshape), new_mean[0].numel()
            )
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
            else None
        )
        if a is not None:  # A Sigma A^T with the layer's exact dense matrix
            return new_mean, torch.matmul(torch.matmul(a, cov), a.T)
        zero = _call64(m, torch.zeros((1, *fshape), dtype=torch.float64, device=mean.device))

        def lin(rows: torch.Tensor) -> torch.Tensor:  # rows (k, n) -> (k, m): rows @ A^T
            return _flat(_call64(m, rows.reshape(-1, *fshape)) - zero)

        return new_mean, _sandwich(cov, lin)


def _sandwich(cov: torch.Tensor, lin: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``A Sigma A^T`` per sample, given ``lin(rows) = rows @ A^T`` on a stack of rows."""
    b, n = cov.shape[0], cov.shape[-1]
    sa = lin(cov.reshape(b * n, n))  # rows of Sigma A^T, (b n, k)
    k = sa.shape[-1]
    a_sigma = sa.reshape(b, n, k).transpose(1, 2).reshape(b * k, n)  # rows of A Sigma
    return lin(a_sigma).reshape(b, k, k)


def _diag(cov: torch.Tensor) -> torch.Tensor:
    return cov.diagonal(dim1=-2, dim2=-1)


def _activation(
    m: nn.Module,
    mean: torch.Tensor,
    cov: torch.Tensor,
    mode: ActivationMode,
    extra: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    shape = mean.shape
    mu = _flat(mean)
    if isinstance(m, _RELU_TYPE) and mode == "gaussian":
        a = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
        in_var = _diag(cov).clamp_min(0.0)
        new_mu, var, slope = relu_gaussian_moments(mu, in_var.sqrt(), a)
        new_cov = slope.unsqueeze(-1) * cov * slope.unsqueeze(-2)
        _diag(new_cov).copy_(var)
        if extra is not None:  # same slopes; the diagonal by the unit's variance ratio
            gain = torch.where(in_var > 0, var / in_var.clamp_min(1e-300), slope * slope)
            extra_diag = _diag(extra) * gain
            extra = slope.unsqueeze(-1) * extra * slope.unsqueeze(-2)
            _diag(extra).copy_(extra_diag)
        return new_mu.reshape(shape), new_cov, extra
    with torch.enable_grad():
        z = mean.detach().clone().requires_grad_(True)
        y = _call64(m, z)
        (g,) = torch.autograd.grad(y.sum(), z)
    d = _flat(g)
    if extra is not None:
        extra = d.unsqueeze(-1) * extra * d.unsqueeze(-2)
    return y.detach(), d.unsqueeze(-1) * cov * d.unsqueeze(-2), extra


def _tangent_sandwich(cov: torch.Tensor, u: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``J Sigma J^T`` for ``J = sqrt(scale) (I - u u^T)``, per sample, in O(n^2)."""
    # P Sigma P = Sigma - u w^T - w u^T + q u u^T  (w = Sigma u, q = u^T Sigma u)
    #           = Sigma - [u, v] [v, u]^T          (v = w - q u / 2)
    w = torch.bmm(cov, u.unsqueeze(-1)).squeeze(-1)
    q = (w * u).sum(-1, keepdim=True)
    v = w - 0.5 * q * u
    left = torch.stack((u, v), dim=-1) * scale  # (B, n, 2)
    right = torch.stack((v, u), dim=1)  # (B, 2, n)
    return torch.baddbmm(cov * scale, left, right, alpha=-1.0)


def _conserve(
    mean: torch.Tensor,
    cov: torch.Tensor,
    energy: float,
    dim: Any,
    extra: torch.Tensor | None = None,
    threshold: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``C_E`` step: new mean and covariance, the linearity ratio, the carried ``extra``.

    The linearity ratio is ``sqrt(tr Sigma) / rho`` per sample (noise std over the
    clean norm at the point of linearisation).  ``extra`` (the part of the
    covariance that passed an out-of-regime ``C_E``, see :func:`predict`
    ``linearity_threshold``) goes through the same Jacobian; for a sample whose
    ratio exceeds ``threshold`` all of its new covariance becomes ``extra``.
    """
    dims = normalize_dims(mean, dim)
    if dims != tuple(range(1, mean.ndim)):
        raise InvalidArgument(
            "dim", dim, "the predictor needs conservation over all feature dims of a sample"
        )
    mu = _flat(mean)
    rho = mu.norm(dim=-1, keepdim=True)
    if bool((rho == 0).any()):
        raise InvalidArgument("x", "<input>", "a clean activation at a conserved boundary is zero")
    u = mu / rho
    ratio = _diag(cov).sum(-1).clamp_min(0.0).sqrt() / rho.squeeze(-1)
    # J Sigma J^T with J = (r / rho) P, the Jacobian of C_E at the mean, and the
    # tangent projection P = I - u u^T, in O(n^2) as one rank-2 update
    scale = (energy / rho.pow(2)).unsqueeze(-1)  # (B, 1, 1) = (r / rho)^2
    new_cov = _tangent_sandwich(cov, u, scale)
    if extra is not None:
        extra = _tangent_sandwich(extra, u, scale)
    if threshold is not None:
        out = (ratio > threshold).view(-1, 1, 1)
        if bool(out.any()):
            extra = torch.where(out, new_cov, torch.zeros_like(new_cov) if extra is None else extra)
    return conserve(mean, energy, dims), new_cov, ratio, extra


def _check_injector_dims(inj: NoiseInjector, mean: torch.Tensor) -> None:
    if inj.dim is None:
        return
    if normalize_dims(mean, inj.dim) != tuple(range(1, mean.ndim)):
        raise InvalidArgument(
            "dim", inj.dim, "the predictor needs injector noise over all feature dims of a sample"
        )


def _multiplicative_cov(
    inj: MultiplicativeNoise, cov: torch.Tensor, mu: torch.Tensor | None
) -> torch.Tensor:
    """``cov + sigma^2 K o (cov + mu mu^T)`` with ``K = (1 - c) I + c 1 1^T``.

    ``mu=None`` for a carried part of the covariance (no clean signal of its own).
    """
    c, s2 = inj.correlation, inj.sigma**2
    second_diag = _diag(cov) if mu is None else _diag(cov) + mu.pow(2)
    if c == 0.0:
        new = cov.clone()
    elif mu is None:
        new = cov * (1.0 + c * s2)
    else:  # (1 + c s2) cov + c s2 mu mu^T in one batched rank-1 update
        new = torch.baddbmm(
            cov, mu.unsqueeze(-1), mu.unsqueeze(-2), beta=1.0 + c * s2, alpha=c * s2
        )
    _diag(new).add_((1.0 - c) * s2 * second_diag)
    return new


def _dropout_factors(inj: DropoutNoise) -> tuple[float, float]:
    """``(f, k)``: ``k = 1 - p`` keeps a unit, ``f = 1 / k`` with rescaling (else 1)."""
    return (1.0 / (1.0 - inj.p) if inj.rescale else 1.0), 1.0 - inj.p


def _dropout_cov(inj: DropoutNoise, cov: torch.Tensor, mu: torch.Tensor | None) -> torch.Tensor:
    """Covariance after dropout: ``(f k)^2 cov`` plus ``f^2 p k (diag cov + mu^2)`` on the diagonal.

    ``(f, k)`` from :func:`_dropout_factors`; ``mu=None`` for a carried part of
    the covariance.
    """
    f, keep = _dropout_factors(inj)
    second_diag = _diag(cov) if mu is None else _diag(cov) + mu.pow(2)
    new = (f * keep) ** 2 * cov
    _diag(new).add_(f * f * inj.p * keep * second_diag)
    return new


def _noise(
    inj: Injector, index: int, mean: torch.Tensor, cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(inj, Compose):
        for sub in inj.injectors:
            mean, cov = _noise(sub, index, mean, cov)
        return mean, cov
    if not isinstance(inj, (GaussianNoise, MultiplicativeNoise, DropoutNoise, BiasNoise)):
        raise InvalidArgument(
            "noise",
            inj,
            "the predictor supports GaussianNoise, MultiplicativeNoise, DropoutNoise, "
            "absolute BiasNoise and Compose of them",
        )
    if inj.boundaries is not None and index not in inj.boundaries:
        return mean, cov
    _check_injector_dims(inj, mean)
    mu = _flat(mean)
    n = mu.shape[1]
    if isinstance(inj, GaussianNoise):
        # cov + s2 K with K = (1 - c) I + c 1 1^T
        c = inj.correlation
        s2 = torch.full((mu.shape[0], 1), inj.sigma**2, dtype=cov.dtype, device=cov.device)
        if inj.relative:
            power = (mu.pow(2).sum(-1) + _diag(cov).sum(-1)) / n
            s2 = s2 * power.unsqueeze(-1)
        new = cov + (c * s2).unsqueeze(-1) if c != 0.0 else cov.clone()
        _diag(new).add_((1.0 - c) * s2)
        return mean, new
    if isinstance(inj, MultiplicativeNoise):
        return mean, _multiplicative_cov(inj, cov, mu)
    if isinstance(inj, DropoutNoise):
        f, keep = _dropout_factors(inj)
        return mean * (f * keep), _dropout_cov(inj, cov, mu)
    if inj.relative:
        raise InvalidArgument("noise", inj, "relative BiasNoise is not supported by the predictor")
    b = inj.magnitude * inj.offset(mean, tuple(range(1, mean.ndim)), index)
    return mean + b, cov


def _noise_extra(inj: Injector, index: int, extra: torch.Tensor) -> torch.Tensor:
    """How an injector transforms a carried covariance: fresh noise is not added to it."""
    if isinstance(inj, Compose):
        for sub in inj.injectors:
            extra = _noise_extra(sub, index, extra)
        return extra
    if inj.boundaries is not None and index not in inj.boundaries:  # type: ignore[attr-defined]
        return extra
    if isinstance(inj, MultiplicativeNoise):  # the carried part is modulated like the rest
        return _multiplicative_cov(inj, extra, None)
    if isinstance(inj, DropoutNoise):
        return _dropout_cov(inj, extra, None)
    return extra


# --------------------------------------------------------------------------- predictor


def _outside(
    threshold: float | None, cov: torch.Tensor, extra: torch.Tensor | None
) -> torch.Tensor | None:
    if threshold is None:
        return None
    return torch.zeros_like(_diag(cov)) if extra is None else _diag(extra).clone()


def predict(
    model: nn.Module,
    x: torch.Tensor,
    *,
    boundary_noise: Injector | None = None,
    neuron_noise: Injector | None = None,
    activation: ActivationMode = "gaussian",
    linearity_threshold: float | None = None,
) -> list[LayerNoise]:
    """Predict the noise variance at every tap of ``model`` for each input in ``x``.

    Args:
        model: a :class:`~conserve_verified.Pipeline` / :class:`~conserve_verified.Conserved`
            (stages may be ``nn.Sequential``), an ``nn.Sequential`` or a single layer.
        x: a batch of clean inputs ``(B, ...)``; the prediction is per input.
        boundary_noise: injector acting at every boundary (index = boundary number).
        neuron_noise: injector on the output of every Linear/Conv layer
            (index = the layer's position, as :func:`conserve_verified.noise.inject`).
        activation: ``"gaussian"`` (exact Gaussian moments for ReLU-type
            activations) or ``"slope"`` (local slope everywhere).
        linearity_threshold: validity diagnostic of the first-order ``C_E`` step
            (e.g. :data:`LINEARITY_THRESHOLD`).  A ``C_E`` step whose
            :attr:`LayerNoise.linearity` exceeds it for an input is *outside the
            small-noise regime* for that input; the covariance it produces is
            carried downstream by the same linear maps as the noise (fresh noise
            is not added to it), and every tap records its
            :attr:`LayerNoise.outside_share`.  ``None`` (default): no tracking
            (after the first flagged step the tracking doubles the cost).

    Every ``C_E`` tap records its :attr:`LayerNoise.linearity` (noise std over
    the clean norm where ``C_E`` is linearised) regardless of the threshold.

    Returns one :class:`LayerNoise` per tap (leaf modules and boundaries, in
    forward order).  Runs in float64 and does not modify ``model``.

    Architectures: a chain of leaf layers (``nn.Sequential``, :class:`~conserve_verified.Pipeline`,
    :class:`~conserve_verified.Conserved`) propagates the full covariance.  Any
    other model -- residual blocks (``out + shortcut(x)``), functional ReLUs,
    custom containers, pipelines with their own boundary conservers,
    submodules hooked by :func:`~conserve_verified.conserve_boundaries` -- is
    traced with :mod:`torch.fx` and propagated in factor form (the same rules,
    with exact cross-covariances between the branches of a residual block);
    supported operations: Linear/Conv1d/2d/3d, average and max pooling
    (max pooling to first order, through the argmax at the mean), BatchNorm
    in eval mode, Flatten/reshape, ReLU-type and smooth elementwise
    activations, additions, multiplication by constants, concatenation along
    channels, ``C_E``.  Anything else is refused with
    :class:`~conserve_verified.errors.InvalidArgument` naming the graph node.
    Bias noise is propagated as a mean shift (:attr:`LayerNoise.bias`).
    """
    model = _check_model(model, boundary_noise)
    if neuron_noise is not None and not callable(neuron_noise):
        raise InvalidArgumentType("neuron_noise", neuron_noise, "a noise injector")
    if (
        linearity_threshold is not None
        and _real_nonneg("linearity_threshold", linearity_threshold) <= 0
    ):
        raise InvalidArgument("linearity_threshold", linearity_threshold, "must be > 0")
    if activation not in ("gaussian", "slope"):
        raise InvalidArgument("activation", activation, "must be 'gaussian' or 'slope'")
    x = validate_tensor(x, "x")
    validate_finite(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise InvalidArgument("x", x, "must be a batch (B, ...)")
    if not _is_chain(model):
        if linearity_threshold is not None:
            raise InvalidArgument(
                "linearity_threshold",
                linearity_threshold,
                "out-of-regime tracking is available for chains of layers (Sequential, "
                "Pipeline, Conserved); for this model read LayerNoise.linearity at C_E taps",
            )
        return _predict_graph(model, x, boundary_noise, neuron_noise, activation)
    ops = _ops(model)
    mean = x.detach().to(torch.float64)
    clean = mean
    n = math.prod(mean.shape[1:])
    cov = torch.zeros(mean.shape[0], n, n, dtype=torch.float64, device=x.device)
    taps: list[LayerNoise] = []
    layer = 0
    threshold = linearity_threshold
    extra: torch.Tensor | None = None  # covariance that passed an out-of-regime C_E
    with torch.no_grad():
        for op in ops:
            ratio: torch.Tensor | None = None
            if op.kind == "module":
                m = op.module
                assert m is not None
                if isinstance(m, ConserveEnergy):
                    mean, cov, ratio, extra = _conserve(
                        mean, cov, m.energy, m.dims_for(mean), extra, threshold
                    )
                    clean = conserve(clean, m.energy, normalize_dims(clean, m.dims_for(clean)))
                elif isinstance(m, _AFFINE):
                    if extra is not None:
                        _, extra = _affine(m, mean, extra)
                    # mean and clean input go through the same affine map: one call
                    rows = mean.shape[0]
                    both, cov = _affine(m, torch.cat((mean, clean)), cov)
                    mean, clean = both[:rows], both[rows:]
                else:
                    mean, cov, extra = _activation(m, mean, cov, activation, extra)
                    clean = _call64(m, clean)
                if isinstance(m, _NOISY_LAYERS):
                    if neuron_noise is not None:
                        mean, cov = _noise(neuron_noise, layer, mean, cov)
                        if extra is not None:
                            extra = _noise_extra(neuron_noise, layer, extra)
                    layer += 1
            else:
                if boundary_noise is not None:
                    mean, cov = _noise(boundary_noise, op.index, mean, cov)
                    if extra is not None:
                        extra = _noise_extra(boundary_noise, op.index, extra)
                if isinstance(model, Conserved):
                    dims = resolve_dims(mean, model.dim)
                    mean, cov, ratio, extra = _conserve(
                        mean, cov, model.energy, dims, extra, threshold
                    )
                    clean = conserve(clean, model.energy, normalize_dims(clean, dims))
            taps.append(
                LayerNoise(
                    op.name,
                    _diag(cov).clone(),
                    _flat(clean).clone(),
                    linearity=ratio,
                    outside=_outside(threshold, cov, extra),
                    mean=_flat(mean).clone(),
                )
            )
    return taps


# --------------------------------------------------------------------------- Monte Carlo


class _Recorder:
    """Collects activations at every tap in forward order."""

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []

    def __call__(self, _m: nn.Module, _inp: Any, out: Any) -> None:
        self.values.append(out.detach())


def _record_forward(
    model: nn.Module,
    x: torch.Tensor,
    hooks: Callable[[_Recorder, list[Any]], None],
    boundary_noise: Injector | None,
    neuron_noise: Injector | None,
) -> list[torch.Tensor]:
    """One noisy forward pass of ``model`` recording every tap, in forward order.

    ``hooks(rec, handles)`` registers the module taps, appending each handle; a
    :class:`Pipeline`'s boundaries are recorded after their hook.  Every hook,
    the boundary override and the neuron-noise injection are removed afterwards.
    """
    rec = _Recorder()
    handles: list[Any] = []
    noise_handle = inject(model, neuron_noise) if neuron_noise is not None else None
    pipeline = model if isinstance(model, Pipeline) else None
    try:
        hooks(rec, handles)
        if pipeline is not None:
            original = pipeline.boundary

            def boundary(h: torch.Tensor, index: int) -> torch.Tensor:
                out = original(h, index)
                rec.values.append(out.detach())
                return out

            pipeline.boundary = boundary  # type: ignore[method-assign]
        with torch.no_grad():
            if pipeline is not None:
                with pipeline.boundary_hook(boundary_noise):
                    model(x)
            else:
                model(x)
    finally:
        if pipeline is not None and "boundary" in vars(pipeline):
            del pipeline.boundary
        for h in handles:
            h.remove()
        if noise_handle is not None:
            noise_handle.remove()
    return rec.values


def _run_taps(
    model: nn.Module,
    x: torch.Tensor,
    boundary_noise: Injector | None,
    neuron_noise: Injector | None,
) -> list[torch.Tensor]:
    def hooks(rec: _Recorder, handles: list[Any]) -> None:
        for op in _ops(model):
            if op.kind == "module":
                assert op.module is not None
                handles.append(op.module.register_forward_hook(rec))

    return _record_forward(model, x, hooks, boundary_noise, neuron_noise)


def monte_carlo(
    model: nn.Module,
    x: torch.Tensor,
    *,
    boundary_noise: Injector | None = None,
    neuron_noise: Injector | None = None,
    samples: int = 10_000,
) -> list[LayerNoise]:
    """Measure what :func:`predict` predicts: run ``model`` ``samples`` times per input.

    Each input of ``x`` is repeated ``samples`` times in one batch; the real
    injectors are installed (``boundary_noise`` as the pipeline's boundary hook,
    ``neuron_noise`` via :func:`conserve_verified.noise.inject`), every tap is
    recorded and the unbiased variance over the repeats is computed in float64.
    The clean activation comes from one noise-free pass.
    """
    model = _check_model(model, boundary_noise)
    if isinstance(samples, bool) or not isinstance(samples, int):
        raise InvalidArgumentType("samples", samples, "an int")
    if samples < 2:
        raise InvalidArgument("samples", samples, "need at least 2 samples for a variance")
    x = validate_tensor(x, "x")
    if x.ndim < 2 or x.shape[0] == 0:
        raise InvalidArgument("x", x, "must be a batch (B, ...)")
    chain = _is_chain(model)
    taps = _run_taps if chain else _run_graph_taps
    names = (
        [op.name for op in _ops(model)] if chain else [n for _, n, _ in _graph_tap_points(model)]
    )
    with _hooks_quiet(model):  # the clean pass: no noise in conserve_boundaries hooks either
        clean = [_flat(t).to(torch.float64) for t in taps(model, x, None, None)]
    per_input: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
    for b in range(x.shape[0]):
        rows = x[b : b + 1].expand(samples, *x.shape[1:]).contiguous()
        acts = [_flat(a).to(torch.float64) for a in taps(model, rows, boundary_noise, neuron_noise)]
        per_input.append([(a.var(0), a.mean(0), mean_variance_se(a)) for a in acts])
    return [
        LayerNoise(
            name,
            torch.stack([v[k][0] for v in per_input]),
            clean[k],
            mean=torch.stack([v[k][1] for v in per_input]),
            variance_se=torch.stack([v[k][2] for v in per_input]),
        )
        for k, name in enumerate(names)
    ]


def mean_variance_se(samples: torch.Tensor) -> torch.Tensor:
    """Standard error of the unit-mean sample variance of ``samples`` (``(S, n)``), 0-d.

    The estimate ``m = samples.var(0).mean()`` is ``S / (S - 1)`` times the mean over
    draws of ``q_s = mean_j (samples[s, j] - mean_j)^2``; its standard error is taken
    as ``S / (S - 1) * std(q) / sqrt(S)`` (the delta method, treating the sample mean
    as known: the neglected term is O(1/S) relative).

    Identity: for ``q`` of independent draws, ``mean_variance_se(a) ** 2 * S`` estimates
    ``Var(q) * (S / (S - 1))^2`` (``tests/test_propagation_unit.py`` checks the spread of
    repeated estimates against it).
    """
    s = samples.shape[0]
    if s < 2:
        raise InvalidArgument("samples", samples, "need >= 2 draws")
    q = (samples - samples.mean(0)).pow(2).flatten(1).mean(1)
    return q.std() * (s / (s - 1)) / math.sqrt(s)


# --------------------------------------------------------------------------- graph models
#
# Models that are not a chain of leaf layers (residual blocks, functional ReLUs,
# submodules hooked by conserve_boundaries) are traced with torch.fx and the
# noise is carried in *factor form*: every traced value is ``mean + L xi`` with
# independent unit-variance sources ``xi`` shared by all values, so the
# covariance of a value is ``L L^T`` and two branches of a residual block keep
# their cross-covariance exactly (``Cov(a + b) = (L_a + L_b)(L_a + L_b)^T``).
# Each rule is the factor form of the covariance rule above: affine maps act on
# the columns of ``L``; a ReLU scales them by the expected slopes and adds one
# fresh source per unit for the rest of the exact Gaussian variance
# (``Var[phi(z)] >= E[phi']^2 Var[z]``, Cauchy-Schwarz with Stein's lemma, so
# the rest is >= 0); ``C_E`` applies its Jacobian; injected noise adds fresh
# sources.  Where a value is the only one alive, ``L`` is compressed to
# ``n`` columns (``L = Q R``, ``L^T L = R^T R``), which keeps the cost bounded.


@dataclass(eq=False)
class _Val:
    """A traced value in factor form: ``mean + L xi`` (``L``: ``(B, S, *shape)``)."""

    mean: torch.Tensor
    clean: torch.Tensor
    factor: torch.Tensor
    var: torch.Tensor | None = None  # (B, n) cache of the column sums of squares

    @property
    def sources(self) -> int:
        return int(self.factor.shape[1])

    def variance(self) -> torch.Tensor:
        """``(B, n)`` per-unit variance ``diag(L L^T)`` (computed once per value)."""
        if self.var is None:
            self.var = self.factor.flatten(2).pow(2).sum(1)
        return self.var


_ELEMENTWISE_RELU: tuple[Any, ...] = (torch.relu, nn.functional.relu)
_AFFINE_FUNCTIONS: tuple[Any, ...] = (
    torch.flatten,
    nn.functional.avg_pool1d,
    nn.functional.avg_pool2d,
    nn.functional.adaptive_avg_pool1d,
    nn.functional.adaptive_avg_pool2d,
    nn.functional.pad,
)
_AFFINE_METHODS = (
    "flatten",
    "view",
    "reshape",
    "contiguous",
    "clone",
    "mean",
    "sum",
    "squeeze",
    "unsqueeze",
)
#: Methods that keep every unit's value, only changing the per-sample shape.
_RESHAPE_METHODS = ("flatten", "view", "reshape", "contiguous", "clone", "squeeze", "unsqueeze")
_MAXPOOL: tuple[type[nn.Module], ...] = (nn.MaxPool1d, nn.MaxPool2d)
_BATCHNORM: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


#: Largest dense matrix (entries) a Conv layer is expanded to; larger maps use the convolution.
_DENSE_ENTRIES = 1 << 22
_CONV_FN: dict[int, Any] = {
    1: nn.functional.conv1d,
    2: nn.functional.conv2d,
    3: nn.functional.conv3d,
}


def _conv_index_map(m: nn.Module, in_shape: tuple[int, ...]) -> torch.Tensor:
    """``(C_in, K, L)``: 1 + the flat input index that kernel tap ``k`` of input channel ``c``
    reads for output position ``l`` (0 where it reads zero padding).

    A depthwise convolution with one-hot kernels of the image ``1, 2, ..., n_in``, with
    the layer's stride, dilation, padding and padding mode: every output is one integer
    (or 0), exact in float64.
    """
    conv: Any = m
    c_in = int(in_shape[0])
    k = tuple(int(v) for v in conv.kernel_size)
    taps = math.prod(k)
    n_in = math.prod(in_shape)
    img = torch.arange(1, n_in + 1, dtype=torch.float64).reshape(1, *in_shape)
    onehot = (
        torch.eye(taps, dtype=torch.float64).reshape(taps, 1, *k).repeat(c_in, 1, *([1] * len(k)))
    )
    fn = _CONV_FN[len(k)]
    if conv.padding_mode != "zeros":
        img = nn.functional.pad(img, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        out = fn(img, onehot, None, conv.stride, 0, conv.dilation, c_in)
    else:
        out = fn(img, onehot, None, conv.stride, conv.padding, conv.dilation, c_in)
    return out.reshape(c_in, taps, -1).round().to(torch.long)


def _conv_matrix(m: nn.Module, weight: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The linear part of Conv layer ``m`` on inputs of shape ``in_shape`` as a dense
    ``(n_out, n_in)`` matrix whose entries are the weights themselves (exact; a weight
    read twice, e.g. through reflect padding, is the float64 sum of both reads).
    """
    groups = int(getattr(m, "groups", 1))
    idx = _conv_index_map(m, in_shape)  # (C_in, K, L)
    c_in, taps, positions = idx.shape
    c_out = weight.shape[0]
    cg, og = c_in // groups, c_out // groups
    w = weight.reshape(c_out, cg, taps)
    # input channel of (output channel o, group-local input channel j): (o // og) * cg + j
    chan = (torch.arange(c_out) // og).unsqueeze(1) * cg + torch.arange(cg).unsqueeze(0)
    cols = idx[chan]  # (C_out, cg, K, L)
    rows = (torch.arange(c_out) * positions).view(-1, 1, 1, 1) + torch.arange(positions)
    vals = w.unsqueeze(-1).expand(c_out, cg, taps, positions)
    dense = torch.zeros((c_out * positions, math.prod(in_shape) + 1), dtype=weight.dtype)
    dense.index_put_(
        (rows.expand_as(cols).reshape(-1), cols.reshape(-1)), vals.reshape(-1), accumulate=True
    )
    return dense[:, 1:]


def _dense_conv_matrix(
    m: nn.Module, weight: torch.Tensor, in_shape: tuple[int, ...], n_out: int
) -> torch.Tensor | None:
    """:func:`_conv_matrix` on the CPU within ``_DENSE_ENTRIES`` entries, else ``None``."""
    if math.prod(in_shape) * n_out > _DENSE_ENTRIES or weight.device.type != "cpu":
        return None
    return _conv_matrix(m, weight, in_shape)


def _pad_to(f: torch.Tensor, s: int) -> torch.Tensor:
    if f.shape[1] == s:
        return f
    pad = torch.zeros((f.shape[0], s - f.shape[1], *f.shape[2:]), dtype=f.dtype, device=f.device)
    return torch.cat((f, pad), 1)


class _FactorRun:
    """Interprets traced graphs on :class:`_Val` values and records the taps."""

    def __init__(
        self,
        model: nn.Module,
        activation: ActivationMode,
        neuron_noise: Injector | None,
    ) -> None:
        self.model = model
        self.activation = activation
        self.neuron_noise = neuron_noise
        self.taps: list[LayerNoise] = []
        self.twins: dict[int, list[torch.Tensor | None]] = {}
        self.mats: dict[tuple[int, tuple[int, ...]], torch.Tensor | None] = {}
        self.ratio: torch.Tensor | None = None
        self.sources = 0
        noisy = [m for _, m in model.named_modules() if isinstance(m, _NOISY_LAYERS)]
        self.noisy_index = {id(m): k for k, m in enumerate(noisy)}
        self.hooked = {h.name: h for _, h in hooked_boundaries(model)}

    # ------------------------------------------------------------ helpers

    def fresh(self, val: _Val, cols: torch.Tensor) -> _Val:
        """Append new independent sources ``cols`` (``(B, k, *shape)``) to ``val``."""
        base = _pad_to(val.factor, self.sources)
        self.sources += int(cols.shape[1])
        return _Val(val.mean, val.clean, torch.cat((base, cols), 1))

    def fresh_diag(
        self,
        val: _Val,
        std: torch.Tensor,
        keep: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> _Val:
        """New sources, one per unit, of standard deviation ``std`` (``(B, n)``).

        Only units with ``keep`` (default: ``std > 0`` for some input) get a source.
        With ``scale`` (``(B, n)``) the existing columns are first multiplied by it
        (a ReLU's slopes), in the same single allocation.
        """
        if keep is None:
            keep = (std > 0).any(0)
        idx = keep.nonzero().squeeze(-1)
        k = int(idx.numel())
        b, n = std.shape
        f = val.factor.flatten(2)
        s = f.shape[1]
        if k == 0:
            if scale is None:
                return val
            new = (f * scale.unsqueeze(1)).reshape(b, s, *val.mean.shape[1:])
            return _Val(val.mean, val.clean, new)
        total = self.sources + k
        out = f.new_zeros((b, total, n))
        if scale is None:
            out[:, :s] = f
        else:
            torch.mul(f, scale.unsqueeze(1), out=out[:, :s])
        out[:, self.sources + torch.arange(k), idx] = std[:, idx]
        self.sources = total
        return _Val(val.mean, val.clean, out.reshape(b, total, *val.mean.shape[1:]))

    def tap(self, name: str, val: _Val, linearity: torch.Tensor | None = None) -> None:
        self.taps.append(
            LayerNoise(
                name,
                val.variance().clone(),
                _flat(val.clean).clone(),
                linearity=linearity,
                mean=_flat(val.mean).clone(),
            )
        )

    def compress(self, val: _Val) -> _Val:
        """The same covariance with at most ``n`` sources (QR of the factor)."""
        b, s = val.factor.shape[:2]
        n = math.prod(val.mean.shape[1:])
        if s <= n:
            return val
        # R of L = Q R (L^T L = R^T R): LAPACK geqrf, keeping its upper triangle
        r = torch.geqrf(val.factor.reshape(b, s, n))[0][:, :n].triu()
        self.sources = n
        return _Val(val.mean, val.clean, r.reshape(b, n, *val.mean.shape[1:]))

    # ------------------------------------------------------------ steps

    def affine(self, fn: Callable[[torch.Tensor], torch.Tensor], val: _Val) -> _Val:
        b, s = val.factor.shape[:2]
        both = fn(torch.cat((val.mean, val.clean)))
        mean, clean = both[:b], both[b:]
        if s == 0:
            return _Val(mean, clean, mean.new_zeros((b, 0, *mean.shape[1:])))
        zero = fn(torch.zeros((1, *val.mean.shape[1:]), dtype=torch.float64, device=mean.device))
        cols = fn(val.factor.reshape(b * s, *val.mean.shape[1:]))
        if bool(zero.any()):  # an offset (e.g. padding with a constant): the linear part only
            cols = cols - zero
        return _Val(mean, clean, cols.reshape(b, s, *cols.shape[1:]))

    def reshape(self, val: _Val, shape: tuple[int, ...]) -> _Val:
        """The same units in another per-sample shape (views; the variance carries over)."""
        b, s = val.factor.shape[:2]
        return _Val(
            val.mean.reshape(b, *shape),
            val.clean.reshape(b, *shape),
            val.factor.reshape(b, s, *shape),
            val.var,
        )

    def relu(self, val: _Val, negative_slope: float) -> _Val:
        shape = val.mean.shape
        mu = _flat(val.mean)
        f = val.factor.flatten(2)
        in_var = val.variance()
        clean = torch.where(val.clean > 0, val.clean, negative_slope * val.clean)
        if self.activation == "slope":
            slope = torch.where(mu > 0, torch.ones_like(mu), torch.full_like(mu, negative_slope))
            new_f = f * slope.unsqueeze(1)
            mean = torch.where(val.mean > 0, val.mean, negative_slope * val.mean)
            return _Val(mean, clean, new_f.reshape(f.shape[0], f.shape[1], *shape[1:]))
        new_mu, _, slope = relu_gaussian_moments(mu, in_var.sqrt(), negative_slope)
        lin = slope.pow(2) * in_var  # the variance the scaled columns carry
        rest = _relu_rest(mu, in_var, negative_slope)
        # a source whose variance is below the float64 rounding of its unit's variance
        # changes no covariance entry beyond rounding: not created (see _relu_rest)
        keep = (rest > _EPS64 * (lin + rest)).any(0)
        out = _Val(new_mu.reshape(shape), clean, val.factor)
        out = self.fresh_diag(out, rest.sqrt(), keep=keep, scale=slope)
        out.var = lin + torch.where(keep, rest, torch.zeros_like(rest))
        return out

    def smooth(self, m: nn.Module, val: _Val) -> _Val:
        with torch.enable_grad():
            z = val.mean.detach().clone().requires_grad_(True)
            y = _call64(m, z)
            (g,) = torch.autograd.grad(y.sum(), z)
        return _Val(y.detach(), _call64(m, val.clean), val.factor * g.unsqueeze(1))

    def maxpool(self, m: nn.Module, val: _Val) -> _Val:
        # max pooling is linear around the mean: each output copies its argmax input
        pool: Any = (
            nn.functional.max_pool1d if isinstance(m, nn.MaxPool1d) else nn.functional.max_pool2d
        )
        kw = {
            k: getattr(m, k) for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
        }
        mean, idx = pool(val.mean, **kw, return_indices=True)
        clean = pool(val.clean, **kw)
        b, s = val.factor.shape[:2]
        c = val.mean.shape[1]
        src = val.factor.reshape(b, s, c, -1)
        gather = idx.reshape(b, 1, c, -1).expand(b, s, c, idx[0, 0].numel())
        cols = torch.gather(src, 3, gather).reshape(b, s, *mean.shape[1:])
        return _Val(mean, clean, cols)

    def conserve(self, val: _Val, energy: float, dim: Any, where: str) -> tuple[_Val, torch.Tensor]:
        dims = normalize_dims(val.mean, resolve_dims(val.mean, dim))
        if dims != tuple(range(1, val.mean.ndim)):
            raise InvalidArgument(
                "dim", dim, f"{where}: the predictor needs conservation over all feature dims"
            )
        mu = _flat(val.mean)
        rho = mu.norm(dim=-1, keepdim=True)
        if bool((rho == 0).any()):
            raise InvalidArgument(
                "x", "<input>", f"{where}: a clean activation at a conserved boundary is zero"
            )
        u = mu / rho
        f = val.factor.flatten(2)
        ratio = val.variance().sum(-1).sqrt() / rho.squeeze(-1)
        proj = f - (f @ u.unsqueeze(-1)) * u.unsqueeze(1)
        new_f = (math.sqrt(energy) / rho).unsqueeze(-1) * proj
        mean = conserve(val.mean, energy, dims)
        clean = conserve(val.clean, energy, normalize_dims(val.clean, dims))
        return _Val(mean, clean, new_f.reshape(val.factor.shape)), ratio

    def noise(self, inj: Injector, index: int, val: _Val) -> _Val:
        if isinstance(inj, Compose):
            for sub in inj.injectors:
                val = self.noise(sub, index, val)
            return val
        if not isinstance(inj, (GaussianNoise, MultiplicativeNoise, DropoutNoise, BiasNoise)):
            raise InvalidArgument(
                "noise",
                inj,
                "the predictor supports GaussianNoise, MultiplicativeNoise, DropoutNoise, "
                "absolute BiasNoise and Compose of them",
            )
        if inj.boundaries is not None and index not in inj.boundaries:
            return val
        _check_injector_dims(inj, val.mean)
        mu = _flat(val.mean)
        b, n = mu.shape
        shape = val.mean.shape[1:]
        f = val.factor.flatten(2)
        if isinstance(inj, GaussianNoise):
            s2 = torch.full((b, 1), inj.sigma**2, dtype=mu.dtype, device=mu.device)
            if inj.relative:
                s2 = s2 * ((mu.pow(2).sum(-1) + val.variance().sum(-1)) / n).unsqueeze(-1)
            c = inj.correlation
            val = self.fresh_diag(val, ((1.0 - c) * s2).sqrt().expand(b, n))
            if c != 0.0:
                common = (c * s2).sqrt().expand(b, n).reshape(b, 1, *shape)
                val = self.fresh(val, common)
            return val
        if isinstance(inj, MultiplicativeNoise):
            # x (1 + sigma eps): the fresh part sigma eps o x is uncorrelated with xi and has
            # covariance sigma^2 K o (Sigma + mu mu^T), K = (1 - c) I + c 1 1^T
            c, v2 = inj.correlation, inj.sigma**2
            second = val.variance() + mu.pow(2)
            val = self.fresh_diag(val, ((1.0 - c) * v2 * second).sqrt())
            if c != 0.0:
                cols = torch.cat((f, mu.unsqueeze(1)), 1) * math.sqrt(c * v2)
                val = self.fresh(val, cols.reshape(b, -1, *shape))
            return val
        if isinstance(inj, DropoutNoise):
            fac, keep = _dropout_factors(inj)
            second = val.variance() + mu.pow(2)
            scaled = _Val(val.mean * (fac * keep), val.clean, val.factor * (fac * keep))
            return self.fresh_diag(scaled, (fac * fac * inj.p * keep * second).sqrt())
        if inj.relative:
            raise InvalidArgument(
                "noise", inj, "relative BiasNoise is not supported by the predictor"
            )
        shift = inj.magnitude * inj.offset(val.mean, tuple(range(1, val.mean.ndim)), index)
        return _Val(val.mean + shift, val.clean, val.factor)

    # ------------------------------------------------------------ graphs

    def params64(self, m: nn.Module) -> list[torch.Tensor | None]:
        """Weight and bias (batch norm: channel scale and shift) in float64, once per run."""
        got = self.twins.get(id(m))
        if got is None:
            t: dict[str, Any] = {k: getattr(m, k, None) for k in ("weight", "bias")}
            if isinstance(m, _BATCHNORM):
                stats: Any = m
                scale = torch.rsqrt(stats.running_var.detach().to(torch.float64) + stats.eps)
                shift = -stats.running_mean.detach().to(torch.float64) * scale
                if t["weight"] is not None:
                    w = t["weight"].detach().to(torch.float64)
                    scale, shift = scale * w, shift * w + t["bias"].detach().to(torch.float64)
                got = [scale, shift]
            else:
                got = [None if v is None else v.detach().to(torch.float64) for v in t.values()]
            self.twins[id(m)] = got
        return got

    def layer(self, m: nn.Module, val: _Val) -> _Val:
        """A Conv or eval-mode BatchNorm layer: the linear part acts on the factor columns."""
        w, b = self.params64(m)
        b_, s = val.factor.shape[:2]
        if isinstance(m, _BATCHNORM):
            shape = (1, -1) + (1,) * (val.mean.ndim - 2)
            assert w is not None and b is not None
            sc, sh = w.reshape(shape), b.reshape(shape)
            var = None
            if val.var is not None:  # every unit's variance scales by its channel's scale^2
                var = (val.var.reshape(val.mean.shape) * sc.pow(2)).reshape(val.var.shape)
            return _Val(val.mean * sc + sh, val.clean * sc + sh, val.factor * sc.unsqueeze(1), var)
        conv: Any = getattr(m, "_conv_forward")  # noqa: B009 -- Conv's own padding handling
        assert w is not None
        both = conv(torch.cat((val.mean, val.clean)), w, b)
        n = val.mean.shape[0]
        out_shape = both.shape[1:]
        dense = self.dense(m, w, tuple(val.mean.shape[1:]), math.prod(out_shape))
        if dense is None:
            cols = conv(val.factor.reshape(b_ * s, *val.mean.shape[1:]), w, None)
        else:  # the same linear map as one matrix product over all inputs and columns
            cols = torch.matmul(val.factor.reshape(b_ * s, dense.shape[0]), dense)
        return _Val(both[:n], both[n:], cols.reshape(b_, s, *out_shape))

    def dense(
        self, m: nn.Module, w: torch.Tensor, in_shape: tuple[int, ...], n_out: int
    ) -> torch.Tensor | None:
        """``A^T`` (``(n_in, n_out)``) of Conv layer ``m``, once per run and input shape;
        ``None`` where the matrix would be too large."""
        key = (id(m), in_shape)
        if key not in self.mats:
            a = _dense_conv_matrix(m, w, in_shape, n_out)
            self.mats[key] = None if a is None else a.T.contiguous()
        return self.mats[key]

    def run_graph(self, root: nn.Module, prefix: str, val: _Val) -> _Val:
        graph = _trace(root)
        modules = dict(root.named_modules())
        nodes = list(graph.nodes)
        last_use = {node: i for i, node in enumerate(nodes)}
        for i, node in enumerate(nodes):
            for inp in node.all_input_nodes:
                last_use[inp] = max(last_use[inp], i)
        env: dict[fx.Node, Any] = {}
        out: Any = None
        for i, node in enumerate(nodes):
            if node.op == "placeholder":
                if out is not None:
                    raise InvalidArgument("model", type(root).__name__, "needs exactly one input")
                env[node] = out = val
                continue
            if node.op == "output":
                result = node.args[0]
                if not isinstance(result, fx.Node) or not isinstance(env[result], _Val):
                    raise InvalidArgument(
                        "model", type(root).__name__, "must return a single tensor"
                    )
                return env[result]
            env[node] = self.node(node, env, modules, prefix)
            alive = [
                env[n] for n in nodes[: i + 1] if last_use[n] > i and isinstance(env.get(n), _Val)
            ]
            if isinstance(env[node], _Val) and len(alive) == 1 and alive[0] is env[node]:
                env[node] = self.compress(env[node])
            for n in node.all_input_nodes:  # free what no later node needs
                if last_use[n] <= i and n is not node:
                    env.pop(n, None)
        raise InvalidArgument("model", type(root).__name__, "graph without output")

    def _refuse(self, node: fx.Node, prefix: str, what: str) -> InvalidArgument:
        return InvalidArgument(
            "model",
            type(self.model).__name__,
            f"{what} at {prefix + '.' if prefix else ''}{node.name} ({node.format_node()}) "
            "is not supported by the noise predictor; supported: Linear/Conv layers, "
            "average/max pooling, BatchNorm (eval), Flatten/reshape, ReLU-type and smooth "
            "elementwise activations, residual additions, concatenation along channels, "
            "ConserveEnergy and conserve_boundaries boundaries",
        )

    def node(
        self, node: fx.Node, env: dict[fx.Node, Any], modules: dict[str, nn.Module], prefix: str
    ) -> Any:
        def arg(a: Any) -> Any:
            if isinstance(a, fx.Node):
                return env[a]
            if isinstance(a, (list, tuple)):
                return type(a)(arg(x) for x in a)
            return a

        args = arg(node.args)
        kwargs = {k: arg(v) for k, v in node.kwargs.items()}
        vals = [a for a in (*args, *kwargs.values()) if isinstance(a, _Val)]
        target = node.target
        if node.op == "get_attr":
            raise self._refuse(node, prefix, "direct use of a parameter or buffer")
        if node.op == "call_module":
            path = str(target)
            m = modules[path]
            name = f"{prefix}.{path}" if prefix else path
            val = args[0]
            if not isinstance(val, _Val):
                raise self._refuse(node, prefix, f"module {path!r} on a non-traced input")
            self.ratio = None
            out = self.module(m, val, name, node, prefix)
            if isinstance(m, _NOISY_LAYERS) and self.neuron_noise is not None:
                out = self.noise(self.neuron_noise, self.noisy_index[id(m)], out)
            self.tap(f"{name}:{type(m).__name__}", out, self.ratio)
            return out
        if node.op == "call_function" and target is traced_boundary:
            key = args[2] if len(args) > 2 else None
            h = self.hooked.get(key) if isinstance(key, str) else None
            if h is None:
                raise self._refuse(node, prefix, f"boundary {key!r} of another model")
            val = args[0]
            if h.hook is not None:
                val = self.noise(h.hook, h.index, val)
            val, ratio = self.conserve(
                val, h.conserver.energy, h.conserver.dim, f"boundary {key!r}"
            )
            self.tap(f"{key}:boundary", val, ratio)
            return val
        if not vals:  # sizes, shapes, constants
            return self._concrete(node, args, kwargs)
        if (node.op == "call_function" and target is getattr) or (
            node.op == "call_method" and target in ("size", "dim", "numel")
        ):  # metadata of a traced value: read it from the mean (same shape, dtype, device)
            meta = [a.mean if isinstance(a, _Val) else a for a in args]
            return self._concrete(node, meta, kwargs)
        if node.op == "call_function" and target in _ELEMENTWISE_RELU:
            return self.relu(args[0], 0.0)
        if node.op == "call_function" and target is nn.functional.leaky_relu:
            slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
            return self.relu(args[0], float(slope))
        is_add = target in (operator.add, torch.add) or (
            node.op == "call_method" and target == "add"
        )
        is_sub = target in (operator.sub, torch.sub) or (
            node.op == "call_method" and target == "sub"
        )
        if is_add or is_sub:
            return self._add(args[0], args[1], -1.0 if is_sub else 1.0, node, prefix)
        if target in (operator.mul, torch.mul, operator.truediv, torch.div) or (
            node.op == "call_method" and target in ("mul", "div")
        ):
            return self._scale(
                node, args, prefix, divide=target in (operator.truediv, torch.div, "div")
            )
        if target is operator.neg:
            v = args[0]
            return _Val(-v.mean, -v.clean, -v.factor)
        if target in (torch.cat, torch.concat):
            return self._cat(node, args, kwargs, prefix)
        if len(vals) == 1 and (
            (node.op == "call_function" and target in _AFFINE_FUNCTIONS)
            or (node.op == "call_method" and target in _AFFINE_METHODS)
        ):
            return self._affine_call(node, args, kwargs, prefix)
        raise self._refuse(
            node, prefix, f"operation {node.op} {getattr(target, '__name__', target)!r}"
        )

    def _concrete(self, node: fx.Node, args: Any, kwargs: dict[str, Any]) -> Any:
        if node.op == "call_function":
            return node.target(*args, **kwargs)  # type: ignore[operator]
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        raise InvalidArgument("model", type(self.model).__name__, f"unsupported node {node.op}")

    def _affine_call(self, node: fx.Node, args: Any, kwargs: dict[str, Any], prefix: str) -> _Val:
        idx = next(i for i, a in enumerate(args) if isinstance(a, _Val))
        val = args[idx]
        batch = val.mean.shape[0]
        if node.op == "call_method" and node.target in ("view", "reshape"):
            spec = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            shape = [int(s) for s in spec]
            if not shape or shape[0] not in (batch, -1):
                raise self._refuse(node, prefix, f"reshape to {shape} mixing samples")
            rest = shape[1:]

            def fn(t: torch.Tensor) -> torch.Tensor:  # the same reshape of every sample
                return t.reshape(t.shape[0], *rest)

        else:

            def fn(t: torch.Tensor) -> torch.Tensor:
                new_args = list(args)
                new_args[idx] = t
                if node.op == "call_method":
                    out: torch.Tensor = getattr(t, str(node.target))(*new_args[1:], **kwargs)
                    return out
                return node.target(*new_args, **kwargs)  # type: ignore[operator]

        probe = fn(val.mean)
        if probe.ndim == 0 or probe.shape[0] != batch:
            raise self._refuse(node, prefix, "an operation that mixes or drops the batch dim")
        if (node.op == "call_method" and node.target in _RESHAPE_METHODS) or (
            node.op == "call_function" and node.target is torch.flatten
        ):
            return self.reshape(val, tuple(probe.shape[1:]))
        return self.affine(fn, val)

    def _add(self, a: Any, b: Any, sign: float, node: fx.Node, prefix: str) -> _Val:
        if isinstance(a, _Val) and isinstance(b, _Val):
            if a.mean.shape != b.mean.shape:
                raise self._refuse(
                    node,
                    prefix,
                    f"broadcasting addition of {tuple(a.mean.shape)} and {tuple(b.mean.shape)}",
                )
            s = max(a.sources, b.sources)
            return _Val(
                a.mean + sign * b.mean,
                a.clean + sign * b.clean,
                _pad_to(a.factor, s) + sign * _pad_to(b.factor, s),
            )
        if isinstance(a, _Val):
            return _Val(a.mean + sign * b, a.clean + sign * b, a.factor)
        return _Val(
            a - b.mean if sign < 0 else a + b.mean,
            a - b.clean if sign < 0 else a + b.clean,
            sign * b.factor,
        )

    def _scale(self, node: fx.Node, args: Any, prefix: str, divide: bool) -> _Val:
        vals = [a for a in args if isinstance(a, _Val)]
        const = [a for a in args if not isinstance(a, _Val)]
        if len(vals) != 1 or len(const) != 1 or not isinstance(const[0], (int, float)):
            raise self._refuse(node, prefix, "a product with a traced tensor (not affine)")
        if divide and not isinstance(args[0], _Val):
            raise self._refuse(node, prefix, "division by a traced tensor")
        k = 1.0 / float(const[0]) if divide else float(const[0])
        v = vals[0]
        return _Val(v.mean * k, v.clean * k, v.factor * k)

    def _cat(self, node: fx.Node, args: Any, kwargs: dict[str, Any], prefix: str) -> _Val:
        parts = list(args[0])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if not all(isinstance(p, _Val) for p in parts) or dim % parts[0].mean.ndim != 1:
            raise self._refuse(
                node, prefix, "concatenation other than of traced tensors along dim 1"
            )
        s = max(p.sources for p in parts)
        return _Val(
            torch.cat([p.mean for p in parts], 1),
            torch.cat([p.clean for p in parts], 1),
            torch.cat([_pad_to(p.factor, s) for p in parts], 2),
        )

    def module(self, m: nn.Module, val: _Val, name: str, node: fx.Node, prefix: str) -> _Val:
        if isinstance(m, ConserveEnergy):
            val, self.ratio = self.conserve(val, m.energy, m.dim, name)
            return val
        if isinstance(m, _AFFINE):
            if (
                isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Dropout))
                and m.training
            ):
                raise InvalidArgument(
                    "model",
                    f"<{type(m).__name__} {name!r} in training mode>",
                    "call model.eval() first",
                )
            if isinstance(m, nn.Linear):
                w = m.weight.detach().to(torch.float64)
                bias = None if m.bias is None else m.bias.detach().to(torch.float64)
                return _Val(
                    nn.functional.linear(val.mean, w, bias),
                    nn.functional.linear(val.clean, w, bias),
                    nn.functional.linear(val.factor, w),
                )
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, *_BATCHNORM)):
                return self.layer(m, val)
            if isinstance(m, (nn.Flatten, nn.Unflatten, nn.Identity)):
                return self.reshape(val, tuple(m(val.mean).shape[1:]))
            return self.affine(lambda t: _call64(m, t), val)
        if isinstance(m, _RELU_TYPE):
            return self.relu(val, float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0)
        if isinstance(m, _MAXPOOL):
            return self.maxpool(m, val)
        if isinstance(m, _SMOOTH):
            return self.smooth(m, val)
        raise self._refuse(node, prefix, f"module {name!r} ({type(m).__name__})")


_TRACES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], fx.Graph]] = (
    weakref.WeakKeyDictionary()
)


def _trace(root: nn.Module) -> fx.Graph:
    """The fx graph of ``root`` (cached per module and set of conservation hooks)."""
    key = tuple(id(h) for _, h in hooked_boundaries(root))
    hit = _TRACES.get(root)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        graph = BoundaryTracer().trace(root)
    except Exception as exc:  # fx raises many types for untraceable Python
        raise InvalidArgument(
            "model", type(root).__name__, f"cannot be traced with torch.fx: {exc}"
        ) from exc
    _TRACES[root] = (key, graph)
    return graph


def _is_chain(model: nn.Module) -> bool:
    """Whether the covariance path applies: a chain of supported leaves, no hooked boundaries."""
    if hooked_boundaries(model):
        return False
    if isinstance(model, Pipeline) and type(model) not in (Pipeline, Conserved):
        return False
    try:
        _ops(model)
    except InvalidArgument:
        return False
    return True


def _predict_graph(
    model: nn.Module,
    x: torch.Tensor,
    boundary_noise: Injector | None,
    neuron_noise: Injector | None,
    activation: ActivationMode,
) -> list[LayerNoise]:
    run = _FactorRun(model, activation, neuron_noise)
    mean = x.detach().to(torch.float64)
    val = _Val(mean, mean, mean.new_zeros((mean.shape[0], 0, *mean.shape[1:])))
    with torch.no_grad():
        if not isinstance(model, Pipeline):
            run.run_graph(model, "", val)
            return run.taps
        for i, stage in enumerate(model.stages):
            val = run.run_graph(stage, f"stages.{i}", val)
            if i >= model.num_boundaries:
                break
            if boundary_noise is not None:
                val = run.noise(boundary_noise, i, val)
            ratio = None
            if isinstance(model, Conserved):
                val, ratio = run.conserve(val, model.energy, model.dim, f"boundary {i}")
            elif isinstance(conservers := getattr(model, "conservers", None), nn.ModuleList):
                before = len(run.taps)
                run.ratio = None
                val = run.run_graph(conservers[i], f"conservers.{i}", val)
                ratio = run.ratio  # of the boundary's C_E (None if it has none)
                del run.taps[before:]
            val = run.compress(val)
            run.tap(f"boundary{i}", val, ratio)
    return run.taps


@contextlib.contextmanager
def _hooks_quiet(model: nn.Module) -> Iterator[None]:
    """Suspend the user hooks (e.g. noise) of ``model``'s conservation boundaries."""
    hooks = [h for _, h in hooked_boundaries(model)]
    saved = [h.hook for h in hooks]
    try:
        for h in hooks:
            h.hook = None
        yield
    finally:
        for h, hook in zip(hooks, saved, strict=True):
            h.hook = hook


def _graph_tap_points(model: nn.Module) -> list[tuple[str, str, Any]]:
    """``(kind, tap name, object)`` the Monte Carlo twin records, in the predictor's order."""
    points: list[tuple[str, str, Any]] = []
    hooked = {h.name: h for _, h in hooked_boundaries(model)}

    def walk(root: nn.Module, prefix: str) -> None:
        modules = dict(root.named_modules())
        for node in _trace(root).nodes:
            if node.op == "call_module":
                path = str(node.target)
                m = modules[path]
                name = f"{prefix}.{path}" if prefix else path
                points.append(("module", f"{name}:{type(m).__name__}", m))
            elif node.op == "call_function" and node.target is traced_boundary:
                key = str(node.args[2])
                points.append(("conserver", f"{key}:boundary", hooked[key].conserver))

    if isinstance(model, Pipeline):
        for i, stage in enumerate(model.stages):
            walk(stage, f"stages.{i}")
            if i < model.num_boundaries:
                points.append(("boundary", f"boundary{i}", i))
    else:
        walk(model, "")
    return points


def _run_graph_taps(
    model: nn.Module,
    x: torch.Tensor,
    boundary_noise: Injector | None,
    neuron_noise: Injector | None,
) -> list[torch.Tensor]:
    # a module's tap is its raw output (before a boundary hook on it), unless neuron
    # noise is injected there: then after the noise, as the predictor records it
    prepend = neuron_noise is None

    def hooks(rec: _Recorder, handles: list[Any]) -> None:
        seen: set[int] = set()
        for kind, _name, obj in _graph_tap_points(model):
            if kind in ("module", "conserver") and id(obj) not in seen:
                seen.add(id(obj))
                handles.append(obj.register_forward_hook(rec, prepend=prepend))

    return _record_forward(model, x, hooks, boundary_noise, neuron_noise)
