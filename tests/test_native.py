"""The native one-pass kernel computes the documented arithmetic in the modelled order.

Identities of :mod:`conserve_verified._native` (each test is named after one):
the kernel's norms are :func:`~conserve_verified.proof.finite.lane_fold_norms` with
16 lanes bit for bit (one and two threads), its output is
``(x.float() * (float32(r) / norm)).to(dtype)``, ``conserve`` takes it when it
is built and torch's kernels when it is off, and its heights are inside the
tolerance table's one-pass rows.  The loader never compiles: a missing build
is reported, a bad ``CONSERVE_NATIVE`` is a typed error.  The kernel tests need
the kernel built (``conserve-verified build-native``, which ``dev.sh`` runs) and
are skipped, with the reason, where it cannot be.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np
import pytest
import torch

from conserve_verified import InvalidArgument, _fused, _native, conserve
from conserve_verified.proof.finite import lane_fold, lane_fold_height, lane_fold_norms
from conserve_verified.tolerances import ONE_PASS_HEIGHTS, ONE_PASS_LANES, energy_atol

LENGTHS = [1, 2, 15, 16, 17, 31, 33, 100, 255, 256, 1000, 1024, 4097, 8191, 8192]


@pytest.fixture(scope="module")
def kernel() -> Any:
    k = _native.kernel()
    if k is None:
        pytest.skip(f"native kernel not in use: {_native.status()['reason']}")
    return k


def _rows(n: int, count: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((count, n)) * 10.0 ** rng.integers(-3, 4, (count, n))
    return torch.from_numpy(a.astype(np.float32))


def test_lane_fold_norms_equals_lane_fold_per_row() -> None:
    f32 = np.float32
    for n in (1, 3, 16, 17, 40):
        rows = _rows(n, 4, n).numpy()
        got = lane_fold_norms(rows, 16)
        for r, g in zip(rows, got, strict=True):
            total = lane_fold(n, 16, lambda i, r=r: f32(r[i] * r[i]), lambda a, b: f32(a + b))
            assert f32(np.sqrt(total)) == g, n


def test_lane_fold_norms_rejects_bad_shapes_naming_rows() -> None:
    with pytest.raises(InvalidArgument, match="rows"):
        lane_fold_norms(np.zeros((3, 0), dtype=np.float32), 16)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", LENGTHS)
def test_native_norms_are_lane_fold_16_bitwise(kernel: Any, n: int, threads: int) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = _rows(n, 7, n + threads)
        got = kernel.norms(x)
    finally:
        torch.set_num_threads(previous)
    assert _native.LANES == 16 == kernel.LANES
    assert np.array_equal(got[:, 0].numpy(), lane_fold_norms(x.numpy(), 16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 17, 256, 8192])
def test_native_forward_is_one_product_rounded_once(
    kernel: Any, dtype: torch.dtype, n: int
) -> None:
    x = (_rows(n, 5, 3 * n) * 0.5).to(dtype)
    for e in (1.0, 2.5, 1e-6):
        y, nrm = kernel.forward(x, math.sqrt(e))
        xa = x.float()
        assert np.array_equal(nrm[:, 0].numpy(), lane_fold_norms(xa.numpy(), 16))
        scale = torch.tensor(math.sqrt(e), dtype=torch.float32) / nrm
        assert torch.equal(y, (xa * scale).to(dtype)), (n, e)


@pytest.mark.parametrize("threads", [1, 2])
def test_native_bf16_forward_rows_in_groups_keep_each_rows_order(kernel: Any, threads: int) -> None:
    """The bfloat16 variant sums rows 4 at a time: any row count and any split of the rows
    between threads gives each row its own lane-fold norm and product, bitwise."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for rows in (1, 3, 4, 5, 203):
            x = (_rows(300, rows, rows) * 0.5).to(torch.bfloat16)
            y, nrm = kernel.forward(x, 1.25)
            xa = x.float()
            assert np.array_equal(nrm[:, 0].numpy(), lane_fold_norms(xa.numpy(), 16)), rows
            scale = torch.tensor(1.25, dtype=torch.float32) / nrm
            assert torch.equal(y, (xa * scale).to(torch.bfloat16)), rows
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conserve_takes_native_kernel_when_built_and_torch_kernels_when_off(
    kernel: Any, dtype: torch.dtype
) -> None:
    x = _rows(300, 6, 1).to(dtype)
    y_native = conserve(x, 2.0)
    y, _ = kernel.forward(x, math.sqrt(2.0))
    assert torch.equal(y_native, y)
    with _native.disabled():
        assert _native.kernel() is None and not _native.handles(dtype)
        y_torch = conserve(x, 2.0)
        out = _fused.forward(x, 2.0, (1,))
        assert out is not None and torch.equal(out[0], y_torch)
    for out in (y_native, y_torch):
        err = ((out.double() ** 2).sum(-1) - 2.0).abs().max()
        assert float(err) <= energy_atol(dtype, 2.0, 300)


