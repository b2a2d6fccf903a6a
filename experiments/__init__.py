"""Experiment definitions for the runner (see :mod:`conserve_verified.runner.protocol`).

Every module ``experiments/<name>.py`` and package ``experiments/<name>/__init__.py``
whose name does not start with ``_`` is an experiment.  :func:`module_names`
lists them; :func:`load_modules` imports them, keeping import failures apart so
that one broken experiment does not hide the others.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback
from types import ModuleType

__all__ = ["load_modules", "module_names"]


def module_names() -> list[str]:
    """Names of the experiment modules and packages in this directory, sorted."""
    return sorted(i.name for i in pkgutil.iter_modules(__path__) if not i.name.startswith("_"))


def load_modules() -> tuple[dict[str, ModuleType], dict[str, str]]:
    """Import every experiment: ``(modules by module name, error text by module name)``."""
    modules: dict[str, ModuleType] = {}
    errors: dict[str, str] = {}
    for name in module_names():
        try:
            modules[name] = importlib.import_module(f"{__name__}.{name}")
        except Exception as exc:
            tb = traceback.format_exception_only(type(exc), exc)
            errors[name] = "".join(tb).strip()
    return modules, errors
