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

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

import torch
import torch.fx
from torch import nn

from . import contracts
from ._math import ZeroPolicy, check_energy_value, conserve_counted
from .errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "BoundaryForwardHook",
    "BoundaryHandle",
    "BoundaryHook",
    "BoundaryTracer",
    "ConserveEnergy",
    "Conserved",
    "Pipeline",
    "boundary_hooks",
    "conserve_boundaries",
    "hooked_boundaries",
    "resolve_dims",
    "traced_boundary",
]

#: A boundary hook maps ``(activation, boundary_index) -> activation``.
BoundaryHook = Callable[[torch.Tensor, int], torch.Tensor]


def _check_dim_spec(dim: Any) -> int | tuple[int, ...] | None:
    """A feature-dim spec: an int, a non-empty tuple of ints, or ``None`` (all non-batch dims)."""
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, (int, tuple, list)):
        raise InvalidArgumentType("dim", dim, "an int, a tuple of ints or None")
    if isinstance(dim, (tuple, list)):
        if not dim or any(isinstance(d, bool) or not isinstance(d, int) for d in dim):
            raise InvalidArgument("dim", dim, "must be a non-empty tuple of ints")
        return tuple(dim)
    return dim


def resolve_dims(x: torch.Tensor, dim: int | Sequence[int] | None) -> int | tuple[int, ...]:
    """The feature dims of ``x`` for a dim spec: ``None`` means every dim but the batch dim 0.

    Identity: ``resolve_dims(x, None) == tuple(range(1, x.ndim))`` (``-1`` for a 1-d ``x``);
    any other spec is returned unchanged.
    """
    if isinstance(dim, int):
        return dim
    if dim is not None:
        return tuple(dim)
    return tuple(range(1, x.ndim)) if x.ndim > 1 else -1


def traced_boundary(x: Any, dim: Any = None, name: str | None = None) -> Any:
    """Marker of a hooked conservation boundary in a :mod:`torch.fx` graph (identity).

    Tracers of this package (gauge structure, noise predictor) record the
    output of a module hooked by :func:`conserve_boundaries` as a call of this
    function with the boundary's dim spec and name, and treat it as ``C_E``
    over those dims.  Identity: ``traced_boundary(x, dim, name) is x``.
    """
    return x


_ZERO_CHOICES = ("raise", "uniform")


