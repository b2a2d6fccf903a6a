"""The gauge structure of a model, found by tracing its graph with :mod:`torch.fx`.

A *scale* is one positive factor ``alpha_k = exp(u_k)`` of the rescaling
symmetry.  Every channel (hidden neuron, conv channel) produced by a layer
starts with a scale of its own; tracing then merges or fixes scales:

* an **addition** (residual connection) joins its operands channel by channel:
  both summands must carry the same scale, so their scales are merged;
* a **concatenation** along the channel dim passes each operand's scales
  through unchanged (DenseNet);
* positively homogeneous operations (ReLU, leaky ReLU, PReLU, max/avg pooling,
  dropout, flattening, multiplication by a constant) pass scales through,
  because ``phi(alpha z) = alpha phi(z)`` for ``alpha > 0`` (G1);
* the model's input and output, the input of a batch-norm layer (which is
  normalised, so its scale is a different symmetry), and an addition with a
  constant **fix** a scale to 1;
* a conservation boundary (a :class:`~conserve_verified.ConserveEnergy`
  module, or a submodule hooked by :func:`~conserve_verified.conserve_boundaries`) is
  0-homogeneous per sample (T3): every scale entering it over its feature dims
  is *absorbed* (invisible downstream, needs no compensation), and the channels
  sharing one normalisation are merged into one common scale -- an individual
  neuron's rescaling is visible through ``C_E`` and is not a symmetry;
* a non-homogeneous operation (GELU, tanh, sigmoid, ...) or an unknown one is
  refused with :class:`~conserve_verified.errors.InvalidArgument`, unless
  ``strict=False``, in which case it fixes the scales of its input.

Each free scale then acts on parameters as a *producer* (the rows of a weight,
the bias entries, a batch-norm ``weight``/``bias`` entry that make its
channel: multiplied by ``alpha``) and as a *consumer* (the input columns of the
next weight: multiplied by ``1/alpha``).  Identity (G1):
``model(x)`` is unchanged by this action for every choice of ``u``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from .._math import normalize_dims
from ..errors import InvalidArgument, InvalidArgumentType
from ..operators import (
    BoundaryTracer,
    ConserveEnergy,
    resolve_dims,
    traced_boundary,
)

__all__ = [
    "GaugeStructure",
    "ParamAction",
    "gauge_structure",
]

#: Union-find id of the fixed scale (``alpha = 1``).
_FIXED = 0

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PASS_MODULES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_PASS_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    torch.relu,
    F.relu,
    F.leaky_relu,
    F.prelu,
    F.dropout,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    operator.pos,
)
_PASS_METHODS = ("relu", "contiguous", "clone", "detach")
_ADD_FUNCTIONS: tuple[Callable[..., Any], ...] = (operator.add, operator.sub, torch.add, torch.sub)
_SCALE_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    operator.mul,
    operator.truediv,
    operator.neg,
    torch.mul,
    torch.div,
)
_FLATTEN_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.flatten,)
_CAT_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.cat, torch.concat, torch.concatenate)


@dataclass(frozen=True)
class ParamAction:
    """How the gauge acts on one parameter tensor.

    Identity: the parameter ``p`` maps to ``p * exp(u_ext[prod])[:, None, ...]
    * exp(-u_ext[cons])[None, :, ...]`` where ``u_ext = cat(u, [0])`` (index
    ``num_scales`` is the fixed scale).

    Attributes:
        name: qualified parameter name in ``model.named_parameters()``.
        shape: the parameter's shape (checked before acting).
        prod: scale index of every slice along dim 0 (``None``: not a producer).
        cons: scale index of every slice along dim 1 (``None``: not a consumer).
    """

    name: str
    shape: tuple[int, ...]
    prod: torch.Tensor | None
    cons: torch.Tensor | None


@dataclass(frozen=True)
class GaugeStructure:
    """The free scales of a model and their action on its parameters.

    Attributes:
        num_scales: number ``K`` of free scales (the dimension of the gauge group).
        actions: one :class:`ParamAction` per parameter the gauge touches.
        absorbed: bool ``(K,)``: the scale enters a conservation boundary.
        compensated: bool ``(K,)``: the scale has consumer entries (outgoing
            weights that compensate it).  A scale without them (e.g. the common
            scale in front of ``C_E``) has no minimum-norm point on its orbit.
        labels: a readable name per scale (first producing module and channel).
    """

    num_scales: int
    actions: tuple[ParamAction, ...]
    absorbed: torch.Tensor
    compensated: torch.Tensor
    labels: tuple[str, ...] = field(default=())

    def check_model(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Return ``model``'s named parameters after checking they match this structure."""
        if not isinstance(model, nn.Module):
            raise InvalidArgumentType("model", model, "an nn.Module")
        params: dict[str, torch.Tensor] = dict(model.named_parameters())
        for act in self.actions:
            p = params.get(act.name)
            if p is None or tuple(p.shape) != act.shape:
                raise InvalidArgument(
                    "model",
                    type(model).__name__,
                    f"parameter {act.name!r} missing or reshaped (expected shape {act.shape}); "
                    "the gauge structure was traced from a different model",
                )
        return params


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = [_FIXED]
        self.label: list[str] = ["fixed"]

    def new(self, label: str) -> int:
        self.parent.append(len(self.parent))
        self.label.append(label)
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        # the fixed scale (0) and older scales stay roots
        lo, hi = (ra, rb) if ra < rb else (rb, ra)
        self.parent[hi] = lo


