"""The theorem registry and the loader of theory files.

A theory file ``proofs/<theory>.py`` builds :class:`~.theorem.Theorem` objects
and calls :func:`register` at import time.  ``proofs/`` is not a package: the
pytest collector and the ``verify`` command load its files by path with
:func:`load_theory_file` / :func:`load_theories`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

from ..errors import InvalidArgument, InvalidArgumentType
from .theorem import Theorem

__all__ = [
    "PROOFS_DIR",
    "REGISTRY",
    "load_theories",
    "load_theory_file",
    "register",
    "theory_files",
]

#: Ordered ``id -> Theorem`` of every registered theorem.
REGISTRY: dict[str, Theorem] = {}

#: ``proofs/`` of the project checkout this package lives in.
PROOFS_DIR = Path(__file__).resolve().parents[2] / "proofs"

_LOADED: dict[Path, tuple[str, ...]] = {}
_capture: list[list[str]] = []


def register(theorem: Theorem) -> Theorem:
    """Add ``theorem`` to :data:`REGISTRY` and return it.

    Registering the same theorem again (same id and statement hash, e.g. when a
    theory file is loaded twice) replaces it; a different theorem under an
    existing id raises :class:`InvalidArgument`.
    """
    if not isinstance(theorem, Theorem):
        raise InvalidArgumentType("theorem", theorem, "a proof.Theorem")
    old = REGISTRY.get(theorem.id)
    if old is not None and old.statement_hash != theorem.statement_hash:
        raise InvalidArgument(
            "theorem",
            theorem.id,
            f"id already registered by theory {old.theory!r} ({old.source or 'unknown file'})",
        )
    if _capture:
        theorem = dataclasses.replace(theorem, source=_capture[-1][0])
        _capture[-1].append(theorem.id)
    REGISTRY[theorem.id] = theorem
    return theorem


def theory_files(directory: Path | None = None) -> list[Path]:
    """Theory files in ``directory`` (default :data:`PROOFS_DIR`).

    Every ``*.py`` except ``conftest.py``, ``_*.py`` and ``test_*.py``.
    """
    directory = PROOFS_DIR if directory is None else Path(directory)
    if not directory.is_dir():
        raise InvalidArgument("directory", str(directory), "is not a directory")
    return sorted(
        p
        for p in directory.glob("*.py")
        if not p.name.startswith(("_", "test_")) and p.name != "conftest.py"
    )


def load_theory_file(path: Path) -> tuple[Theorem, ...]:
    """Import the theory file at ``path`` (once) and return the theorems it registered."""
    path = Path(path).resolve()
    if path in _LOADED:
        return tuple(REGISTRY[i] for i in _LOADED[path] if i in REGISTRY)
    if not path.is_file():
        raise InvalidArgument("path", str(path), "theory file does not exist")
    name = f"conserve_verified_proofs.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidArgument("path", str(path), "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _capture.append([str(path)])
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        ids = tuple(_capture.pop()[1:])
    _LOADED[path] = ids
    return tuple(REGISTRY[i] for i in ids)


def load_theories(directory: Path | None = None) -> tuple[Theorem, ...]:
    """Load every theory file of ``directory`` (default :data:`PROOFS_DIR`); return all theorems."""
    out: list[Theorem] = []
    for path in theory_files(directory):
        out.extend(load_theory_file(path))
    return tuple(out)