class ConserveEnergy(nn.Module):
    """Module form of :func:`~conserve_verified.conserve`, safe for inference by default.

    Identity: ``ConserveEnergy(E, dim, zero)(x) == conserve(x, E, resolve_dims(x, dim), zero)``.

    ``dim=None`` conserves each sample over all its non-batch dims (a conv
    feature map ``(C, H, W)`` is one sample).

    Dead samples (all zeros, e.g. after a ReLU that died): unlike the
    functional :func:`~conserve_verified.conserve`, whose default is
    ``zero="raise"``, the module default is ``zero="uniform"`` -- a dead sample
    is mapped to the uniform direction ``sqrt(E / n) * ones`` (zero gradient)
    and *counted* in :attr:`dead_samples`, so a forward pass never crashes
    without the user having chosen it.  With ``zero="raise"`` a dead sample
    raises :class:`~conserve_verified.errors.InvalidArgument` naming the
    boundary (:attr:`label`) and the sample's index over the non-feature dims.
    """

    def __init__(
        self,
        energy: float = 1.0,
        dim: int | Sequence[int] | None = -1,
        zero: ZeroPolicy = "uniform",
        label: str | None = None,
    ) -> None:
        super().__init__()
        self.energy = check_energy_value(energy, torch.float64)
        self.dim = _check_dim_spec(dim)
        if zero not in _ZERO_CHOICES:
            raise InvalidArgument("zero", zero, f"must be one of {_ZERO_CHOICES}")
        self.zero: ZeroPolicy = zero
        if label is not None and not isinstance(label, str):
            raise InvalidArgumentType("label", label, "a str")
        self.label = label or type(self).__name__
        self._dead: torch.Tensor | None = None

    @property
    def dead_samples(self) -> int:
        """All-zero samples mapped to the uniform direction so far (``zero="uniform"``)."""
        return 0 if self._dead is None else int(self._dead)

    def reset_dead_samples(self) -> None:
        """Set :attr:`dead_samples` back to 0."""
        self._dead = None

    def dims_for(self, x: torch.Tensor) -> int | tuple[int, ...]:
        """The feature dims reduced over for input ``x`` (see :func:`resolve_dims`)."""
        return resolve_dims(x, self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = self.dims_for(x)
        try:
            y, dead = conserve_counted(x, self.energy, dims, self.zero)
        except InvalidArgument as exc:
            raise _boundary_error(self.label, x, dims, exc) from exc
        if dead is not None:  # the operator's own count: no extra pass over x
            self._dead = dead if self._dead is None else self._dead + dead.to(self._dead.device)
        contracts.assert_energy(y, self.energy, dims, name=f"{self.label} output")
        return y

    def extra_repr(self) -> str:
        return f"energy={self.energy}, dim={self.dim}, zero={self.zero!r}"


def _boundary_error(
    label: str, x: torch.Tensor, dims: int | tuple[int, ...], exc: InvalidArgument
) -> InvalidArgument:
    """The error of a failed ``C_E`` at boundary ``label``, naming the boundary and the sample."""
    if (
        not isinstance(x, torch.Tensor)
        or x.ndim == 0
        or x.dtype not in (torch.float64, torch.float32, torch.bfloat16, torch.float16)
    ):
        return InvalidArgument(f"input of {label}", x, exc.reason)
    feat = tuple(sorted(d % x.ndim for d in ((dims,) if isinstance(dims, int) else dims)))
    sample_dims = tuple(d for d in range(x.ndim) if d not in feat)
    dead = torch.count_nonzero(x.detach(), dim=feat) == 0
    if bool(dead.any()):
        index = tuple(int(i) for i in dead.nonzero()[0].tolist())
        return InvalidArgument(
            f"input of {label}",
            x,
            f"sample {index} (index over dims {sample_dims}; feature dims {feat}) is all zeros: "
            f"its direction is undefined ({int(dead.sum())} such sample(s)); use the default "
            "zero='uniform' to map dead samples to the uniform direction and count them",
        )
    return InvalidArgument(f"input of {label}", x, exc.reason)


class Pipeline(nn.Module):
    """Modules in sequence with numbered boundaries between consecutive modules.

    ``Pipeline(m1, m2, m3)`` has boundaries 0 (after ``m1``) and 1 (after ``m2``).
    A boundary hook given at construction (``hook=``), set with
    :meth:`set_boundary_hook` or installed temporarily with :meth:`boundary_hook`
    is applied at every boundary.

    A single ``nn.Sequential`` argument is unwrapped: ``Pipeline(nn.Sequential(a, b))``
    is ``Pipeline(a, b)`` (its children become the stages, shared, not copied),
    so the boundaries are where a user expects them.
    """

    def __init__(self, *modules: nn.Module, hook: BoundaryHook | None = None) -> None:
        super().__init__()
        if not modules:
            raise InvalidArgument("modules", modules, "a pipeline needs at least one module")
        if len(modules) == 1 and isinstance(modules[0], nn.Sequential) and len(modules[0]) > 1:
            modules = tuple(modules[0].children())
        for i, m in enumerate(modules):
            if not isinstance(m, nn.Module):
                raise InvalidArgumentType(f"modules[{i}]", m, "an nn.Module")
        self.stages = nn.ModuleList(modules)
        self._hook: BoundaryHook | None = None
        self.set_boundary_hook(hook)

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

    Identity: every boundary activation has energy ``energy`` per sample over ``dim``
    (``dim=None``: over all non-batch dims).

    ``hook`` (optional) is the boundary hook, as :meth:`Pipeline.set_boundary_hook`.
    ``zero`` is the dead-sample policy of each boundary's :class:`ConserveEnergy`
    (default ``"uniform"``: mapped and counted, see :attr:`dead_samples`).
    A single ``nn.Sequential`` is unwrapped into its children; a single other
    module is refused (a pipeline of one stage has no boundary to conserve).

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
        dim: int | Sequence[int] | None = -1,
        zero: ZeroPolicy = "uniform",
        hook: BoundaryHook | None = None,
    ) -> None:
        super().__init__(*modules, hook=hook)
        if self.num_boundaries == 0:
            raise InvalidArgument(
                "modules",
                [type(m).__name__ for m in modules],
                "a Conserved pipeline needs at least two stages (one boundary); pass the "
                "stages as separate arguments, Conserved(m1, m2, ...), or put C_E on named "
                "submodules of an existing model with conserve_boundaries(model, names)",
            )
        self.conservers = nn.ModuleList(
            ConserveEnergy(energy, dim, zero, label=f"boundary {i}")
            for i in range(self.num_boundaries)
        )
        self.energy = check_energy_value(energy, torch.float64)
        self.dim = _check_dim_spec(dim)

    @property
    def dead_samples(self) -> dict[int, int]:
        """Dead (all-zero) samples mapped to the uniform direction so far, per boundary index."""
        return {
            i: c.dead_samples
            for i, c in enumerate(self.conservers)
            if isinstance(c, ConserveEnergy)
        }

    def boundary(self, h: torch.Tensor, index: int) -> torch.Tensor:
        return self.conservers[index](super().boundary(h, index))