@dataclass
class _Chan:
    """Per-channel scale ids (dim 1) of a traced tensor, and its shape."""

    ids: list[int]
    shape: tuple[int, ...]


class _Analysis:
    def __init__(self, model: nn.Module, strict: bool) -> None:
        self.model = model
        self.strict = strict
        self.uf = _UnionFind()
        self.prod: dict[str, list[int]] = {}
        self.cons: dict[str, list[int]] = {}
        self.absorbed: set[int] = set()
        self.modules = dict(model.named_modules())

    # ---------------------------------------------------------------- helpers

    def _refuse(self, node: fx.Node, what: str) -> InvalidArgument:
        return InvalidArgument(
            "model",
            type(self.model).__name__,
            f"{what} at graph node {node.name!r} ({node.format_node()}) "
            "is not supported by the gauge action",
        )

    def _fix(self, chan: _Chan) -> None:
        for i in chan.ids:
            self.uf.union(i, _FIXED)

    def _fixed(self, shape: tuple[int, ...]) -> _Chan:
        return _Chan([_FIXED] * (shape[1] if len(shape) > 1 else 1), shape)

    def _non_homogeneous(
        self, node: fx.Node, chan: _Chan, what: str, shape: tuple[int, ...]
    ) -> _Chan:
        free = [i for i in chan.ids if self.uf.find(i) != _FIXED]
        if free and self.strict:
            raise InvalidArgument(
                "model",
                type(self.model).__name__,
                f"{what} at graph node {node.name!r} is not positively homogeneous "
                "(phi(a z) != a phi(z) for a > 0), so rescaling the neurons feeding it "
                "changes the function; gauge tools need ReLU/leaky-ReLU-type activations "
                "(pass strict=False to treat such operations as fixing the scale of their input)",
            )
        self._fix(chan)
        return self._fixed(shape)

    def _register(self, table: dict[str, list[int]], key: str, ids: list[int]) -> list[int]:
        """Record scale ids of a module's slices; a module called twice shares them."""
        if key in table:
            old = table[key]
            if len(old) != len(ids):
                raise InvalidArgument(
                    "model", type(self.model).__name__, f"module {key!r} used with two widths"
                )
            for a, b in zip(old, ids, strict=True):
                self.uf.union(a, b)
            return old
        table[key] = list(ids)
        return list(ids)

    @staticmethod
    def _shape(node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            return ()
        return tuple(int(s) for s in meta.shape)

    # ---------------------------------------------------------------- nodes

    def run(self, graph: fx.Graph) -> None:
        env: dict[fx.Node, Any] = {}
        for node in graph.nodes:
            env[node] = self._node(node, env)

    def _arg(self, a: Any, env: dict[fx.Node, Any]) -> Any:
        if isinstance(a, fx.Node):
            return env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self._arg(x, env) for x in a)
        return a

    def _node(self, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
        shape = self._shape(node)
        if node.op == "placeholder":
            return self._fixed(shape) if shape else None
        if node.op == "output":
            for v in _flatten(self._arg(node.args, env)):
                if isinstance(v, _Chan):
                    self._fix(v)
            return None
        if node.op == "get_attr":
            raise self._refuse(node, "direct use of a parameter or buffer")
        args = self._arg(node.args, env)
        kwargs = {k: self._arg(v, env) for k, v in node.kwargs.items()}
        chans = [v for v in _flatten((args, list(kwargs.values()))) if isinstance(v, _Chan)]
        if not chans:
            # no traced tensor involved (sizes, shapes, constants)
            return self._fixed(shape) if shape else None
        if node.op == "call_module":
            return self._module(node, str(node.target), args, shape)
        if node.op == "call_function":
            return self._function(node, node.target, args, kwargs, shape)
        if node.op == "call_method":
            return self._method(node, str(node.target), args, kwargs, shape)
        raise self._refuse(node, f"operation {node.op!r}")

    def _module(self, node: fx.Node, name: str, args: Any, shape: tuple[int, ...]) -> Any:
        m = self.modules[name]
        x = args[0]
        if not isinstance(x, _Chan):
            raise self._refuse(node, f"module {name!r} with a non-tensor input")
        if isinstance(m, _WEIGHTED):
            if isinstance(m, nn.Linear) and len(x.shape) != 2:
                raise self._refuse(node, f"nn.Linear {name!r} on a {len(x.shape)}-d input")
            if not isinstance(m, nn.Linear) and m.groups != 1:
                raise self._refuse(node, f"grouped convolution {name!r} (groups={m.groups})")
            self._register(self.cons, name, x.ids)
            fresh = [self.uf.new(f"{name}[{c}]") for c in range(shape[1])]
            return _Chan(self._register(self.prod, name, fresh), shape)
        if isinstance(m, _BATCHNORM):
            self._fix(x)
            if not m.affine:
                return self._fixed(shape)
            fresh = [self.uf.new(f"{name}[{c}]") for c in range(shape[1])]
            return _Chan(self._register(self.prod, name, fresh), shape)
        if isinstance(m, ConserveEnergy):
            return self._conserve(node, m.dim, x, shape)
        if isinstance(m, nn.Flatten):
            return self._flatten(node, x, m.start_dim, m.end_dim, shape)
        if isinstance(m, _PASS_MODULES):
            return _Chan(list(x.ids), shape)
        return self._non_homogeneous(node, x, f"module {name!r} ({type(m).__name__})", shape)

    def _conserve(self, node: fx.Node, dim: Any, x: _Chan, shape: tuple[int, ...]) -> _Chan:
        meta = torch.empty(x.shape, device="meta")
        dims = normalize_dims(meta, resolve_dims(meta, dim))
        if 0 in dims or 1 in dims or len(x.shape) < 2:
            # one normalisation spans several channels: they share one scale
            for i in x.ids[1:]:
                self.uf.union(x.ids[0], i)
        for i in x.ids:
            self.absorbed.add(i)
        return self._fixed(shape)

    def _flatten(
        self, node: fx.Node, x: _Chan, start: int, end: int, shape: tuple[int, ...]
    ) -> _Chan:
        nd = len(x.shape)
        start, end = start % nd, end % nd
        if start == 0:
            raise self._refuse(node, "flattening the batch dimension")
        if start > 1 or end < 1:
            return _Chan(list(x.ids), shape)
        per = math.prod(x.shape[2 : end + 1])
        return _Chan([i for i in x.ids for _ in range(per)], shape)

    def _function(
        self,
        node: fx.Node,
        fn: Any,
        args: Any,
        kwargs: dict[str, Any],
        shape: tuple[int, ...],
    ) -> Any:
        if fn is traced_boundary:
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            return self._conserve(node, dim, args[0], shape)
        if fn in _PASS_FUNCTIONS:
            return _Chan(list(args[0].ids), shape)
        if fn in _FLATTEN_FUNCTIONS:
            start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
            end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
            return self._flatten(node, args[0], start, end, shape)
        if fn in _ADD_FUNCTIONS:
            return self._add(node, args[0], args[1], shape)
        if fn in _SCALE_FUNCTIONS:
            return self._scale(node, args, shape)
        if fn in _CAT_FUNCTIONS:
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            return self._cat(node, list(args[0]), dim, shape)
        if fn is torch.mean or fn is torch.sum:
            return self._reduce(
                node, args[0], args[1] if len(args) > 1 else kwargs.get("dim"), shape
            )
        name = getattr(fn, "__name__", repr(fn))
        return self._non_homogeneous(node, _merge_chans(args), f"function {name!r}", shape)

    def _method(
        self,
        node: fx.Node,
        name: str,
        args: Any,
        kwargs: dict[str, Any],
        shape: tuple[int, ...],
    ) -> Any:
        x = args[0]
        if name in ("size", "dim"):
            return None
        if name in _PASS_METHODS:
            return _Chan(list(x.ids), shape)
        if name in ("view", "reshape", "flatten"):
            if name == "flatten":
                start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
                end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
                return self._flatten(node, x, start, end, shape)
            if len(shape) == 2 and shape[0] == x.shape[0]:
                return self._flatten(node, x, 1, -1, shape)
            if shape == x.shape:
                return _Chan(list(x.ids), shape)
            raise self._refuse(node, f"reshape from {x.shape} to {shape}")
        if name in ("add", "sub"):
            return self._add(node, x, args[1], shape)
        if name in ("mul", "div"):
            return self._scale(node, args, shape)
        if name in ("mean", "sum"):
            return self._reduce(node, x, args[1] if len(args) > 1 else kwargs.get("dim"), shape)
        return self._non_homogeneous(node, _merge_chans(args), f"method {name!r}", shape)

    def _add(self, node: fx.Node, a: Any, b: Any, shape: tuple[int, ...]) -> _Chan:
        if isinstance(a, _Chan) and isinstance(b, _Chan):
            if len(a.ids) != len(b.ids):
                raise self._refuse(node, f"broadcasting addition of {a.shape} and {b.shape}")
            for i, j in zip(a.ids, b.ids, strict=True):
                self.uf.union(i, j)
            return _Chan(list(a.ids), shape)
        x = a if isinstance(a, _Chan) else b
        const = b if isinstance(a, _Chan) else a
        if not (isinstance(const, (int, float)) and const == 0):
            self._fix(x)  # x + c is homogeneous only for c = 0
        return _Chan(list(x.ids), shape)

    def _scale(self, node: fx.Node, args: Any, shape: tuple[int, ...]) -> _Chan:
        tensors = [a for a in args if isinstance(a, _Chan)]
        if len(tensors) != 1:
            raise self._refuse(node, "product of two traced tensors (degree-2 homogeneous)")
        return _Chan(list(tensors[0].ids), shape)

    def _cat(self, node: fx.Node, parts: list[Any], dim: int, shape: tuple[int, ...]) -> _Chan:
        chans = [p for p in parts if isinstance(p, _Chan)]
        if len(chans) != len(parts):
            raise self._refuse(node, "concatenation with a constant tensor")
        d = dim % len(shape)
        if d == 1:
            return _Chan([i for p in chans for i in p.ids], shape)
        for p in chans[1:]:
            for i, j in zip(chans[0].ids, p.ids, strict=True):
                self.uf.union(i, j)
        return _Chan(list(chans[0].ids), shape)

    def _reduce(self, node: fx.Node, x: _Chan, dim: Any, shape: tuple[int, ...]) -> _Chan:
        dims = (dim,) if isinstance(dim, int) else tuple(dim) if dim is not None else None
        nd = len(x.shape)
        if dims is None or any(d % nd in (0, 1) for d in dims):
            raise self._refuse(node, f"reduction over dims {dim} (mixes channels or samples)")
        return _Chan(list(x.ids), shape)


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple)):
        return [y for x in obj for y in _flatten(x)]
    if isinstance(obj, dict):
        return [y for x in obj.values() for y in _flatten(x)]
    return [obj]


