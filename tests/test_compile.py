"""``conserve``, ``ConserveEnergy`` and ``Conserved`` under ``torch.compile(fullgraph=True)``.

Identity: a compiled call returns exactly (``torch.equal``) what the eager call
returns, forward and backward, and raises the same typed errors: under
compilation the operator is one opaque custom op whose implementation is the
eager kernel (see :mod:`conserve_verified._math`), and the energy contract is
one opaque op run when the compiled code runs (:func:`contracts.assert_energy`).

``fullgraph=True`` makes any graph break an error, so each test also checks
that the traced code has none.  Inductor (C++ on CPU) compiles the plain
operator; the module and contract tests use the ``aot_eager`` backend (the
same Dynamo trace and autograd graph, no C++ build) to keep CI fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from conserve_verified import (
    ConservationViolation,
    Conserved,
    ConserveEnergy,
    InvalidArgument,
    _native,
    conserve,
    contracts,
)
from conserve_verified.contracts import ContractWarning

# inductor itself (not this package) uses deprecated torch.jit APIs while compiling
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _conserve4(t: torch.Tensor) -> torch.Tensor:
    return conserve(t, energy=4.0)


@pytest.fixture(scope="module")
def inductor_conserve() -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.compile(_conserve4, fullgraph=True, backend="inductor")


def test_compiled_conserve_forward_backward_equal_eager(
    inductor_conserve: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 10, generator=gen, requires_grad=True)
    g = torch.randn(6, 10, generator=gen)
    y = inductor_conserve(x)
    assert torch.equal(y, _conserve4(x))
    (grad_c,) = torch.autograd.grad(y, x, g)
    (grad_e,) = torch.autograd.grad(_conserve4(x), x, g)
    assert torch.equal(grad_c, grad_e)


def test_compiled_conserve_low_precision_and_wide_path_equal_eager(
    inductor_conserve: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    xb = torch.randn(5, 12, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    assert torch.equal(inductor_conserve(xb), _conserve4(xb))
    # squares that overflow float32 take the wide (float64) path inside the op
    xw = torch.full((2, 12), 1e30)
    xw[1, ::2] = -1e30
    assert torch.equal(inductor_conserve(xw), _conserve4(xw))


def test_compiled_conserve_raises_typed_errors(
    inductor_conserve: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    x = torch.ones(3, 10)
    x[1] = 0
    with pytest.raises(
        InvalidArgument,
        match=r"sample at index \(1,\) \(over dims \(0,\); feature dims \(1,\)\) is all zeros",
    ):
        inductor_conserve(x)
    x = torch.ones(3, 10)
    x[2, 4] = float("nan")
    with pytest.raises(InvalidArgument, match=r"index \(2, 4\)"):
        inductor_conserve(x)


def _pipeline() -> Conserved:
    torch.manual_seed(0)
    return Conserved(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def test_compiled_conserved_pipeline_equal_eager_checks_off() -> None:
    p = _pipeline()
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    with contracts.checks("off"):
        compiled = torch.compile(p, fullgraph=True, backend="aot_eager")
        out = compiled(x)
        assert torch.equal(out, p(x))
        params = list(p.parameters())
        grads_c = torch.autograd.grad(compiled(x).square().sum(), params)
        grads_e = torch.autograd.grad(p(x).square().sum(), params)
    assert all(torch.equal(a, b) for a, b in zip(grads_c, grads_e, strict=True))


def test_compiled_conserve_energy_module_checks_on_equal_eager() -> None:
    m = ConserveEnergy(2.0, dim=(1, 2))
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(3))
    with contracts.checks("raise"):
        assert torch.equal(torch.compile(m, fullgraph=True, backend="aot_eager")(x), m(x))


def _scaled_output(t: torch.Tensor) -> torch.Tensor:
    y = conserve(t, 1.0) * 1.1  # energy 1.21: violates the contract
    contracts.assert_energy(y, 1.0, name="scaled")
    return y


@pytest.mark.parametrize("mode", ["raise", "warn", "off"])
def test_compiled_contract_mode_read_at_run_time(mode: contracts.CheckMode) -> None:
    # compiled once with checks off: the mode is read when the compiled code runs
    with contracts.checks("off"):
        compiled = torch.compile(_scaled_output, fullgraph=True, backend="aot_eager")
        compiled(torch.ones(2, 3))
    x = torch.ones(2, 3)
    with contracts.checks(mode), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if mode == "raise":
            with pytest.raises(ConservationViolation, match="scaled"):
                compiled(x)
        else:
            compiled(x)
    contract_warnings = [w for w in caught if issubclass(w.category, ContractWarning)]
    assert len(contract_warnings) == (1 if mode == "warn" else 0)


def test_compiled_inference_uses_the_inference_op_and_gradients_the_autograd_op() -> None:
    """No gradient and no dead count: an op without an autograd formula (less per-call
    work: the native kernel's C++ op, whose unsafe inputs go to the Python inference
    forward from inside it, or a Python-kernel op); an input that requires grad, or
    ``zero="uniform"``: the autograd-aware op."""
    seen: list[str] = []

    def record(gm: torch.fx.GraphModule, _inputs: list[torch.Tensor]) -> Callable[..., Any]:
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    f = torch.compile(_conserve4, fullgraph=True, backend=record)
    x = torch.randn(3, 5)
    assert torch.equal(f(x), _conserve4(x))
    # the native kernel's C++ op where it is built, else the Python-kernel op
    expected = "conserve_native.infer" if _native.handles(x.dtype) else "conserve_inference"
    assert any(expected in t for t in seen), seen
    assert not any(t.endswith("conserve_verified.conserve.default") for t in seen)
    seen.clear()
    xg = x.clone().requires_grad_(True)
    assert torch.equal(f(xg), _conserve4(xg))
    assert any(t.endswith("conserve_verified.conserve.default") for t in seen), seen
    seen.clear()
    u = torch.compile(lambda t: conserve(t, 1.0, zero="uniform"), fullgraph=True, backend=record)
    u(torch.zeros(2, 4))
    assert any(t.endswith("conserve_verified.conserve.default") for t in seen), seen


def test_native_bounds_are_the_fast_paths_safety_range_or_none() -> None:
    """The constant a traced graph takes for the native op: ``(lo, hi)`` of the float32
    sum of squares where the native kernel takes the input, else ``None``."""
    from conserve_verified import _fused, _math
    from conserve_verified.tolerances import ONE_PASS_MAX_FEATURES

    for dtype, n in ((torch.float32, 256), (torch.bfloat16, 8192), (torch.float32, 1)):
        got = _math._native_bounds(dtype, n)
        if _native.handles(dtype) and _fused.one_pass(dtype, n):
            assert got == (
                _math._underflow_threshold(torch.float32, n),
                _math._RANGE[torch.float32][1],
            )
        else:
            assert got is None
    assert _math._native_bounds(torch.float32, ONE_PASS_MAX_FEATURES + 1) is None
    assert _math._native_bounds(torch.float64, 256) is None
    assert _math._native_bounds(torch.float16, 256) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_native_op_equals_eager_and_falls_back_with_typed_errors(
    dtype: torch.dtype,
) -> None:
    """``conserve_native::infer`` (C++): bitwise the eager result on safe inputs, trailing
    multi-dim feature maps included; a zero sample, a NaN and squares that overflow go to
    the Python inference forward from inside the op (its typed errors, its wide path)."""
    if not _native.handles(dtype):
        pytest.skip(f"native kernel not in use: {_native.status()['reason']}")
    f = torch.compile(_conserve4, fullgraph=True, backend="inductor", dynamic=False)
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(3)).to(dtype)
    assert torch.equal(f(x), _conserve4(x))
    m = torch.compile(lambda t: conserve(t, 2.0, (1, 2, 3)), fullgraph=True, dynamic=False)
    x4 = torch.randn(2, 3, 4, 5).to(dtype)
    assert torch.equal(m(x4), conserve(x4, 2.0, (1, 2, 3)))
    z = torch.ones(6, 40, dtype=dtype)
    z[4] = 0
    with pytest.raises(InvalidArgument, match=r"sample at index \(4,\)"):
        f(z)
    z[4] = 1
    z[1, 7] = float("nan")
    with pytest.raises(InvalidArgument, match=r"index \(1, 7\)"):
        f(z)
    if dtype == torch.float32:
        w = torch.full((6, 40), 1e30)
        assert torch.equal(f(w), _conserve4(w))
