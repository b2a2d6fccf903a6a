"""Validation of experiment modules and expansion of their grids into cells.

Everything here runs before any cell is computed, so a bad spec (missing
``seed``, an unknown profile, a non-JSON value, a misspelt claim id) is
reported with a typed error and no work is wasted.

Identities:

* ``len(cells(exp, p)) == prod(len(v) for v in exp.grids[p].values())``
* ``config_key(c, d) == config_key(c', d)`` iff ``c == c'`` (canonical JSON, sorted keys)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..errors import InvalidArgument, InvalidArgumentType, check_int
from .protocol import PROFILES, Experiment

__all__ = [
    "GridsSpec",
    "canonical_json",
    "cells",
    "check_overrides",
    "check_profile",
    "config_key",
    "validate_module",
]

_JSON_SCALARS = (str, int, float, bool, type(None))


def _is_json_value(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, _JSON_SCALARS):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_json_value(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_json_value(x) for k, x in v.items())
    return False


class GridsSpec(BaseModel):
    """Pydantic model of an experiment's ``NAME``/``TITLE``/``CLAIMS``/``GRIDS``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    title: str
    claims: tuple[str, ...]
    grids: dict[str, dict[str, list[Any]]]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "_-" for c in v):
            raise ValueError(
                f"NAME must be a non-empty id of letters, digits, '_' or '-', got {v!r}"
            )
        return v

    @field_validator("grids")
    @classmethod
    def _grids(cls, v: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        missing = [p for p in PROFILES if p not in v]
        unknown = [p for p in v if p not in PROFILES]
        if missing or unknown:
            raise ValueError(
                f"GRIDS must define exactly the profiles {list(PROFILES)}; "
                f"missing {missing}, unknown {unknown}"
            )
        for profile, grid in v.items():
            if "seed" not in grid:
                raise ValueError(f"GRIDS[{profile!r}] has no 'seed' parameter")
            for param, values in grid.items():
                if not values:
                    raise ValueError(f"GRIDS[{profile!r}][{param!r}] is empty")
                if not all(_is_json_value(x) for x in values):
                    raise ValueError(
                        f"GRIDS[{profile!r}][{param!r}] holds a value that is not "
                        "finite JSON (str, int, float, bool, None, list, dict)"
                    )
                if len({canonical_json(x) for x in values}) != len(values):
                    raise ValueError(f"GRIDS[{profile!r}][{param!r}] repeats a value")
            seeds = grid["seed"]
            if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
                raise ValueError(f"GRIDS[{profile!r}]['seed'] must hold ints >= 0, got {seeds}")
        return v


def canonical_json(value: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces) used for hashing and comparisons."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_key(config: dict[str, Any], data: str) -> str:
    """Stable 16-hex-digit key of a cell: SHA-256 of the canonical JSON of ``(config, data)``."""
    text = canonical_json({"config": config, "data": data})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_profile(profile: Any) -> str:
    """Return ``profile`` if it is one of :data:`PROFILES`, else raise."""
    if not isinstance(profile, str):
        raise InvalidArgumentType("profile", profile, "a str")
    if profile not in PROFILES:
        raise InvalidArgument("profile", profile, f"unknown profile; valid: {list(PROFILES)}")
    return profile


def validate_module(module: ModuleType, known_claims: set[str] | None = None) -> Experiment:
    """Check that ``module`` follows the protocol and return its :class:`Experiment`.

    Raises :class:`InvalidArgument` naming the module, listing every problem.
    """
    where = f"experiment module {module.__name__!r}"
    missing = [
        a
        for a in ("NAME", "TITLE", "CLAIMS", "GRIDS", "run_cell", "report")
        if not hasattr(module, a)
    ]
    if missing:
        raise InvalidArgument(where, module.__name__, f"does not define {missing}")
    for fn in ("run_cell", "report"):
        if not callable(getattr(module, fn)):
            raise InvalidArgument(where, module.__name__, f"{fn} is not callable")
    try:
        spec = GridsSpec(
            name=module.NAME,
            title=module.TITLE,
            claims=tuple(module.CLAIMS)
            if isinstance(module.CLAIMS, (list, tuple))
            else module.CLAIMS,
            grids=module.GRIDS,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidArgument(where, module.__name__, f"invalid spec: {problems}") from None
    if known_claims is not None:
        unknown = [c for c in spec.claims if c not in known_claims]
        if unknown:
            raise InvalidArgument(
                where,
                module.__name__,
                f"CLAIMS {unknown} not in claims.json {sorted(known_claims)}",
            )
    return Experiment(
        name=spec.name,
        title=spec.title,
        claims=spec.claims,
        grids=spec.grids,
        run_cell=module.run_cell,
        report=module.report,
        module=module,
    )


def check_overrides(overrides: dict[str, Any] | None) -> dict[str, list[Any]]:
    """``{axis: [values]}`` with finite-JSON, non-repeating, non-empty value lists (else raise)."""
    out: dict[str, list[Any]] = {}
    for k, v in (overrides or {}).items():
        vals = list(v) if isinstance(v, (list, tuple)) else [v]
        if not vals:
            raise InvalidArgument(f"--set {k}", v, "needs at least one value")
        if not all(_is_json_value(x) for x in vals):
            raise InvalidArgument(f"--set {k}", v, "values must be finite JSON")
        if len({canonical_json(x) for x in vals}) != len(vals):
            raise InvalidArgument(f"--set {k}", v, "repeats a value")
        if k == "seed" and not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in vals
        ):
            raise InvalidArgument("--set seed", v, "seeds must be ints >= 0")
        out[k] = vals
    return out


def cells(
    experiment: Experiment,
    profile: str,
    seeds: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The configurations of ``profile``'s grid, in a deterministic order.

    Identity: the Cartesian product of the grid's lists, parameters in the
    grid's order and the last parameter varying fastest.  ``overrides`` replaces
    the value lists of the axes the grid has (``run --set``).  ``seeds`` keeps only
    the first ``seeds`` values of the ``seed`` list (a cheaper run whose cells,
    and store keys, are a subset of the full profile's).
    """
    grid = dict(experiment.grids[check_profile(profile)])
    for k, vals in check_overrides(overrides).items():
        if k in grid:
            grid[k] = vals
    if seeds is not None:
        check_int("seeds", seeds, none=True)
        grid["seed"] = list(grid["seed"])[:seeds]
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
