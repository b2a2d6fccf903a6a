"""Tests of the module forms: ConserveEnergy, Pipeline, Conserved, conserve_boundaries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conserve_verified import (
    ConservationViolation,
    Conserved,
    ConserveEnergy,
    InvalidArgument,
    InvalidArgumentType,
    Pipeline,
    conserve,
    conserve_boundaries,
)
from conserve_verified.contracts import checks
from conserve_verified.testing import assert_energy_conserved, assert_energy_equals


def _mlp() -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        nn.Sequential(nn.Linear(6, 16), nn.ReLU()),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
        nn.Linear(16, 3),
    ]


def test_conserve_energy_module_equals_functional() -> None:
    x = torch.randn(4, 5)
    torch.testing.assert_close(ConserveEnergy(2.0, -1)(x), conserve(x, 2.0, -1))


def test_conserved_every_boundary_has_energy_E() -> None:
    p = Conserved(*_mlp(), energy=3.0)
    assert p.num_boundaries == 2
    acts = p.boundary_activations(torch.randn(7, 6))
    for h in acts:
        assert_energy_equals(h, 3.0)
    assert_energy_conserved(p, torch.randn(7, 6))


def test_pipeline_and_conserved_share_stages_and_hook_order() -> None:
    stages = _mlp()
    plain, cons = Pipeline(*stages), Conserved(*stages, energy=1.0)
    x = torch.randn(3, 6)
    seen: list[tuple[int, float]] = []

    def hook(h: torch.Tensor, i: int) -> torch.Tensor:
        seen.append((i, float(h.detach().pow(2).sum())))
        return 5.0 * h

    with cons.boundary_hook(hook):
        cons(x)
    assert [i for i, _ in seen] == [0, 1]
    # conservation acts after the hook: scaling by 5 changes nothing downstream
    torch.testing.assert_close(cons(x), cons(x))
    with cons.boundary_hook(hook):
        torch.testing.assert_close(cons(x), Conserved(*stages, energy=1.0)(x))
    assert cons._hook is None
    assert plain(x).shape == (3, 3)


def test_pipeline_from_sequential_shares_parameters() -> None:
    seq = nn.Sequential(*_mlp())
    p = Conserved.from_sequential(seq, energy=2.0)
    assert p.stages[0] is seq[0]
    assert_energy_conserved(p, torch.randn(2, 6))


def test_conserve_boundaries_hooks_named_submodules_and_removes() -> None:
    model = nn.Sequential(*_mlp())
    x = torch.randn(4, 6)
    before = model(x)
    captured: list[torch.Tensor] = []
    with conserve_boundaries(model, ["0", "1"], energy=2.0) as handle:
        h = model[1].register_forward_hook(lambda _m, _i, out: captured.append(out))
        model(x)
        h.remove()
        assert handle.names == ["0", "1"]
    assert_energy_equals(captured[0], 2.0)
    torch.testing.assert_close(model(x), before)


def test_conserve_boundaries_rejects_unknown_names() -> None:
    with pytest.raises(InvalidArgument, match="no such submodules"):
        conserve_boundaries(nn.Sequential(nn.Linear(2, 2)), ["nope"])


def test_pipeline_rejects_non_modules() -> None:
    with pytest.raises(InvalidArgumentType, match=r"modules\[1\]"):
        Pipeline(nn.Linear(2, 2), "relu")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        Pipeline()


def test_conserved_boundary_contract_raises_on_violation() -> None:
    class Broken(ConserveEnergy):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # energy off by 10%
            from conserve_verified import contracts

            y = conserve(x, self.energy, self.dim) * 1.05
            contracts.assert_energy(y, self.energy, self.dim)
            return y

    with checks("raise"), pytest.raises(ConservationViolation, match=r"differs from E=1\.0"):
        Broken(1.0)(torch.randn(2, 3))
    with checks("off"):
        Broken(1.0)(torch.randn(2, 3))


def test_oracle_catches_a_wrong_energy() -> None:
    with pytest.raises(ConservationViolation, match=r"sample \d has energy"):
        assert_energy_conserved(lambda t: 1.01 * conserve(t), torch.randn(2, 5), energy=1.0)
    with pytest.raises(InvalidArgument, match="energy=None"):
        assert_energy_conserved(lambda t: t, torch.randn(2, 5))


def test_resolve_dims_none_is_all_non_batch_dims() -> None:
    from conserve_verified.operators import resolve_dims

    assert resolve_dims(torch.zeros(2, 3, 4, 5), None) == (1, 2, 3)
    assert resolve_dims(torch.zeros(2, 3), None) == (1,)
    assert resolve_dims(torch.zeros(3), None) == -1
    assert resolve_dims(torch.zeros(2, 3, 4), [1, 2]) == (1, 2)
    assert resolve_dims(torch.zeros(2, 3, 4), -1) == -1


def test_traced_boundary_is_identity() -> None:
    from conserve_verified.operators import traced_boundary

    x = torch.randn(2, 3)
    assert traced_boundary(x, None, "layer1") is x


def test_conserve_energy_module_equals_functional_for_dim_none_and_zero_policy() -> None:
    x = torch.randn(3, 2, 4, 4)
    x[1] = 0.0
    m = ConserveEnergy(2.0, dim=None)
    torch.testing.assert_close(m(x), conserve(x, 2.0, (1, 2, 3), zero="uniform"))
    assert m.dead_samples == 1
    m.reset_dead_samples()
    assert m.dead_samples == 0
    with pytest.raises(InvalidArgument, match=r"input of ConserveEnergy=.*sample \(1,\)"):
        ConserveEnergy(2.0, dim=None, zero="raise")(x)
    with pytest.raises(InvalidArgument, match=r"zero='ignore'"):
        ConserveEnergy(zero="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["inference", "grad", "compiled"])
def test_conserve_energy_counts_dead_samples_on_every_path(path: str) -> None:
    """``dead_samples`` counts the all-zero samples mapped, eager (with and without
    autograd) and compiled, from the operator's own ``1/rho``; nonzero inputs count 0."""
    layer = ConserveEnergy(energy=2.0)
    x = torch.randn(6, 5)
    x[1] = 0.0
    x[4] = 0.0
    run = torch.compile(layer, fullgraph=True, backend="aot_eager") if path == "compiled" else layer
    if path == "grad":
        x.requires_grad_(True)
    y = run(x)
    assert layer.dead_samples == 2
    assert torch.allclose(y[1].double(), torch.full((5,), (2.0 / 5) ** 0.5, dtype=torch.float64))
    run(torch.randn(3, 5))
    assert layer.dead_samples == 2
    layer.reset_dead_samples()
    assert layer.dead_samples == 0