class BoundaryHandle:
    """Handle of a group of forward hooks; ``remove()`` (or leaving a ``with`` block) removes them.

    Returned by :func:`conserve_boundaries` (and, as a subclass, by
    :func:`conserve_verified.noise.inject`).  ``names`` are the hooked
    submodules' paths; for conservation boundaries :attr:`dead_samples` counts,
    per name, the all-zero samples mapped to the uniform direction.
    """

    def __init__(
        self,
        handles: list[torch.utils.hooks.RemovableHandle],
        names: list[str],
        boundaries: Sequence[BoundaryForwardHook] = (),
    ) -> None:
        self._handles = handles
        self.names = names
        self.boundaries = list(boundaries)

    @property
    def active(self) -> bool:
        """Whether the hooks are still installed."""
        return bool(self._handles)

    @property
    def dead_samples(self) -> dict[str, int]:
        """All-zero samples mapped to the uniform direction so far, per boundary name."""
        return {b.name: b.conserver.dead_samples for b in self.boundaries}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class BoundaryForwardHook:
    """The forward hook :func:`conserve_boundaries` puts on a submodule: ``hook``, then ``C_E``.

    Identity: the hooked module's output ``out`` becomes
    ``conserver(hook(out, index))`` (``conserver(out)`` without a hook).  While
    a model is traced with :mod:`torch.fx` it records :func:`traced_boundary`
    instead, so graph analyses see the boundary.
    """

    def __init__(
        self, name: str, index: int, conserver: ConserveEnergy, hook: BoundaryHook | None
    ) -> None:
        self.name = name
        self.index = index
        self.conserver = conserver
        self.hook = hook

    def __call__(self, _module: nn.Module, _inputs: Any, out: Any) -> Any:
        if isinstance(out, torch.fx.Proxy):
            return out.tracer.create_proxy(
                "call_function", traced_boundary, (out, self.conserver.dim, self.name), {}
            )
        if not isinstance(out, torch.Tensor):
            raise InvalidArgumentType(f"output of {self.name!r}", out, "a tensor")
        if self.hook is not None:
            out = self.hook(out, self.index)
        return self.conserver(out)


def boundary_hooks(module: nn.Module) -> list[BoundaryForwardHook]:
    """The :class:`BoundaryForwardHook` objects installed on ``module`` itself, in order."""
    return [h for h in module._forward_hooks.values() if isinstance(h, BoundaryForwardHook)]


