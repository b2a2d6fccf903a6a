"""The one-pass norm kernel's order, its heights and the one-pass rows of the tolerance table.

Each test is named after the identity it checks: :func:`lane_fold` explains
torch's CPU ``vector_norm`` bit for bit (lanes, left fold, sequential tail with
each tail step fused or not), on one and two threads; the height functions
agree with the fold and with brute force; the one-pass scale is one rounding
of ``r`` and one division; and each dtype's rows of ``ONE_PASS_COEFFICIENTS``
dominate the rounding model's worst case for the heights of every covered
lane width.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import torch

from conserve_verified import InvalidArgument, _native, conserve
from conserve_verified.proof.finite import (
    energy_error_bound,
    lane_fold,
    lane_fold_height,
    max_lane_fold_height,
)
from conserve_verified.tolerances import (
    ACCUMULATION_COEFFICIENTS,
    ONE_PASS_COEFFICIENTS,
    ONE_PASS_HEIGHTS,
    ONE_PASS_LANES,
    ONE_PASS_MAX_FEATURES,
    energy_rtol_for,
    one_pass_height,
    one_pass_height_bound,
)

f32 = np.float32


def _plain(acc: np.float32, v: np.float32) -> np.float32:
    return f32(acc + f32(v * v))


def _fused_step(acc: np.float32, v: np.float32) -> np.float32:
    """``fma(v, v, acc)``: exact in float64 for float32 data, then one rounding."""
    return f32(np.float64(acc) + np.float64(v) * np.float64(v))


def _explained(row: np.ndarray, lanes: int, got: np.float32) -> bool:
    """Some choice of fused / unfused tail steps of :func:`lane_fold` reproduces ``got``."""
    n = len(row)
    head = lanes * (n // lanes)
    prefix = lane_fold(head, lanes, lambda i: f32(row[i] * row[i]), lambda a, b: f32(a + b))
    start = f32(0.0) if prefix is None else prefix
    for pattern in itertools.product((_fused_step, _plain), repeat=n - head):
        acc = start
        for step, v in zip(pattern, row[head:], strict=True):
            acc = step(acc, v)
        if f32(np.sqrt(acc)) == got:
            return True
    return False


def _rows(n: int, count: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)


def _norm_lanes() -> int:
    """The lane width (of ``ONE_PASS_LANES``) whose fold explains this build's kernel."""
    rows = np.stack(list(_rows(67, 8, 11)))
    got = torch.linalg.vector_norm(torch.from_numpy(rows), 2, -1).numpy()
    matches = [
        lanes
        for lanes in ONE_PASS_LANES
        if all(_explained(r, lanes, g) for r, g in zip(rows, got, strict=True))
    ]
    assert len(matches) == 1, f"lane widths explaining vector_norm: {matches}"
    return matches[0]


@pytest.mark.parametrize("n", [1, 2, 5, 7, 8, 9, 15, 16, 17, 63, 64, 100, 257, 1000, 4097, 8191])
def test_lane_fold_explains_torch_vector_norm_bitwise(n: int) -> None:
    torch.set_num_threads(1)
    lanes = _norm_lanes()
    rows = np.stack(list(_rows(n, 6, n)))
    got = torch.linalg.vector_norm(torch.from_numpy(rows), 2, -1).numpy()
    for r, g in zip(rows, got, strict=True):
        assert _explained(r, lanes, g), (n, lanes)


