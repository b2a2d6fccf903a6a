"""The operator on a CUDA device; skipped where none is present.

On CUDA the fast path is one compiled (Triton) kernel per direction
(:mod:`conserve_verified._fused`), whose summation order is Triton's, not the
CPU kernels' orders that the tolerance table is derived from.  These tests check
the table's bounds on it, so a GPU run is evidence for the CUDA path, not a
proof.  ``benchmarks/gpu_check.sh`` runs this file and the bench's CUDA rows on
a lent GPU.

Identities checked (``y = conserve(x, E)`` on CUDA):

* every sample's energy is ``E`` within ``energy_atol(dtype, E, n)``;
* ``y`` is a positive multiple of ``x`` per sample: ``y_i / x_i`` is one value
  per sample within ``function_rtol`` (outputs in the normal range);
* the gradient equals the float64 CPU gradient within ``function_rtol`` of
  ``||(r / ||x||) g||`` (norm-wise);
* zero samples raise the typed error; ``torch.compile(fullgraph=True)`` gives
  the eager results within the same bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from conserve_verified import Conserved, InvalidArgument, _fused, conserve
from conserve_verified.testing import assert_energy_conserved
from conserve_verified.tolerances import energy_atol, tolerance

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    # inductor itself (not this package) uses deprecated torch.jit APIs while compiling
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
#: (rows, features): a tail of one element, and one of the bench's GPU shapes.
SHAPES = [(64, 4097), (16384, 4096)]
ENERGY = 4.0


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _x(rows: int, n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(rows, n, generator=gen, device="cuda").to(dtype)


def _assert_energy(y: torch.Tensor, dtype: torch.dtype) -> None:
    n = y.shape[-1]
    err = (y.double().pow(2).sum(-1) - ENERGY).abs().max().item()
    assert err <= energy_atol(dtype, ENERGY, n), (dtype, n, err)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_conserve_energy_within_the_table(dtype: torch.dtype, shape: tuple[int, int]) -> None:
    x = _x(*shape, dtype)
    assert _fused.forward(x, ENERGY, (1,)) is not None  # the compiled CUDA path
    y = conserve(x, ENERGY)
    assert y.dtype == dtype and y.shape == x.shape and y.is_cuda
    _assert_energy(y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_conserve_is_a_positive_multiple_of_its_input(dtype: torch.dtype) -> None:
    x = _x(256, 1024, dtype, seed=1)
    y = conserve(x, ENERGY)
    # outputs in the subnormal range have only an absolute error bound (the table's)
    keep = (x.abs() > 0) & (y.abs() >= torch.finfo(dtype).tiny)
    ratio = torch.where(keep, y.double() / x.double(), torch.nan)
    lo = ratio.nan_to_num(math.inf).amin(-1)
    hi = ratio.nan_to_num(-math.inf).amax(-1)
    assert bool((lo > 0).all())
    spread = ((hi - lo) / lo).max().item()
    assert spread <= 2 * tolerance(dtype).function_rtol, spread


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_gradient_matches_the_float64_cpu_gradient(dtype: torch.dtype) -> None:
    x = _x(512, 2048, dtype, seed=2).requires_grad_(True)
    g = _x(512, 2048, dtype, seed=3)
    (grad,) = torch.autograd.grad(conserve(x, ENERGY), x, g)
    x64 = x.detach().double().cpu().requires_grad_(True)
    (ref,) = torch.autograd.grad(conserve(x64, ENERGY), x64, g.double().cpu())
    scale = math.sqrt(ENERGY) / x64.detach().norm(dim=-1, keepdim=True)
    err = (grad.double().cpu() - ref).norm(dim=-1)
    bound = tolerance(dtype).function_rtol * (scale * g.double().cpu()).norm(dim=-1)
    assert bool((err <= bound).all()), (err / bound).max().item()


def test_cuda_zero_sample_raises_the_typed_error() -> None:
    x = _x(4, 64, torch.float32)
    x[2] = 0.0
    with pytest.raises(InvalidArgument, match="is all zeros") as err:
        conserve(x, ENERGY)
    assert err.value.argument == "x"
    y = conserve(x, ENERGY, zero="uniform")
    _assert_energy(y, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_compiled_conserve_matches_eager_within_the_table(dtype: torch.dtype) -> None:
    compiled = torch.compile(lambda t: conserve(t, ENERGY), fullgraph=True)
    x = _x(1024, 4096, dtype, seed=4).requires_grad_(True)
    g = _x(1024, 4096, dtype, seed=5)
    y = compiled(x)
    _assert_energy(y, dtype)
    (grad_c,) = torch.autograd.grad(y, x, g)
    (grad_e,) = torch.autograd.grad(conserve(x, ENERGY), x, g)
    diff = (grad_c.double() - grad_e.double()).norm(dim=-1)
    scale = math.sqrt(ENERGY) / x.detach().double().norm(dim=-1)
    bound = 2 * tolerance(dtype).function_rtol * scale * g.double().norm(dim=-1)
    assert bool((diff <= bound).all())


def test_cuda_conserved_pipeline_passes_the_energy_oracle() -> None:
    torch.manual_seed(0)
    model = Conserved(
        nn.Sequential(nn.Linear(64, 128), nn.ReLU()),
        nn.Sequential(nn.Linear(128, 128), nn.ReLU()),
        nn.Linear(128, 10),
        energy=8.0,
    ).cuda()
    x = torch.randn(32, 64, device="cuda")
    assert_energy_conserved(model, x)
    model(x).square().mean().backward()
    assert all(p.grad is not None and bool(p.grad.isfinite().all()) for p in model.parameters())
