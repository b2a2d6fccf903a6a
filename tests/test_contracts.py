"""Tests of the check_*/assert_* contract pairs and the CONSERVE_CHECKS modes."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from conserve_verified import ConservationViolation, InvalidArgument, conserve
from conserve_verified.contracts import (
    ContractWarning,
    assert_energy,
    assert_finite,
    check_energy,
    check_finite,
    checks,
    get_mode,
)


def test_check_energy_pairs_with_assert_energy() -> None:
    y = conserve(torch.randn(3, 4), 2.0)
    assert check_energy(y, 2.0) == (True, "")
    ok, reason = check_energy(1.1 * y, 2.0)
    assert not ok and "differs from E=2.0" in reason
    with checks("raise"), pytest.raises(ConservationViolation, match="differs"):
        assert_energy(1.1 * y, 2.0)


def test_check_energy_flags_nan() -> None:
    y = torch.full((1, 3), float("nan"))
    assert not check_energy(y, 1.0)[0]


def test_check_finite_pairs_with_assert_finite() -> None:
    x = torch.zeros(2, 2)
    x[1, 0] = float("inf")
    ok, reason = check_finite(x)
    assert not ok and "(1, 0)" in reason
    with checks("raise"), pytest.raises(ConservationViolation):
        assert_finite(x)


def test_warn_mode_warns_and_continues() -> None:
    with checks("warn"), pytest.warns(ContractWarning):
        assert_energy(torch.ones(1, 3), 1.0)


def test_off_mode_skips() -> None:
    with checks("off"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_energy(torch.ones(1, 3), 1.0)


def test_mode_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSERVE_CHECKS", "warn")
    assert get_mode() == "warn"
    with checks("off"):
        assert get_mode() == "off"
    monkeypatch.setenv("CONSERVE_CHECKS", "loud")
    with pytest.raises(InvalidArgument, match="CONSERVE_CHECKS='loud'"):
        get_mode()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 1.0 + 2.0**-20, 1.0 + 2.0**-14, 1.05])
def test_check_energy_screen_agrees_with_float64_measurement(
    dtype: torch.dtype, scale: float
) -> None:
    """``check_energy`` (float32 screen, float64 when undecided) == the float64 verdict."""
    from conserve_verified._math import feature_count, normalize_dims
    from conserve_verified.tolerances import energy_atol

    gen = torch.Generator().manual_seed(5)
    for shape, dim in (((33, 40), -1), ((4, 3, 5, 7), (1, 2, 3)), ((9, 40000), -1)):
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        y = (conserve(x, 2.0, dim).double() * scale).to(dtype)
        dims = normalize_dims(y, dim)
        f64 = torch.linalg.vector_norm(y, 2, dims, dtype=torch.float64).square()
        atol = energy_atol(dtype, 2.0, feature_count(y, dims))
        expected = bool(((f64 - 2.0).abs() <= atol).all())
        assert check_energy(y, 2.0, dim)[0] == expected, (dtype, scale, shape)


def test_check_energy_screen_never_passes_nonfinite() -> None:
    from conserve_verified.contracts import _screen_passes

    y = conserve(torch.randn(4, 8), 1.0)
    assert _screen_passes(y, 1.0, (1,), 8, 1e-3)
    y[2, 3] = float("inf")
    assert not _screen_passes(y, 1.0, (1,), 8, 1e-3)
    y[2, 3] = float("nan")
    assert not _screen_passes(y, 1.0, (1,), 8, 1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("n", [16, 512, 4096, 40000])
def test_check_energy_screen_decides_conserve_outputs(dtype: torch.dtype, n: int) -> None:
    """The float32 screen alone accepts ``conserve``'s outputs (no float64 pass needed)."""
    from conserve_verified.contracts import _screen_passes
    from conserve_verified.tolerances import energy_atol

    x = torch.randn(8, n, generator=torch.Generator().manual_seed(n)).to(dtype)
    y = conserve(x, 3.0)
    assert _screen_passes(y, 3.0, (1,), n, energy_atol(dtype, 3.0, n))


_NATIVE_CASES = [(torch.float32, n) for n in (512, 1000, 1023, 8191, 8192)] + [
    (torch.bfloat16, 512)
]
#: torch's one-pass norm: the screen's margin is (c - h - 3) u E, 11 u E at n = 1023 or
#: 8191 (the full tail), where an output may be sent on to the float64 measurement.
_TORCH_CASES = [(torch.float32, 512), (torch.float32, 1000), (torch.bfloat16, 512)]


@pytest.mark.parametrize(
    ("path", "dtype", "n"),
    [("native kernel", d, n) for d, n in _NATIVE_CASES]
    + [("torch kernels", d, n) for d, n in _TORCH_CASES],
)
def test_check_energy_screen_decides_many_conserve_outputs(
    path: str, dtype: torch.dtype, n: int
) -> None:
    """Over 1024 samples the screen still accepts every output: it bounds its own error
    by the kernel's height for the measured length (the one-pass float32 norm), or
    measures in float64 (the native kernel's ``energies``)."""
    from conserve_verified import _native
    from conserve_verified.contracts import _screen_passes
    from conserve_verified.tolerances import energy_atol

    if path == "native kernel" and not _native.handles(dtype):
        pytest.skip(f"native kernel not in use: {_native.status()['reason']}")
    context = _native.disabled() if path == "torch kernels" else contextlib.nullcontext()
    x = torch.randn(1024, n, generator=torch.Generator().manual_seed(7)).to(dtype)
    with context:
        y = conserve(x, float(n))
        assert _screen_passes(y, float(n), (1,), n, energy_atol(dtype, float(n), n))
