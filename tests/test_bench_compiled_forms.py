"""The compiled forms the bench compares the operator with do what their docstrings say.

``benchmarks/compiled_forms.py`` times three alternatives to the library's
compiled operator; its table is only evidence if each alternative conserves the
energy on safe input and handles a sample outside the safe range as stated.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.compiled_forms import FORMS, forms
from conserve_verified import InvalidArgument, conserve
from conserve_verified.tolerances import energy_atol


def _x(dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(6, 40, generator=torch.Generator().manual_seed(3)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("form", FORMS)
def test_every_form_conserves_energy_on_safe_input(form: str, dtype: torch.dtype) -> None:
    x = _x(dtype)
    y = forms()[form](x)
    energy = y.double().square().sum(-1)
    assert torch.all((energy - 1.0).abs() <= energy_atol(dtype, 1.0, 40))
    assert torch.all((y.double() * x.double()).sum(-1) > 0)  # on x's side, not flipped


def test_fused_form_has_no_check_and_gives_nan_on_a_zero_sample() -> None:
    x = _x(torch.float32)
    x[2] = 0
    y = forms()["fused"](x)
    assert torch.isnan(y[2]).all() and torch.isfinite(y[[0, 1, 3, 4, 5]]).all()


def test_fused_assert_raises_an_untyped_error_even_for_a_valid_tiny_sample() -> None:
    x = _x(torch.float32)
    x[1] *= 1e-30  # valid input: the operator takes its fallback here
    torch.testing.assert_close(conserve(x, 1.0)[1].square().sum(), torch.tensor(1.0))
    with pytest.raises(RuntimeError, match="outside the safe range") as info:
        forms()["fused_assert"](x)
    assert not isinstance(info.value, InvalidArgument)


def test_fused_check_op_raises_the_typed_error_and_computes_the_fallback() -> None:
    x = _x(torch.float32)
    x[1] *= 1e-30
    torch.testing.assert_close(forms()["fused_check_op"](x), conserve(x, 1.0))
    x[4] = 0
    with pytest.raises(InvalidArgument, match="all zeros"):
        forms()["fused_check_op"](x)


def test_compiled_fused_check_op_keeps_the_check() -> None:
    fn = torch.compile(forms()["fused_check_op"], fullgraph=True, backend="aot_eager")
    x = _x(torch.float32)
    x[1] *= 1e-30
    torch.testing.assert_close(fn(x), conserve(x, 1.0))
