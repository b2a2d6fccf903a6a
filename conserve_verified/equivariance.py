r"""Finite groups acting linearly, the exact group-averaging projector, equivariance error.

A :class:`Representation` is a finite group ``G`` (given by its Cayley table)
together with matrices ``rho(g)`` acting on the trailing ``event_shape`` of a
tensor, with ``rho(a) rho(b) = rho(a * b)``.  Shipped representations:

* :func:`dihedral_images` -- the dihedral group D4 (rotations by 90 degrees and
  flips) acting on square ``n x n`` images by permuting pixels;
* :func:`cyclic_shifts` -- the cyclic group C_n acting on ``R^n`` by cyclic shifts
  (``torch.roll``) of 1-D signals;
* :func:`trivial` -- the same group acting as the identity (invariance);
* :func:`from_permutations` / :func:`from_matrices` -- any other finite group.

Group averaging (the Reynolds operator) over ``G``:

.. math::

    P(W) = \frac{1}{|G|} \sum_g \rho_{out}(g)^{-1}\, W\, \rho_{in}(g), \qquad
    \bar f(x) = \frac{1}{|G|} \sum_g \rho_{out}(g)^{-1} f(\rho_{in}(g)\, x).

Identities (theorem A1 in ``proofs/ace.py``; tests of the same name in
``tests/test_equivariance.py`` and ``property_tests/test_equivariance.py``):

* ``average_linear(average_linear(W)) == average_linear(W)``        (idempotent)
* ``rho_out(h) @ average_linear(W) == average_linear(W) @ rho_in(h)`` (exactly equivariant)
* for orthogonal ``rho_in``, ``rho_out``: ``<W - P(W), P(V)>_F == 0`` (orthogonal projection)
* ``GroupAveraged(f)(rho_in(h) x) == rho_out(h) GroupAveraged(f)(x)`` for every ``h``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "GroupAveraged",
    "Representation",
    "average_linear",
    "check_compatible",
    "cyclic_shifts",
    "dihedral_images",
    "equivariance_error",
    "from_matrices",
    "from_permutations",
    "linear_equivariance_defect",
    "trivial",
]


@dataclass(frozen=True, eq=False)
class Representation:
    """A finite group acting linearly on tensors' trailing ``event_shape``.

    Attributes:
        name: human-readable name, e.g. ``"D4 on 8x8 images"``.
        event_shape: trailing shape acted on (``()`` is not allowed; use ``(1,)``).
        table: ``(|G|, |G|)`` int64 Cayley table: ``rho(a) @ rho(b) == rho(table[a, b])``.
        matrices: ``(|G|, d, d)`` float64 representation matrices, ``d = prod(event_shape)``.
        perms: ``(|G|, d)`` int64 for permutation representations, where
            ``(rho(g) x)[i] = x[perms[g, i]]`` on the flattened event; ``None`` otherwise.
    """

    name: str
    event_shape: tuple[int, ...]
    table: torch.Tensor
    matrices: torch.Tensor
    perms: torch.Tensor | None = None

    @property
    def order(self) -> int:
        """``|G|``, the number of group elements."""
        return int(self.table.shape[0])

    @property
    def dim(self) -> int:
        """``d``, the dimension of the representation space."""
        return math.prod(self.event_shape)

    @property
    def identity(self) -> int:
        """Index of the identity element."""
        row = (self.table == torch.arange(self.order)).all(dim=1)
        return int(row.nonzero()[0])

    def inverse(self, g: int) -> int:
        """Index of ``g^{-1}``: ``table[g, inverse(g)] == identity``."""
        g = self._check_element(g)
        return int((self.table[g] == self.identity).nonzero()[0])

    def compose(self, a: int, b: int) -> int:
        """Index of ``a * b``: ``rho(a) rho(b) == rho(compose(a, b))``."""
        return int(self.table[self._check_element(a), self._check_element(b)])

    def matrix(self, g: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``rho(g)`` as a ``(d, d)`` matrix."""
        return self.matrices[self._check_element(g)].to(dtype)

    def _check_element(self, g: Any) -> int:
        if isinstance(g, bool) or not isinstance(g, int):
            raise InvalidArgumentType("g", g, "an int group-element index")
        if not 0 <= g < self.order:
            raise InvalidArgument("g", g, f"must be in [0, {self.order}) for {self.name}")
        return g

    def _check_input(self, x: Any, name: str = "x") -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InvalidArgumentType(name, x, "a torch.Tensor")
        k = len(self.event_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.event_shape:
            raise InvalidArgument(
                name,
                x,
                f"trailing shape must be {self.event_shape} for {self.name}",
            )
        return x

    def act(self, x: torch.Tensor, g: int) -> torch.Tensor:
        """``rho(g) x`` on the trailing ``event_shape`` of ``x`` (leading dims are batch)."""
        x = self._check_input(x)
        g = self._check_element(g)
        k = len(self.event_shape)
        batch = x.shape[: x.ndim - k]
        flat = x.reshape(*batch, self.dim)
        if self.perms is not None:
            out = flat[..., self.perms[g]]
        else:
            out = flat @ self.matrices[g].to(x.dtype).T
        return out.reshape(*batch, *self.event_shape)

    def act_all(self, x: torch.Tensor) -> torch.Tensor:
        """``stack([rho(g) x for g in G])`` with the group on a new leading dim."""
        return torch.stack([self.act(x, g) for g in range(self.order)])

    def __repr__(self) -> str:
        return f"Representation({self.name!r}, order={self.order}, event_shape={self.event_shape})"


# --------------------------------------------------------------------------- construction


def _check_event_shape(event_shape: Any) -> tuple[int, ...]:
    if isinstance(event_shape, int) and not isinstance(event_shape, bool):
        event_shape = (event_shape,)
    if not isinstance(event_shape, (tuple, list)) or not event_shape:
        raise InvalidArgumentType("event_shape", event_shape, "a non-empty tuple of ints")
    for s in event_shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise InvalidArgument("event_shape", event_shape, "entries must be ints >= 1")
    return tuple(event_shape)


def _table_from_keys(
    name: str, keys: list[Any], compose: Callable[[int, int], Any]
) -> torch.Tensor:
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise InvalidArgument(name, f"<{len(keys)} elements>", "contains repeated elements")
    n = len(keys)
    table = torch.empty(n, n, dtype=torch.int64)
    for a in range(n):
        for b in range(n):
            key = compose(a, b)
            if key not in index:
                raise InvalidArgument(
                    name,
                    f"<{n} elements>",
                    f"not closed under composition: element {a} * element {b} is missing",
                )
            table[a, b] = index[key]
    if not bool((table == torch.arange(n)).all(dim=1).any()):
        raise InvalidArgument(name, f"<{n} elements>", "has no identity element")
    return table


def from_permutations(
    name: str, perms: Sequence[Sequence[int]] | torch.Tensor, event_shape: Sequence[int] | int
) -> Representation:
    """Permutation representation: ``(rho(g) x)[i] = x[perms[g][i]]`` on the flattened event.

    Validates that every row is a permutation of ``range(d)``, that rows are distinct
    (a faithful action) and that the set is a group (closed, with identity; inverses
    follow for a finite set).
    """
    shape = _check_event_shape(event_shape)
    d = math.prod(shape)
    p = torch.as_tensor(perms, dtype=torch.int64)
    if p.ndim != 2 or p.shape[1] != d or p.shape[0] < 1:
        raise InvalidArgument("perms", tuple(p.shape), f"must have shape (|G|, {d})")
    for g in range(p.shape[0]):
        if not torch.equal(p[g].sort().values, torch.arange(d)):
            raise InvalidArgument("perms", p[g].tolist(), f"row {g} is not a permutation")
    keys = [tuple(row.tolist()) for row in p]
    # rho(a) rho(b) x = (x[perm_b])[perm_a] = x[perm_b[perm_a]]
    table = _table_from_keys("perms", keys, lambda a, b: tuple(p[b][p[a]].tolist()))
    mats = torch.zeros(p.shape[0], d, d, dtype=torch.float64)
    mats.scatter_(2, p.unsqueeze(-1), 1.0)
    return Representation(name, shape, table, mats, p)


def from_matrices(
    name: str, matrices: torch.Tensor, event_shape: Sequence[int] | int
) -> Representation:
    """Representation given by exact ``(|G|, d, d)`` matrices (e.g. entries in {0, +-1}).

    The group structure is recovered by matching products in float64; products
    must reproduce an element to within ``1e-9`` (exact for integer matrices).
    """
    shape = _check_event_shape(event_shape)
    d = math.prod(shape)
    if not isinstance(matrices, torch.Tensor):
        raise InvalidArgumentType("matrices", matrices, "a torch.Tensor")
    m = matrices.to(torch.float64)
    if m.ndim != 3 or tuple(m.shape[1:]) != (d, d) or m.shape[0] < 1:
        raise InvalidArgument("matrices", tuple(m.shape), f"must have shape (|G|, {d}, {d})")
    if not bool(torch.isfinite(m).all()):
        raise InvalidArgument("matrices", "<tensor>", "must be finite")

    def key(mat: torch.Tensor) -> tuple[float, ...]:
        return tuple(round(v, 9) + 0.0 for v in mat.flatten().tolist())

    keys = [key(mat) for mat in m]
    table = _table_from_keys("matrices", keys, lambda a, b: key(m[a] @ m[b]))
    return Representation(name, shape, table, m, None)


def dihedral_images(n: int) -> Representation:
    """D4 acting on ``n x n`` images: element ``g = 4 f + k`` is ``rot90^k`` after ``flip^f``.

    ``act(x, g) == torch.rot90(x.flip(-1) if f else x, k, dims=(-2, -1))``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidArgumentType("n", n, "an int")
    if n < 2:
        raise InvalidArgument("n", n, "image side must be >= 2 (D4 acts trivially on one pixel)")
    idx = torch.arange(n * n).reshape(n, n)
    perms = []
    for f in (0, 1):
        base = idx.flip(-1) if f else idx
        for k in range(4):
            perms.append(torch.rot90(base, k, dims=(-2, -1)).reshape(-1))
    return from_permutations(f"D4 on {n}x{n} images", torch.stack(perms), (n, n))


def cyclic_shifts(n: int) -> Representation:
    """C_n acting on ``R^n`` by cyclic shifts: ``act(x, s) == torch.roll(x, s, dims=-1)``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidArgumentType("n", n, "an int")
    if n < 2:
        raise InvalidArgument("n", n, "signal length must be >= 2")
    idx = torch.arange(n)
    perms = torch.stack([torch.roll(idx, s) for s in range(n)])
    return from_permutations(f"C{n} shifts on R^{n}", perms, (n,))


def trivial(group: Representation, event_shape: Sequence[int] | int) -> Representation:
    """``group``'s abstract group acting as the identity on ``event_shape`` (invariance)."""
    if not isinstance(group, Representation):
        raise InvalidArgumentType("group", group, "a Representation")
    shape = _check_event_shape(event_shape)
    d = math.prod(shape)
    mats = torch.eye(d, dtype=torch.float64).expand(group.order, d, d).clone()
    perms = torch.arange(d).expand(group.order, d).clone()
    return Representation(f"trivial {group.name}", shape, group.table.clone(), mats, perms)


def check_compatible(rep_in: Representation, rep_out: Representation) -> None:
    """Raise unless both representations are of the same group with the same element indexing."""
    for name, rep in (("rep_in", rep_in), ("rep_out", rep_out)):
        if not isinstance(rep, Representation):
            raise InvalidArgumentType(name, rep, "a Representation")
    if not torch.equal(rep_in.table, rep_out.table):
        raise InvalidArgument(
            "rep_out",
            rep_out,
            f"its group table differs from rep_in's ({rep_in.name}); "
            "build it with trivial(rep_in, ...)",
        )


# --------------------------------------------------------------------------- projectors


def average_linear(
    weight: torch.Tensor, rep_in: Representation, rep_out: Representation
) -> torch.Tensor:
    r"""Group average ``P(W) = (1/|G|) sum_g rho_out(g)^{-1} W rho_in(g)`` of a linear map.

    ``weight`` has shape ``(d_out, d_in)`` (``y = W x``).  Identities: ``P(P(W)) == P(W)``;
    ``rho_out(h) P(W) == P(W) rho_in(h)``; for orthogonal representations ``P`` is the
    orthogonal projection (in the Frobenius inner product) onto the equivariant maps.
    """
    check_compatible(rep_in, rep_out)
    if not isinstance(weight, torch.Tensor):
        raise InvalidArgumentType("weight", weight, "a torch.Tensor")
    if tuple(weight.shape) != (rep_out.dim, rep_in.dim):
        raise InvalidArgument(
            "weight",
            weight,
            f"must have shape (rep_out.dim, rep_in.dim) = ({rep_out.dim}, {rep_in.dim})",
        )
    total = torch.zeros_like(weight)
    for g in range(rep_in.order):
        g_inv = rep_out.inverse(g)
        total = total + rep_out.matrix(g_inv, weight.dtype) @ weight @ rep_in.matrix(
            g, weight.dtype
        )
    return total / rep_in.order


def linear_equivariance_defect(
    weight: torch.Tensor, rep_in: Representation, rep_out: Representation
) -> torch.Tensor:
    """``||W - P(W)||_F^2``: zero exactly on the equivariant maps (differentiable in ``W``)."""
    return (weight - average_linear(weight, rep_in, rep_out)).pow(2).sum()


class GroupAveraged(nn.Module):
    r"""The group-averaged model ``f_bar(x) = (1/|G|) sum_g rho_out(g)^{-1} f(rho_in(g) x)``.

    Identity: ``f_bar(rho_in(h) x) == rho_out(h) f_bar(x)`` for every ``h`` in ``G``
    (exact up to the rounding of the average), and ``f_bar`` equals ``f`` when ``f`` is
    already equivariant.  All ``|G|`` transformed copies go through ``f`` as one batch.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        rep_in: Representation,
        rep_out: Representation,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise InvalidArgumentType("model", model, "a callable tensor -> tensor")
        check_compatible(rep_in, rep_out)
        self.model = model
        self.rep_in = rep_in
        self.rep_out = rep_out

    def terms(self, x: torch.Tensor) -> torch.Tensor:
        """``stack([rho_out(g)^{-1} f(rho_in(g) x) for g in G])`` (the averaged terms)."""
        xs = self.rep_in.act_all(x)
        ys = self.model(xs.reshape(-1, *xs.shape[2:]))
        ys = ys.reshape(
            self.rep_in.order, *x.shape[: x.ndim - len(self.rep_in.event_shape)], *ys.shape[1:]
        )
        return torch.stack(
            [self.rep_out.act(ys[g], self.rep_out.inverse(g)) for g in range(self.rep_in.order)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.terms(x).mean(0)


def equivariance_error(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    rep_in: Representation,
    rep_out: Representation,
    elements: Sequence[int] | None = None,
) -> torch.Tensor:
    r"""Relative equivariance error per element and sample, shape ``(len(elements), batch)``.

    ``err[g, i] = ||f(rho_in(g) x_i) - rho_out(g) f(x_i)|| / ||f(x_i)||`` (norms over the
    output's event dims); 0 exactly when ``f`` commutes with ``g`` on ``x_i``.  Samples
    with ``f(x_i) == 0`` use denominator 1.  Default ``elements``: the whole group.
    """
    check_compatible(rep_in, rep_out)
    rep_in._check_input(x)
    gs = (
        list(range(rep_in.order))
        if elements is None
        else [rep_in._check_element(g) for g in elements]
    )
    if not gs:
        raise InvalidArgument("elements", elements, "name at least one group element")
    fx = model(x)
    rep_out._check_input(fx, "model(x)")
    k = len(rep_out.event_shape)
    dims = tuple(range(fx.ndim - k, fx.ndim))
    denom = fx.pow(2).sum(dims).sqrt()
    denom = torch.where(denom > 0, denom, torch.ones_like(denom))
    errs = []
    for g in gs:
        diff = model(rep_in.act(x, g)) - rep_out.act(fx, g)
        errs.append(diff.pow(2).sum(dims).sqrt() / denom)
    return torch.stack(errs)
