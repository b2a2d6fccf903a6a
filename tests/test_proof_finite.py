"""Unit tests of the finite-precision checkers (:mod:`conserve_verified.proof.finite`).

Each test is named after the identity it checks: the cascade order reproduces
``torch.sum`` bit for bit, the height functions agree with each other and with
brute force, torch's CPU ``rsqrt`` is ``1 / sqrt``, the table dominates the
model's worst case, the enumeration checker refutes a violated bound with a
re-checked counterexample, and the per-sample routing of the FP16/BF16
enumeration equals calling ``conserve`` on each row alone.
"""

from __future__ import annotations

import importlib.util
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from conserve_verified import InvalidArgument, conserve
from conserve_verified.proof import Status
from conserve_verified.proof.finite import (
    GRAIN_SIZE,
    Batch,
    cascade_fold,
    cascade_height,
    energy_error_bound,
    enumeration_claim,
    gamma,
    max_cascade_height,
    summation_height,
)
from conserve_verified.tolerances import ACCUMULATION_COEFFICIENTS, TOLERANCES


def _sum_lanes() -> int:
    """Float lanes of this build's sum kernel: the width whose order reproduces ``torch.sum``."""
    rng = np.random.default_rng(7)
    rows = [(rng.standard_normal(67) ** 2 * 10.0 ** rng.integers(-3, 4, 67)) for _ in range(8)]
    rows32 = [r.astype(np.float32) for r in rows]
    got = [float(torch.from_numpy(r).sum()) for r in rows32]
    matches = [
        lanes
        for lanes in (4, 8, 16)
        if all(
            float(cascade_fold(67, lanes, lambda i, r=r: r[i], lambda a, b: np.float32(a + b))) == g
            for r, g in zip(rows32, got, strict=True)
        )
    ]
    assert len(matches) == 1, f"lane widths reproducing torch.sum: {matches}"
    return matches[0]


@pytest.mark.parametrize("n", [1, 2, 5, 8, 15, 16, 17, 63, 64, 100, 257, 1000, 4097, 70001])
def test_cascade_fold_equals_torch_sum_bitwise(n: int) -> None:
    torch.set_num_threads(1)
    lanes = _sum_lanes()
    rng = np.random.default_rng(n)
    for _ in range(3):
        x = (rng.standard_normal(n) ** 2 * rng.choice([1.0, 1e3, 1e-3], n)).astype(np.float32)
        rows = torch.from_numpy(np.stack([x, x[::-1].copy()]))
        got = rows.sum(-1)
        for r in range(2):
            v = rows[r].numpy()
            want = cascade_fold(n, lanes, lambda i, v=v: v[i], lambda a, b: np.float32(a + b))
            assert float(got[r]) == float(want), (n, lanes)


def test_cascade_height_equals_fold_height() -> None:
    for lanes in (4, 8, 16):
        for n in [*range(300), 1023, 1024, 4096, 5000, 65537]:
            fold = cascade_fold(n, lanes, lambda i: 0, lambda a, b: max(a, b) + 1)
            assert cascade_height(n, lanes) == (fold or 0), (n, lanes)


def test_max_cascade_height_equals_brute_force_maximum() -> None:
    for lanes in (4, 8, 16):
        best = 0
        for n in range(1, 1200):
            best = max(best, cascade_height(n, lanes))
            assert max_cascade_height(n, lanes) == best, (n, lanes)
    for lanes, n in ((8, 40000), (16, 70000)):
        brute = max(cascade_height(k, lanes) for k in range(n - 300, n + 1))
        assert max_cascade_height(n, lanes) >= brute


def test_summation_height_adds_thread_chunks_only_above_grain_size() -> None:
    assert summation_height(GRAIN_SIZE - 1, 8, 64) == max_cascade_height(GRAIN_SIZE - 1, 8)
    assert summation_height(GRAIN_SIZE, 8, 64) == max_cascade_height(GRAIN_SIZE, 8) + 63
    with pytest.raises(InvalidArgument, match="threads=0"):
        summation_height(10, 8, 0)


def test_two_thread_sum_is_two_chunk_sums_added() -> None:
    """A single long row is split across threads; the chunk sums are then added."""
    x = (np.random.default_rng(0).standard_normal(2**17) ** 2).astype(np.float32)
    lanes = _sum_lanes()
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = float(torch.from_numpy(x).reshape(1, -1).sum(-1))
    finally:
        torch.set_num_threads(previous)
    h = len(x) // 2

    def chunk(v: np.ndarray) -> np.float32:
        return cascade_fold(len(v), lanes, lambda i: v[i], lambda a, b: np.float32(a + b))

    assert got == float(np.float32(chunk(x[:h]) + chunk(x[h:])))


def test_torch_rsqrt_is_one_over_sqrt_bitwise() -> None:
    rng = np.random.default_rng(1)
    ss = np.concatenate(
        [
            (rng.random(20000) * 10.0 ** rng.integers(-30, 30, 20000)).astype(np.float32),
            np.arange(1, 5000, dtype=np.float32),
        ]
    )
    t = torch.from_numpy(ss)
    want = torch.from_numpy(np.float32(1.0) / np.sqrt(ss))
    assert torch.equal(torch.rsqrt(t), want)
    assert torch.equal(torch.rsqrt(t.reshape(-1, 1)), want.reshape(-1, 1))  # blocked (t, 1) shape


