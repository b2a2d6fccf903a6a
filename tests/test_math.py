"""Unit tests of the operator math, one per identity/behaviour stated in ``_math``."""

from __future__ import annotations

import math

import pytest
import torch

from conserve_verified import InvalidArgument, InvalidArgumentType, conserve, energy, safe_norm
from conserve_verified.testing import FLOAT_DTYPES, measure_energy
from conserve_verified.tolerances import energy_atol


def _assert_energy(y: torch.Tensor, e: float, dim=-1) -> None:
    from conserve_verified._math import feature_count, normalize_dims

    dims = normalize_dims(y, dim)
    err = (measure_energy(y, dims) - e).abs().max().item()
    assert err <= energy_atol(y.dtype, e, feature_count(y, dims)), (y.dtype, err)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_energy_of_conserve_equals_E(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 33, generator=g, dtype=torch.float64).to(dtype)
    for e in (1.0, 0.37, 250.0):
        y = conserve(x, e)
        assert y.dtype == dtype and y.shape == x.shape
        _assert_energy(y, e)


def test_energy_matches_float64_reference() -> None:
    x = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(energy(x), (x**2).sum(-1))
    torch.testing.assert_close(safe_norm(x) ** 2, energy(x))


def test_energy_over_feature_map_dims() -> None:
    x = torch.randn(3, 2, 4, 5)
    torch.testing.assert_close(energy(x, (1, 2, 3)), x.double().pow(2).sum((1, 2, 3)).float())
    y = conserve(x, 3.0, dim=(1, 2, 3))
    _assert_energy(y, 3.0, (1, 2, 3))


@pytest.mark.parametrize(
    ("dtype", "value", "n"),
    [
        (torch.float32, 1e30, 16),  # squares overflow fp32
        (torch.float32, 1e-30, 16),  # squares underflow fp32
        (torch.float32, 1e-44, 16),  # subnormal inputs
        (torch.float16, 300.0, 1024),  # energy 9.2e7 overflows fp16
        (torch.float16, 6e-8, 8),  # fp16 subnormal
        (torch.bfloat16, 1e30, 64),
        (torch.float64, 1e300, 8),
        (torch.float64, 1e-310, 8),
    ],
)
def test_conserve_is_overflow_and_underflow_safe(dtype: torch.dtype, value: float, n: int) -> None:
    x = torch.full((2, n), value, dtype=dtype)
    x[1, ::2] = -x[1, ::2]
    y = conserve(x, 1.0)
    assert bool(torch.isfinite(y).all())
    _assert_energy(y, 1.0)
    torch.testing.assert_close(
        y[0].double(), torch.full((n,), 1 / math.sqrt(n), dtype=torch.float64), rtol=1e-2, atol=0
    )


def test_energy_is_overflow_safe_in_accumulation_dtype() -> None:
    x = torch.full((1, 1024), 300.0, dtype=torch.float16)
    assert energy(x).dtype == torch.float32
    assert math.isclose(float(energy(x)), 300.0**2 * 1024, rel_tol=1e-6)
    tiny = torch.full((1, 4), 1e-30, dtype=torch.float32)
    assert math.isclose(float(energy(tiny)), 4e-60, rel_tol=1e-5) or float(energy(tiny)) == 0.0


def test_conserve_idempotent() -> None:
    x = torch.randn(10, 9, dtype=torch.float64)
    y = conserve(x, 2.0)
    torch.testing.assert_close(conserve(y, 2.0), y, rtol=1e-14, atol=0)