def test_native_kernel_float16_keeps_torch_kernels(kernel: Any) -> None:
    assert not _native.handles(torch.float16)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        kernel.forward(torch.ones(2, 3, dtype=torch.float16), 1.0)


def test_native_lanes_are_covered_by_the_one_pass_heights() -> None:
    assert _native.LANES in ONE_PASS_LANES
    for n_max, h in ONE_PASS_HEIGHTS:
        assert max(lane_fold_height(n, _native.LANES) for n in range(1, n_max + 1)) <= h


def test_native_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSERVE_NATIVE", "off")
    assert _native.kernel() is None
    assert _native.status() == {
        "active": False,
        "path": str(_native.build_dir() / f"{_native._name()}.so"),
        "flags": _native.flags(),
        "reason": "CONSERVE_NATIVE=off",
        "bf16_avx512": None,
    }


def test_native_bad_environment_value_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSERVE_NATIVE", "sometimes")
    with pytest.raises(InvalidArgument, match=r"CONSERVE_NATIVE.*sometimes"):
        _native.kernel()


def test_native_kernel_missing_build_is_reported_not_compiled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("CONSERVE_NATIVE_DIR", str(tmp_path))
    assert _native.kernel() is None
    st = _native.status()
    assert not st["active"] and "not built" in st["reason"] and "build-native" in st["reason"]
    assert not _native.build_dir().exists()  # looking did not start a build
    # torch's kernels serve the operator meanwhile
    x = _rows(64, 3, 5)
    out = _fused.forward(x, 1.0, (1,))
    assert out is not None and torch.equal(conserve(x, 1.0), out[0])


def test_native_flags_never_contract_and_follow_cpu_capability() -> None:
    flags = _native.flags()
    assert "-ffp-contract=off" in flags and "-O3" in flags
    wide = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    assert ("-mavx2" in flags) == wide


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 513, 8192])
def test_native_energies_are_float64_sums_within_gamma_n(
    kernel: Any, dtype: torch.dtype, n: int
) -> None:
    """``energies(x)`` = the float64 sum of the exact squares, within ``gamma_n(2**-53)``."""
    x = _rows(n, 9, 11 * n).to(dtype)
    got = kernel.energies(x)[:, 0]
    exact = (x.double() ** 2).sum(-1)
    assert got.dtype == torch.float64
    g = n * 2.0**-53 / (1 - n * 2.0**-53)
    assert bool(((got - exact).abs() <= 2 * g * exact).all())


def test_build_native_check_reports_off_and_missing_builds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conserve_verified.cli import main

    monkeypatch.setenv("CONSERVE_NATIVE", "off")
    assert main(["build-native", "--check"]) == 1
    assert "CONSERVE_NATIVE=off" in capsys.readouterr().out
    monkeypatch.setenv("CONSERVE_NATIVE", "auto")
    monkeypatch.setenv("CONSERVE_NATIVE_DIR", str(tmp_path))
    assert main(["build-native", "--check"]) == 1
    assert "not built" in capsys.readouterr().out