def test_gamma_rejects_bad_arguments() -> None:
    assert gamma(2, Fraction(1, 8)) == Fraction(1, 3)
    with pytest.raises(InvalidArgument, match="h=8"):
        gamma(8, Fraction(1, 8))
    with pytest.raises(InvalidArgument, match=r"u=0\.5"):
        gamma(1, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", list(TOLERANCES))
def test_table_dominates_rounding_model_every_range(dtype: torch.dtype) -> None:
    """``energy_rtol_for(dtype, n) >= energy_error_bound(...)`` at each range's largest height."""
    row = TOLERANCES[dtype]
    u, ua = Fraction(row.unit_roundoff), Fraction(row.accumulation_roundoff)
    narrow = dtype in (torch.float16, torch.bfloat16)
    lanes = (4, 8, 16)
    underflow = {
        torch.float16: Fraction(0),
        torch.bfloat16: Fraction(1, 2**46),
        torch.float32: Fraction(1, 2**46),
        torch.float64: Fraction(1, 2**100),
    }[dtype]
    for n_max, c in ACCUMULATION_COEFFICIENTS:
        h = max(summation_height(n_max, lanes_, 64) for lanes_ in lanes)
        derived = energy_error_bound(
            u,
            ua,
            h,
            squares_exact=narrow,
            separate_storage=narrow,
            square_underflow=underflow,
        )
        assert derived <= 2 * u + u * u + c * ua, (dtype, n_max, float(derived / ua))


def _batches(errors: list[float]) -> list[Batch]:
    return [Batch("part", 1.0, 2, np.array(errors), lambda i: [1.0, float(i)])]


def test_enumeration_claim_proves_within_bound_and_reports_worst() -> None:
    claim = enumeration_claim(
        lambda: _batches([0.1, 0.4, 0.2]),
        lambda e, n: 0.5,
        lambda x, e: Fraction(0),
        slack=0.0,
        label="toy",
        latex="x",
        description="toy enumeration",
    )
    verdict = claim.check(5.0)
    assert verdict.status is Status.PROVED
    assert "3 inputs" in verdict.reason and "0.8000" in verdict.reason


def test_enumeration_claim_refutes_with_rechecked_counterexample() -> None:
    claim = enumeration_claim(
        lambda: _batches([0.1, 0.9, float("nan")]),
        lambda e, n: 0.5,
        lambda x, e: Fraction(9, 10),
        slack=0.0,
        label="toy",
        latex="x",
        description="toy enumeration",
    )
    verdict = claim.check(5.0)
    assert verdict.status is Status.REFUTED
    assert verdict.counterexample == {"E": "1.0", "n": "2", "x": "[1.0, 2.0]"}  # NaN first


def test_enumeration_claim_counterexample_failing_recheck_is_error() -> None:
    claim = enumeration_claim(
        lambda: _batches([0.9]),
        lambda e, n: 0.5,
        lambda x, e: Fraction(1, 10),  # the exact re-check disagrees with the measurement
        slack=0.0,
        label="toy",
        latex="x",
        description="toy enumeration",
    )
    assert claim.check(5.0).status is Status.ERROR


def _theory() -> ModuleType:
    """``proofs/finite_precision.py`` loaded as a module (its theorems are not re-registered)."""
    name = "conserve_verified_theory_finite_precision"
    if name in sys.modules:
        return sys.modules[name]
    from conserve_verified.proof import registry

    path = Path(__file__).resolve().parents[1] / "proofs" / "finite_precision.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = dict(registry.REGISTRY)
    try:
        registry.REGISTRY.clear()
        spec.loader.exec_module(module)
    finally:
        registry.REGISTRY.clear()
        registry.REGISTRY.update(saved)
    sys.modules[name] = module
    return module


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_routed_conserve_equals_conserve_of_each_row_alone(dtype: torch.dtype) -> None:
    theory = _theory()
    values = theory._all_values(dtype)
    values = values[values != 0]
    rows = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:300]]
    rows = torch.cat([rows, values[:20], values[-20:]])[:, None]  # tiny and huge ones too
    wide = theory.wide_rows(rows)
    # float16 squares are normal float32 numbers: no float16 sample needs the wide path;
    # bfloat16's smallest values do
    assert bool(wide.any()) == (dtype == torch.bfloat16) and bool((~wide).any())
    routed = theory.routed_conserve(rows, 1.0)
    for i in range(rows.shape[0]):
        assert torch.equal(routed[i], conserve(rows[i : i + 1], 1.0)[0]), float(rows[i])


def test_summation_height_table_dominates_engine_heights() -> None:
    """``tolerances.SUMMATION_HEIGHTS`` bounds the engine's height for every range."""
    from conserve_verified.tolerances import SUMMATION_HEIGHTS, summation_height_bound

    for n_max, h in SUMMATION_HEIGHTS:
        assert h >= max(summation_height(n_max, lanes, 64) for lanes in (4, 8, 16))
        assert summation_height_bound(n_max) == h


def test_decode_row_inverts_encode_row() -> None:
    from conserve_verified.proof.finite import decode_row, encode_row

    for row in ([1.5], [1.0, -2.5e-8], [1.3349609375] * 6143, [0.5] * 4, [1.0] * 5 + [2.0]):
        assert decode_row(encode_row(row)) == row
    assert encode_row([1.3349609375] * 6143) == "[1.3349609375] * 6143"
