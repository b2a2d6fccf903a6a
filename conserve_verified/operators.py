"""``nn.Module`` forms of the conservation operator and conserved pipelines.

* :class:`ConserveEnergy` -- ``C_E`` as a module.
* :class:`Pipeline` -- modules in sequence with explicit *boundaries* between
  them, where a boundary hook (e.g. a noise injector) can act; no conservation.
* :class:`Conserved` -- a :class:`Pipeline` that applies ``C_E`` at every
  boundary, after the boundary hook, and asserts exact energy there
  (contract :func:`~conserve_verified.contracts.assert_energy`).
* :func:`conserve_boundaries` -- put ``C_E`` on the outputs of named submodules
  of an existing model without rewriting it (forward hooks); returns a handle.

Identity: for ``p = Conserved(m1, ..., mk, energy=E)`` the input of every
``m_{i+1}`` (``i >= 1``) has energy ``E`` per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

import torch
from torch import nn

from . import contracts
from ._math import ZeroPolicy, check_energy_value, conserve
from .errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "BoundaryHandle",
    "BoundaryHook",
    "ConserveEnergy",
    "Conserved",
    "Pipeline",
    "conserve_boundaries",
]

#: A boundary hook maps ``(activation, boundary_index) -> activation``.
BoundaryHook = Callable[[torch.Tensor, int], torch.Tensor]


def _check_dim_spec(dim: Any) -> int | tuple[int, ...]:
    if isinstance(dim, bool) or not isinstance(dim, (int, tuple, list)):
        raise InvalidArgumentType("dim", dim, "an int or a tuple of ints")
    if isinstance(dim, (tuple, list)):
        if not dim or any(isinstance(d, bool) or not isinstance(d, int) for d in dim):
            raise InvalidArgument("dim", dim, "must be a non-empty tuple of ints")
        return tuple(dim)
    return dim


class ConserveEnergy(nn.Module):
    """Module form of :func:`~conserve_verified.conserve`.

    Identity: ``ConserveEnergy(E, dim)(x) == conserve(x, E, dim)``.
    """

    def __init__(
        self, energy: float = 1.0, dim: int | Sequence[int] = -1, zero: ZeroPolicy = "raise"
    ) -> None:
        super().__init__()
        self.energy = check_energy_value(energy, torch.float64)
        self.dim = _check_dim_spec(dim)
        if zero not in ("raise", "uniform"):
            raise InvalidArgument("zero", zero, "must be one of ('raise', 'uniform')")
        self.zero: ZeroPolicy = zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = conserve(x, self.energy, self.dim, self.zero)
        contracts.assert_energy(y, self.energy, self.dim, name=f"{type(self).__name__} output")
        return y

    def extra_repr(self) -> str:
        return f"energy={self.energy}, dim={self.dim}, zero={self.zero!r}"


class Pipeline(nn.Module):
    """Modules in sequence with numbered boundaries between consecutive modules.

    ``Pipeline(m1, m2, m3)`` has boundaries 0 (after ``m1``) and 1 (after ``m2``).
    A boundary hook set with :meth:`set_boundary_hook` (or temporarily with
    :meth:`boundary_hook`) is applied at every boundary.
    """

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        if not modules:
            raise InvalidArgument("modules", modules, "a pipeline needs at least one module")
        for i, m in enumerate(modules):
            if not isinstance(m, nn.Module):
                raise InvalidArgumentType(f"modules[{i}]", m, "an nn.Module")
        self.stages = nn.ModuleList(modules)
        self._hook: BoundaryHook | None = None

    @property
    def num_boundaries(self) -> int:
        """Number of boundaries: ``len(stages) - 1``."""
        return len(self.stages) - 1

    def set_boundary_hook(self, hook: BoundaryHook | None) -> None:
        """Install (or with ``None`` remove) the hook applied at every boundary."""
        if hook is not None and not callable(hook):
            raise InvalidArgumentType("hook", hook, "a callable (tensor, boundary_index) -> tensor")
        self._hook = hook

    def boundary_hook(self, hook: BoundaryHook | None) -> _HookContext:
        """Context manager installing ``hook`` for the duration of a block."""
        return _HookContext(self, hook)

    def boundary(self, h: torch.Tensor, index: int) -> torch.Tensor:
        """What happens at boundary ``index``: the hook only (no conservation)."""
        return self._hook(h, index) if self._hook is not None else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages[0](x)
        for i, stage in enumerate(list(self.stages)[1:]):
            h = self.boundary(h, i)
            h = stage(h)
        return h

    def boundary_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations right after each boundary (after hook and conservation)."""
        out = []
        h = self.stages[0](x)
        for i, stage in enumerate(list(self.stages)[1:]):
            h = self.boundary(h, i)
            out.append(h)
            h = stage(h)
        return out

    @classmethod
    def from_sequential(cls, seq: nn.Sequential, **kwargs: Any) -> Pipeline:
        """Build from an ``nn.Sequential``: its children become the stages (shared, not copied)."""
        if not isinstance(seq, nn.Sequential):
            raise InvalidArgumentType("seq", seq, "an nn.Sequential")
        return cls(*seq.children(), **kwargs)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.stages)