def test_lane_fold_explains_vector_norm_on_two_threads() -> None:
    """Rows are reduced whole by one thread: a single long row and many rows alike."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lanes = _norm_lanes()
        for n, count in ((8191, 1), (8191, 3), (300, 64)):
            rows = np.stack(list(_rows(n, count, n + count)))
            got = torch.linalg.vector_norm(torch.from_numpy(rows), 2, -1).numpy()
            for r, g in zip(rows, got, strict=True):
                assert _explained(r, lanes, g), (n, count)
    finally:
        torch.set_num_threads(previous)


def test_lane_fold_height_equals_fold_height() -> None:
    for lanes in (1, 4, 8, 16):
        for n in range(0, 200):
            fold = lane_fold(n, lanes, lambda i: 0, lambda a, b: max(a, b) + 1)
            assert lane_fold_height(n, lanes) == (fold or 0), (n, lanes)


def test_max_lane_fold_height_equals_brute_force_maximum() -> None:
    for lanes in (1, 8, 16):
        best = 0
        for n in range(1, 1100):
            best = max(best, lane_fold_height(n, lanes))
            assert max_lane_fold_height(n, lanes) == best, (n, lanes)


def test_one_pass_height_is_the_largest_lane_fold_height_of_n_terms() -> None:
    for n in [*range(1, 300), 1023, 1024, 1025, 4096, 8191, ONE_PASS_MAX_FEATURES]:
        h = one_pass_height(n)
        assert h == max(lane_fold_height(n, lanes) for lanes in ONE_PASS_LANES), n
        assert h <= one_pass_height_bound(n)
    with pytest.raises(InvalidArgument, match="n"):
        one_pass_height(ONE_PASS_MAX_FEATURES + 1)


def test_one_pass_heights_table_dominates_every_lane_width() -> None:
    for n_max, h in ONE_PASS_HEIGHTS:
        assert h == max(max_lane_fold_height(n_max, lanes) for lanes in ONE_PASS_LANES)
        assert one_pass_height_bound(n_max) == h
    assert ONE_PASS_HEIGHTS[-1][0] == ONE_PASS_MAX_FEATURES
    with pytest.raises(InvalidArgument, match="n"):
        one_pass_height_bound(ONE_PASS_MAX_FEATURES + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_one_pass_table_dominates_rounding_model(dtype: torch.dtype) -> None:
    """``energy_rtol_for(dtype, n)`` covers the one-pass model (2 roundings in the factor;
    float16/bfloat16: exact squares and the rounding to the storage dtype)."""
    ua = Fraction(1, 2**24)
    u = Fraction(torch.finfo(dtype).eps) / 2
    low = dtype != torch.float32
    rows = ONE_PASS_COEFFICIENTS[dtype]
    for (n_max, c), (n_h, h) in zip(rows, ONE_PASS_HEIGHTS, strict=True):
        assert n_max == n_h
        derived = energy_error_bound(
            u,
            ua,
            h,
            squares_exact=low,
            separate_storage=low,
            square_underflow=Fraction(0) if dtype == torch.float16 else Fraction(1, 2**46),
            factor_roundings=2,
        )
        bound = 2 * u + u * u + c * ua
        assert derived <= bound, (n_max, float((derived - 2 * u - u * u) / ua))
        assert bound - derived < 2 * ua  # rounded up, not padded
        cascade = next(cc for nn, cc in ACCUMULATION_COEFFICIENTS if n_max <= nn)
        assert c >= cascade  # the fallback (cascade) path is covered too
        assert energy_rtol_for(dtype, n_max) == float(bound)


def test_one_pass_scale_is_one_rounding_of_r_and_one_division() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 33)).astype(np.float32)
    nrm = torch.linalg.vector_norm(torch.from_numpy(x), 2, -1, keepdim=True)
    for e in (1.0, 2.5, 10.89, 1e-6):
        r = math.sqrt(e)
        scale = torch.full_like(nrm, r).div_(nrm).numpy()
        assert np.array_equal(scale, f32(r) / nrm.numpy())
        with _native.disabled():  # torch's kernels (the native kernel: tests/test_native.py)
            y = conserve(torch.from_numpy(x), e).numpy()
        assert np.array_equal(y, x * scale), e


def test_tolerance_lookups_reject_bad_lengths_naming_n() -> None:
    """Every length lookup raises a typed error naming ``n`` and the range it is derived for."""
    from conserve_verified import InvalidArgumentType
    from conserve_verified.tolerances import MAX_FEATURES, summation_height_bound

    for dtype in (torch.float32, torch.bfloat16):
        for bad in (0, MAX_FEATURES + 1):
            with pytest.raises(InvalidArgument, match=rf"n={bad}: .*<= {MAX_FEATURES} features"):
                energy_rtol_for(dtype, bad)
        with pytest.raises(InvalidArgumentType, match="n=True"):
            energy_rtol_for(dtype, True)
    with pytest.raises(InvalidArgument, match=rf"<= {MAX_FEATURES} features"):
        summation_height_bound(0)
    with pytest.raises(InvalidArgumentType, match=r"n=2\.0"):
        one_pass_height_bound(2.0)  # type: ignore[arg-type]