class BoundaryTracer(torch.fx.Tracer):
    """fx tracer keeping torch.nn leaves and :class:`ConserveEnergy` opaque.

    A leaf module's forward hooks do not run while tracing, so the conservation
    boundaries :func:`conserve_boundaries` put on a leaf are recorded explicitly,
    as :func:`traced_boundary` calls after the leaf's output (a traced-through
    module's hooks run and record themselves).
    """

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, ConserveEnergy) or super().is_leaf_module(m, module_qualified_name)

    def call_module(
        self, m: nn.Module, forward: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        if self.is_leaf_module(m, self.path_of_module(m)):
            for h in boundary_hooks(m):
                out = self.create_proxy(
                    "call_function", traced_boundary, (out, h.conserver.dim, h.name), {}
                )
        return out


def hooked_boundaries(model: nn.Module) -> list[tuple[str, BoundaryForwardHook]]:
    """Every conservation boundary installed by :func:`conserve_boundaries` in ``model``.

    Returns ``(module path, hook)`` pairs in module order; also finds the hooks
    of a ``copy.deepcopy`` of a hooked model.
    """
    return [(n, h) for n, m in model.named_modules() for h in boundary_hooks(m)]


def conserve_boundaries(
    model: nn.Module,
    names: Sequence[str],
    energy: float = 1.0,
    dim: int | Sequence[int] | None = None,
    zero: ZeroPolicy = "uniform",
    hook: BoundaryHook | None = None,
) -> BoundaryHandle:
    """Apply ``C_E`` to the output of each named submodule of ``model`` (in place, via hooks).

    Identity: while the handle is active, the output of submodule ``names[k]``
    is ``ConserveEnergy(energy, dim, zero)(hook(out, k))`` -- energy ``energy``
    per sample over ``dim``; the default ``dim=None`` reduces over all non-batch
    dims, so a conv feature map ``(C, H, W)`` is one sample.

    Args:
        model: the model to modify (in place; nothing is copied).
        names: a sequence of submodule paths (``model.named_modules()`` names,
            e.g. ``["layer1", "layer2"]``); a bare string is refused, and so
            are duplicates and submodules that already carry a boundary.
        energy: the target energy ``E`` per sample.
        dim: feature dims; ``None`` (default) = all non-batch dims.
        zero: dead-sample policy: ``"uniform"`` (default) maps an all-zero
            sample to the uniform direction and counts it in
            :attr:`BoundaryHandle.dead_samples`; ``"raise"`` raises
            :class:`~conserve_verified.errors.InvalidArgument` naming the
            boundary and the sample.
        hook: optional ``(activation, k) -> activation`` applied before ``C_E``
            (e.g. a noise injector), with the boundary's position ``k`` in ``names``.

    Returns a :class:`BoundaryHandle`: ``remove()`` restores the model; usable
    as a context manager.  The oracles of :mod:`conserve_verified.testing` and
    :func:`conserve_verified.gauge.gauge_structure` see these boundaries.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module")
    if isinstance(names, (str, bytes)):
        raise InvalidArgumentType(
            "names", names, f"a sequence of submodule names, e.g. [{names!r}], not a bare string"
        )
    if not isinstance(names, Iterable):
        raise InvalidArgumentType("names", names, "a sequence of submodule names")
    names = list(names)
    if not names:
        raise InvalidArgument("names", names, "name at least one submodule")
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise InvalidArgumentType(f"names[{i}]", n, "a str (a submodule path)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidArgument("names", duplicates, "named more than once")
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        hints = [
            f"{n!r} -> did you mean {close[0]!r}?"
            for n in missing
            if (close := difflib.get_close_matches(n, list(modules), n=1))
        ]
        raise InvalidArgument(
            "names",
            missing,
            "no such submodules"
            + (f" ({'; '.join(hints)})" if hints else "")
            + f"; available ({len(modules)}): {', '.join(repr(k) for k in modules)}",
        )
    hooked = [n for n in names if boundary_hooks(modules[n])]
    if hooked:
        raise InvalidArgument(
            "names",
            hooked,
            "already carry a conservation boundary (remove the earlier handle first)",
        )
    if hook is not None and not callable(hook):
        raise InvalidArgumentType("hook", hook, "a callable (tensor, boundary_index) -> tensor")
    _check_dim_spec(dim)
    handles = []
    boundaries = []
    for index, name in enumerate(names):
        conserver = ConserveEnergy(energy, dim, zero, label=f"boundary {name!r}")
        fwd = BoundaryForwardHook(name, index, conserver, hook)
        boundaries.append(fwd)
        handles.append(modules[name].register_forward_hook(fwd))
    return BoundaryHandle(handles, names, boundaries)