class _HookContext:
    def __init__(self, pipeline: Pipeline, hook: BoundaryHook | None) -> None:
        self.pipeline = pipeline
        self.hook = hook
        self.previous: BoundaryHook | None = None

    def __enter__(self) -> Pipeline:
        self.previous = self.pipeline._hook
        self.pipeline.set_boundary_hook(self.hook)
        return self.pipeline

    def __exit__(self, *exc: object) -> None:
        self.pipeline.set_boundary_hook(self.previous)


class Conserved(Pipeline):
    """A :class:`Pipeline` that applies ``C_E`` at every boundary (after the hook).

    Identity: every boundary activation has energy ``energy`` per sample over ``dim``.

    >>> import torch
    >>> from torch import nn
    >>> p = Conserved(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), energy=2.0)
    >>> with torch.no_grad():
    ...     hs = p.boundary_activations(torch.ones(1, 4))
    >>> [round(float(h.pow(2).sum(-1)[0]), 4) for h in hs]
    [2.0, 2.0]
    """

    def __init__(
        self,
        *modules: nn.Module,
        energy: float = 1.0,
        dim: int | Sequence[int] = -1,
        zero: ZeroPolicy = "raise",
    ) -> None:
        super().__init__(*modules)
        self.conservers = nn.ModuleList(
            ConserveEnergy(energy, dim, zero) for _ in range(self.num_boundaries)
        )
        self.energy = check_energy_value(energy, torch.float64)
        self.dim = _check_dim_spec(dim)

    def boundary(self, h: torch.Tensor, index: int) -> torch.Tensor:
        return self.conservers[index](super().boundary(h, index))


class BoundaryHandle:
    """Handle returned by :func:`conserve_boundaries`; ``remove()`` undoes the wrapping.

    Holds the forward hooks installed on the submodules ``names``; ``remove()``
    (or leaving the ``with`` block) removes every one of them, once.
    """

    def __init__(self, handles: list[torch.utils.hooks.RemovableHandle], names: list[str]) -> None:
        self._handles = handles
        self.names = names

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def conserve_boundaries(
    model: nn.Module,
    names: Iterable[str],
    energy: float = 1.0,
    dim: int | Sequence[int] = -1,
    zero: ZeroPolicy = "raise",
    hook: BoundaryHook | None = None,
) -> BoundaryHandle:
    """Apply ``C_E`` to the output of each named submodule of ``model`` (in place, via hooks).

    ``hook`` (optional) is applied to each output before conservation, with the
    boundary's position in ``names`` as index.  Returns a :class:`BoundaryHandle`
    whose ``remove()`` restores the model; usable as a context manager.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module")
    names = list(names)
    if not names:
        raise InvalidArgument("names", names, "name at least one submodule")
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise InvalidArgument(
            "names", missing, f"no such submodules; available: {sorted(modules)[:20]}"
        )
    conserver = ConserveEnergy(energy, _check_dim_spec(dim), zero)
    handles = []
    for index, name in enumerate(names):

        def _fwd(_m: nn.Module, _inp: Any, out: Any, index: int = index) -> torch.Tensor:
            if not isinstance(out, torch.Tensor):
                raise InvalidArgumentType(f"output of {names[index]!r}", out, "a tensor")
            if hook is not None:
                out = hook(out, index)
            return conserver(out)

        handles.append(modules[name].register_forward_hook(_fwd))
    return BoundaryHandle(handles, names)
