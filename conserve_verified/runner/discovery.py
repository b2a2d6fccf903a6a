"""Finding and validating the experiments of a checkout.

The experiments live in a directory ``experiments/`` (a Python package) next to
the library.  :func:`experiments_root` locates it; :func:`discover` imports the
package from there and validates every experiment module against the protocol.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import sys
from dataclasses import dataclass, field
from types import ModuleType

from ..errors import InvalidArgument
from .claims import claim_ids
from .protocol import Experiment
from .spec import validate_module

__all__ = ["Discovery", "discover", "experiments_root", "import_experiments_package"]

#: Environment variable naming the experiments directory explicitly.
ENV_VAR = "CONSERVE_EXPERIMENTS_DIR"


def experiments_root(explicit: pathlib.Path | str | None = None) -> pathlib.Path:
    """The experiments directory: ``explicit``, else ``$CONSERVE_EXPERIMENTS_DIR``,
    else ``./experiments`` if it is a package, else the one beside the library source."""
    candidates: list[pathlib.Path] = []
    if explicit is not None:
        candidates = [pathlib.Path(explicit)]
    elif os.environ.get(ENV_VAR):
        candidates = [pathlib.Path(os.environ[ENV_VAR])]
    else:
        candidates = [
            pathlib.Path.cwd() / "experiments",
            pathlib.Path(__file__).resolve().parents[2] / "experiments",
        ]
    for c in candidates:
        if (c / "__init__.py").is_file():
            return c.resolve()
    raise InvalidArgument(
        "experiments directory",
        [str(c) for c in candidates],
        "no experiments package (a directory 'experiments' with __init__.py) found",
    )


def import_experiments_package(root: pathlib.Path) -> ModuleType:
    """Import the package ``experiments`` from ``root`` (its parent first on ``sys.path``).

    Raises :class:`InvalidArgument` when another ``experiments`` package is
    already imported, or when the import resolves to another directory.
    """
    root = pathlib.Path(root).resolve()
    parent = str(root.parent)
    if parent in sys.path:
        sys.path.remove(parent)
    sys.path.insert(0, parent)
    pkg = sys.modules.get("experiments")
    if pkg is not None:
        where = pathlib.Path(getattr(pkg, "__file__", "") or "").resolve().parent
        if where != root:
            raise InvalidArgument(
                "experiments directory", str(root), f"another 'experiments' is imported ({where})"
            )
        return pkg
    pkg = importlib.import_module("experiments")
    where = pathlib.Path(getattr(pkg, "__file__", "") or "").resolve().parent
    if where != root:
        raise InvalidArgument(
            "experiments directory", str(root), f"'import experiments' resolved to {where}"
        )
    return pkg


@dataclass
class Discovery:
    """Validated experiments by ``NAME`` and problems by module name."""

    root: pathlib.Path
    experiments: dict[str, Experiment] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def discover(root: pathlib.Path | str | None = None) -> Discovery:
    """Import and validate every experiment under ``root`` (see :func:`experiments_root`).

    A module that fails to import or to validate is listed in ``errors`` (by
    module name) instead of stopping the discovery of the others.
    """
    where = experiments_root(root)
    pkg = import_experiments_package(where)
    modules, errors = pkg.load_modules()
    found = Discovery(where, errors=dict(errors))
    known = claim_ids()
    for mod_name, module in modules.items():
        try:
            exp = validate_module(module, known)
        except InvalidArgument as exc:
            found.errors[mod_name] = str(exc)
            continue
        if exp.name in found.experiments:
            other = found.experiments[exp.name].module.__name__
            found.errors[mod_name] = f"NAME {exp.name!r} is also used by {other}"
            continue
        found.experiments[exp.name] = exp
    return found
