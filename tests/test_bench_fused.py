"""The fused fast path computes exactly the arithmetic it documents (bitwise on CPU).

Identities of :mod:`conserve_verified._fused`: its forward and backward agree
with the whole-tensor reference expressions of :mod:`conserve_verified._math`
bit for bit, on one block and across many blocks, for every dtype and for
trailing multi-dim feature maps -- except the one-pass forward (float32,
float16, bfloat16), which equals its own expression
``(xa * (float32(r) / vector_norm(xa))).to(dtype)`` (``xa = x.float()``) value for
value and the reference within the tolerance table; unsupported layouts return
``None``.
"""

from __future__ import annotations

import math

import pytest
import torch

from conserve_verified import _fused, _native, conserve
from conserve_verified._math import feature_count
from conserve_verified.proof.finite import lane_fold_norms
from conserve_verified.testing import FLOAT_DTYPES
from conserve_verified.tolerances import tolerance


def _one_pass_forward(x: torch.Tensor, e: float, dims: tuple[int, ...]) -> torch.Tensor:
    """The one-pass expression: ``(xa * (float32(r) / ||xa||)).to(x.dtype)``, ``xa = x.float()``,
    the norm by the native kernel's order (``lane_fold_norms``, 16 lanes) where it runs,
    else by torch's norm kernel on the whole float32 tensor."""
    rows = x.numel() // feature_count(x, dims)
    xa = x.reshape(rows, -1).float()
    nrm = _one_pass_norm(xa, x.dtype)
    return (xa * (torch.full_like(nrm, math.sqrt(e)) / nrm)).to(x.dtype).view(x.shape)


def _one_pass_norm(xa: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Row norms of float32 ``(rows, n)`` ``xa`` in the order of the kernel run for ``dtype``."""
    if _native.handles(dtype):
        return torch.from_numpy(lane_fold_norms(xa.numpy(), _native.LANES))[:, None]
    return torch.linalg.vector_norm(xa, 2, -1, keepdim=True)


def _path_forward(x: torch.Tensor, e: float, dims: tuple[int, ...]) -> torch.Tensor:
    """The expression the fast path documents for this dtype and length."""
    if _fused.one_pass(x.dtype, feature_count(x, dims)):
        return _one_pass_forward(x, e, dims)
    return _reference_forward(x, e, dims)


def _reference_forward(x: torch.Tensor, e: float, dims: tuple[int, ...]) -> torch.Tensor:
    xa = x.to(tolerance(x.dtype).accumulation)
    ss = (xa * xa).sum(dims, keepdim=True)
    return (xa * (torch.rsqrt(ss) * math.sqrt(e))).to(x.dtype)


def _reference_backward(
    g: torch.Tensor, y: torch.Tensor, inv_rho: torch.Tensor, e: float, dims: tuple[int, ...]
) -> torch.Tensor:
    acc = inv_rho.dtype
    ga, ya = g.to(acc), y.to(acc)
    dot = (ya * ga).sum(dims, keepdim=True)
    return ((inv_rho * math.sqrt(e)) * (ga - ya * (dot / e))).to(g.dtype)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few samples, so that small tensors span many blocks."""
    monkeypatch.setattr(_fused, "BLOCK_BYTES", 3 * 40 * 4)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize(("shape", "dims"), [((37, 40), (1,)), ((5, 3, 4, 6), (1, 2, 3))])
@pytest.mark.parametrize("blocks", ["one", "many"])
def test_fused_forward_backward_bitwise_equal_reference(
    request: pytest.FixtureRequest,
    dtype: torch.dtype,
    shape: tuple[int, ...],
    dims: tuple[int, ...],
    blocks: str,
) -> None:
    if blocks == "many":
        request.getfixturevalue("small_blocks")
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    g = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    e = 2.5
    out = _fused.forward(x, e, dims)
    assert out is not None
    y, ss = out
    assert torch.equal(y, _path_forward(x, e, dims))
    inv_rho = torch.rsqrt(ss)
    grad = _fused.backward(g, y, inv_rho, e, dims)
    assert grad is not None and grad.dtype == dtype
    assert torch.equal(grad, _reference_backward(g, y, inv_rho, e, dims))


def test_fused_rows_view_only_trailing_contiguous() -> None:
    x = torch.randn(4, 5, 6)
    assert _fused.rows_view(x, (2,)) == (20, 6)
    assert _fused.rows_view(x, (1, 2)) == (4, 30)
    assert _fused.rows_view(x, (1,)) is None
    assert _fused.rows_view(x.transpose(1, 2), (2,)) is None
    assert _fused.forward(x, 1.0, (0,)) is None
    y = torch.randn(4, 5, 6)
    assert (
        _fused.backward(torch.ones(()).expand(4, 5, 6), y, torch.ones(4, 5, 1), 1.0, (2,)) is None
    )


def test_fused_conserve_autograd_matches_reference_gradient(small_blocks: None) -> None:
    x = torch.randn(9, 40, dtype=torch.float32, requires_grad=True)
    g = torch.randn(9, 40)
    (grad,) = torch.autograd.grad(conserve(x, 3.0), x, g)
    y = _path_forward(x.detach(), 3.0, (1,))
    nrm = _one_pass_norm(x.detach(), x.dtype)
    inv_rho = torch.rsqrt(nrm * nrm)  # the one-pass path's 1/rho
    assert torch.equal(grad, _reference_backward(g, y, inv_rho, 3.0, (1,)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 40, 1023, 8192, 8193])
def test_fused_one_pass_only_up_to_max_features(dtype: torch.dtype, n: int) -> None:
    """float32/float16/bfloat16 rows of ``n <= ONE_PASS_MAX_FEATURES`` take the one-pass
    kernel, longer ones and float64 the cascade; both within the table."""
    from conserve_verified.tolerances import ONE_PASS_MAX_FEATURES, energy_atol

    x = torch.randn(3, n, generator=torch.Generator().manual_seed(n)).to(dtype)
    out = _fused.forward(x, 2.0, (1,))
    assert out is not None
    if n <= ONE_PASS_MAX_FEATURES:
        assert _fused.one_pass(dtype, n)
        assert torch.equal(out[0], _one_pass_forward(x, 2.0, (1,)))
    else:
        assert not _fused.one_pass(dtype, n)
        assert torch.equal(out[0], _reference_forward(x, 2.0, (1,)))
    assert not _fused.one_pass(torch.float64, n)
    err = ((out[0].double() ** 2).sum(-1) - 2.0).abs().max()
    assert float(err) <= energy_atol(dtype, 2.0, n)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (64, 257), (3, 8192)])
