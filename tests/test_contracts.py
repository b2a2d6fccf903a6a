"""Tests of the check_*/assert_* contract pairs and the CONSERVE_CHECKS modes."""

from __future__ import annotations

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