def test_build_native_failure_is_reported_with_the_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No compiler: exit 1, the reason's first line, and torch's kernels serve the operator."""
    from conserve_verified.cli import main

    def no_compiler(verbose: bool = False) -> Any:
        raise RuntimeError("Ninja is required to load C++ extensions\nmore detail")

    monkeypatch.setenv("CONSERVE_NATIVE_DIR", str(tmp_path))
    monkeypatch.setattr(_native, "build", no_compiler)
    assert main(["build-native"]) == 1
    out = capsys.readouterr().out
    assert "not built (Ninja is required to load C++ extensions)" in out
    assert "torch's kernels" in out and "more detail" not in out
    assert _native.kernel() is None


def test_build_native_is_a_no_op_when_built(
    kernel: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from conserve_verified.cli import main

    assert main(["build-native"]) == 0
    assert f"built ({_native.build_dir()})" in capsys.readouterr().out
    assert main(["build-native", "--check"]) == 0
    assert "in use" in capsys.readouterr().out


def test_prune_deletes_other_builds_and_keeps_the_current_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conserve_verified.cli import main

    monkeypatch.setenv("CONSERVE_NATIVE_DIR", str(tmp_path))
    current = _native.build_dir()
    current.mkdir(parents=True)
    (current / "build.ninja").write_text("")
    old = tmp_path / "0123456789abcdef"
    old.mkdir()
    (old / "conserve_verified_native_0123456789abcdef.so").write_bytes(b"")
    other = tmp_path / "fedcba9876543210"  # a tag folder with nothing of ours: kept
    other.mkdir()
    (other / "notes.txt").write_text("")
    unrelated = tmp_path / "not-a-tag"
    unrelated.mkdir()
    (unrelated / "build.ninja").write_text("")
    assert _native.stale_builds() == [old]
    assert main(["build-native", "--prune", "--check"]) == 1  # pruned; not built here
    out = capsys.readouterr().out
    assert "removed 1 other build(s): 0123456789abcdef" in out
    assert not old.exists() and current.is_dir() and other.is_dir() and unrelated.is_dir()
    assert _native.prune() == []


def test_stale_builds_of_a_missing_cache_is_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("CONSERVE_NATIVE_DIR", str(tmp_path / "absent"))
    assert _native.stale_builds() == []


def _subnormal_rows(n: int) -> torch.Tensor:
    """bfloat16 rows whose outputs include subnormals, signed zeros and ties: one large
    element per row (so the others scale below ``FLT_MIN``) and a spread of magnitudes."""
    rows = _rows(n, 6, 7 * n)
    rows[:, 0] = 1e18  # its square stays finite in float32
    rows[1, 1:] = torch.linspace(-1e-20, 1e-20, n - 1) if n > 1 else rows[1, 1:]
    rows[2, 1::3] = -0.0
    return rows.to(torch.bfloat16)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 48, 100, 1024, 4097])
def test_native_bf16_vector_variant_equals_portable_loop_bitwise(kernel: Any, n: int) -> None:
    """``forward`` of bfloat16 rows: the AVX-512 variant (where the CPU has it) and the
    portable loop give the same bits, subnormal outputs included."""
    x = torch.cat((_subnormal_rows(n), (_rows(n, 5, n) * 0.5).to(torch.bfloat16)))
    y_fast, n_fast = kernel.forward(x, 1.5)
    kernel.set_portable(True)
    try:
        assert not kernel.bf16_avx512()
        y_slow, n_slow = kernel.forward(x, 1.5)
    finally:
        kernel.set_portable(False)
    assert torch.equal(n_fast, n_slow)
    assert torch.equal(y_fast.view(torch.int16), y_slow.view(torch.int16))
    scale = torch.tensor(1.5, dtype=torch.float32) / n_slow
    assert torch.equal(
        y_slow.view(torch.int16), (x.float() * scale).to(torch.bfloat16).view(torch.int16)
    )
    tiny = (y_slow.float().abs() < torch.finfo(torch.float32).tiny) & (y_slow != 0)
    assert n < 16 or bool(tiny.any())  # the subnormal branch ran (vectors of 16 exist)


def test_native_status_names_the_bf16_variant(kernel: Any) -> None:
    st = _native.status()
    assert st["bf16_avx512"] == kernel.bf16_avx512()