def test_fused_scale_rows_is_one_float32_product_rounded_once(
    small_blocks: None, dtype: torch.dtype, shape: tuple[int, int]
) -> None:
    """``scale_rows(x, s) == (x.float() * s).to(dtype)`` value for value; ``one_pass_norm``
    of a half-precision tensor is the norm kernel on its float32 up-conversion."""
    gen = torch.Generator().manual_seed(shape[1])
    x = (torch.randn(shape, generator=gen) * 4).to(dtype)
    s = torch.rand(shape[0], 1, generator=gen) * 3 + 2.0**-10
    assert torch.equal(_fused.scale_rows(x, s), (x.float() * s).to(dtype))
    norm = torch.linalg.vector_norm(x.float(), 2, -1, keepdim=True)
    with _native.disabled():  # torch's kernels (the native norms: tests/test_native.py)
        assert torch.equal(_fused.one_pass_norm(x), norm)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cuda_math_matches_reference_on_cpu(dtype: torch.dtype) -> None:
    """The whole-tensor math compiled on CUDA is the reference math (checked eagerly here)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(7, 33, generator=gen, dtype=torch.float64).to(dtype)
    g = torch.randn(7, 33, generator=gen, dtype=torch.float64).to(dtype)
    y, ss = _fused.cuda_forward_math(x, math.sqrt(2.0))
    assert torch.equal(y, _reference_forward(x, 2.0, (1,)))
    inv = torch.rsqrt(ss)
    grad = _fused.cuda_backward_math(g, y, inv, 2.0)
    assert torch.equal(grad, _reference_backward(g, y, inv, 2.0, (1,)))


def test_fused_disabled_takes_reference_path() -> None:
    x = torch.randn(3, 8)
    with _fused.disabled():
        assert not _fused.is_enabled()
        assert _fused.forward(x, 1.0, (1,)) is None
        y_ref = conserve(x, 1.0)
    assert _fused.is_enabled()
    assert _fused.forward(x, 1.0, (1,)) is not None
    assert torch.equal(y_ref, _reference_forward(x, 1.0, (1,)))
    assert torch.equal(conserve(x, 1.0), _path_forward(x, 1.0, (1,)))


def test_fused_one_pass_cached_root_made_in_inference_mode_serves_autograd() -> None:
    """The cached ``float32(r)`` tensor made under ``inference_mode`` works in autograd."""
    _fused._root_tensor.cache_clear()
    with torch.inference_mode():
        conserve(torch.randn(3, 5), 7.0)
    x = torch.randn(3, 5, requires_grad=True)
    conserve(x, 7.0).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