def _merge_chans(args: Any) -> _Chan:
    chans = [a for a in _flatten(args) if isinstance(a, _Chan)]
    return _Chan([i for c in chans for i in c.ids], chans[0].shape)


def gauge_structure(
    model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], strict: bool = True
) -> GaugeStructure:
    """Trace ``model`` and return its :class:`GaugeStructure`.

    Args:
        model: an ``nn.Module`` built from linear/conv layers, batch norm,
            positively homogeneous activations, pooling, additions,
            concatenations and conservation boundaries.
        example_input: an input (or tuple of inputs) used to propagate shapes.
        strict: refuse non-homogeneous operations (default); with ``False``
            they fix the scales of their input instead.

    Identity (G1): for every ``u``, ``gauge_transform(model, s, u)`` leaves
    ``model(x)`` unchanged.

    Raises:
        InvalidArgument: the model contains an operation that is not
            positively homogeneous or not understood, naming the graph node.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentType("model", model, "an nn.Module")
    inputs = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise InvalidArgumentType("example_input", example_input, "a tensor or tuple of tensors")
    try:
        graph = BoundaryTracer().trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python
        raise InvalidArgument(
            "model", type(model).__name__, f"cannot be traced with torch.fx: {exc}"
        ) from exc
    gm = fx.GraphModule(model, graph)
    was_training = model.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(*inputs)
    model.train(was_training)
    analysis = _Analysis(model, strict)
    analysis.run(graph)
    return _build(model, analysis)


def _build(model: nn.Module, an: _Analysis) -> GaugeStructure:
    uf = an.uf
    roots: dict[int, int] = {}
    for i in range(1, len(uf.parent)):
        r = uf.find(i)
        if r != _FIXED and r not in roots:
            roots[r] = len(roots)
    k = len(roots)

    def index(ids: list[int]) -> torch.Tensor:
        return torch.tensor([roots.get(uf.find(i), k) for i in ids], dtype=torch.long)

    actions = []
    compensated = torch.zeros(k, dtype=torch.bool)
    params = dict(model.named_parameters())
    for name, m in an.modules.items():
        prod = index(an.prod[name]) if name in an.prod else None
        cons = index(an.cons[name]) if name in an.cons else None
        if prod is not None and bool((prod == k).all()):
            prod = None
        if cons is not None and bool((cons == k).all()):
            cons = None
        if prod is None and cons is None:
            continue
        if cons is not None:
            compensated[cons[cons < k]] = True
        for pname in ("weight", "bias"):
            p = getattr(m, pname, None)
            if not isinstance(p, nn.Parameter):
                continue
            full = f"{name}.{pname}" if name else pname
            if full not in params:
                continue
            is_weight = pname == "weight" and not isinstance(m, _BATCHNORM)
            act_cons = cons if is_weight else None
            if prod is None and act_cons is None:
                continue
            actions.append(ParamAction(full, tuple(p.shape), prod, act_cons))
    absorbed = torch.zeros(k, dtype=torch.bool)
    for i in an.absorbed:
        r = uf.find(i)
        if r in roots:
            absorbed[roots[r]] = True
    labels = [""] * k
    for r, j in roots.items():
        labels[j] = uf.label[r]
    return GaugeStructure(k, tuple(actions), absorbed, compensated, tuple(labels))