def test_conserve_zero_homogeneous_and_sign_flip() -> None:
    x = torch.randn(10, 9, dtype=torch.float64)
    torch.testing.assert_close(conserve(3.5 * x), conserve(x), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(conserve(-0.25 * x), -conserve(x), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_conserve_rejects_nonfinite_with_position(dtype: torch.dtype, bad: float) -> None:
    x = torch.ones(3, 5, dtype=dtype)
    x[2, 3] = bad
    with pytest.raises(InvalidArgument, match=r"index \(2, 3\)") as info:
        conserve(x)
    assert info.value.argument == "x"
    with pytest.raises(InvalidArgument, match=r"index \(2, 3\)"):
        energy(x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conserve_zero_sample_raises_by_default(dtype: torch.dtype) -> None:
    x = torch.ones(3, 4, dtype=dtype)
    x[1] = 0
    with pytest.raises(
        InvalidArgument,
        match=r"sample at index \(1,\) \(over dims \(0,\); feature dims \(1,\)\) is all zeros",
    ):
        conserve(x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conserve_zero_sample_uniform_policy(dtype: torch.dtype) -> None:
    x = torch.ones(3, 4, dtype=dtype)
    x[1] = 0
    y = conserve(x, 4.0, zero="uniform")
    torch.testing.assert_close(y[1].double(), torch.ones(4, dtype=torch.float64))
    _assert_energy(y, 4.0)


def test_fp16_zero_vector_is_not_nan() -> None:
    # torch.nn.functional.normalize returns NaN here in fp16; we raise or map, never NaN.
    x = torch.zeros(1, 8, dtype=torch.float16)
    with pytest.raises(InvalidArgument):
        conserve(x)
    assert bool(torch.isfinite(conserve(x, zero="uniform")).all())


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"energy": -1.0}, InvalidArgument, r"energy=-1\.0"),
        ({"energy": 0.0}, InvalidArgument, r"energy=0\.0"),
        ({"energy": float("nan")}, InvalidArgument, r"energy=nan"),
        ({"energy": "1"}, InvalidArgumentType, r"energy='1'"),
        ({"energy": True}, InvalidArgumentType, r"energy=True"),
        ({"dim": 5}, InvalidArgument, r"dim=5: out of range"),
        ({"dim": (1, 1)}, InvalidArgument, r"repeats"),
        ({"dim": 1.0}, InvalidArgumentType, r"dim=1\.0"),
        ({"dim": ()}, InvalidArgument, r"at least one"),
        ({"zero": "ignore"}, InvalidArgument, r"zero='ignore'"),
    ],
)
def test_conserve_rejects_bad_arguments(kwargs: dict, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        conserve(torch.ones(2, 3), **kwargs)


def test_conserve_rejects_bad_tensor() -> None:
    with pytest.raises(InvalidArgumentType, match=r"x=\[1\.0\]"):
        conserve([1.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"torch\.int64"):
        conserve(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(InvalidArgument, match="0-d"):
        conserve(torch.tensor(1.0))
    with pytest.raises(InvalidArgument, match="size 0"):
        conserve(torch.ones(2, 0))


def test_conserve_energy_too_large_for_dtype() -> None:
    with pytest.raises(InvalidArgument, match=r"exceeds the largest torch\.float16"):
        conserve(torch.ones(1, 3, dtype=torch.float16), energy=1e10)


def test_conserve_empty_batch() -> None:
    assert conserve(torch.ones(0, 3)).shape == (0, 3)


def test_conserve_gradcheck_float64() -> None:
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conserve(t, 2.5), (x,))
    xc = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conserve(t, 0.5, dim=(1, 2, 3)), (xc,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conserve_gradient_orthogonal_to_input(dtype: torch.dtype) -> None:
    x = torch.randn(8, 17, dtype=dtype, requires_grad=True)
    g = torch.randn(8, 17, dtype=dtype)
    (grad,) = torch.autograd.grad(conserve(x, 3.0), x, g)
    xd = x.detach()
    cos = (grad * xd).sum(-1).abs() / (grad.norm(dim=-1) * xd.norm(dim=-1))
    assert float(cos.max()) < 64 * torch.finfo(dtype).eps


def test_conserve_gradient_of_uniform_zero_sample_is_zero() -> None:
    x = torch.ones(2, 3, dtype=torch.float64)
    x[0] = 0
    x.requires_grad_(True)
    conserve(x, zero="uniform").sum().backward()
    assert x.grad is not None
    assert bool((x.grad[0] == 0).all())


def test_conserve_subnormal_outputs_round_once() -> None:
    # a tiny element next to a huge one lands in the subnormal range of the output;
    # it must be rounded once (error <= half a subnormal spacing), not amplified.
    x = torch.tensor([[2.3058e18, -6.6693e-23]], dtype=torch.float32)
    y = conserve(x, 41.0)
    exact = x.double() * (math.sqrt(41.0) / x.double().norm())
    s = float(torch.finfo(torch.float32).smallest_normal) * torch.finfo(torch.float32).eps
    assert float((y.double() - exact).abs().max()) <= s / 2 + 1e-7 * float(exact.abs().max())


def test_conserve_float64_near_max() -> None:
    x = torch.tensor([[2.0**1023, -(2.0**1023)]], dtype=torch.float64)
    y = conserve(x, 2.0)
    torch.testing.assert_close(y, torch.tensor([[1.0, -1.0]], dtype=torch.float64))


@pytest.mark.parametrize("acc", [torch.float32, torch.float64])
def test_all_safe(acc: torch.dtype) -> None:
    """``_all_safe(ss) == not _needs_wide(ss).any()``: one reduction decides the fast path."""
    from conserve_verified._math import _all_safe, _needs_wide, _underflow_threshold

    n = 64
    thr = _underflow_threshold(acc, n)
    big = torch.finfo(acc).max
    cases = [
        [1.0, 2.0, 3.0],
        [thr, 1.0],
        [thr * 0.5, 1.0],
        [0.0, 1.0],
        [1.0, big],
        [1.0, math.inf],
        [1.0, math.nan],
        [math.nan],
        [],
    ]
    for values in cases:
        ss = torch.tensor(values, dtype=acc).reshape(-1, 1)
        assert _all_safe(ss, acc, n) == (not bool(_needs_wide(ss, acc, n).any())), values
    # a sum that carries autograd history is read without a grad-to-scalar warning
    assert _all_safe(torch.ones(2, 1, dtype=acc, requires_grad=True) * 2, acc, n)
