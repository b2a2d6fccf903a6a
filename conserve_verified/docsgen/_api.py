"""API reference pages: one page per public module of the package.

A module is public when no component of its dotted name starts with an
underscore.  The set is discovered at build time, so a module added to the
package gets a page without anyone editing the docs; the command modules of
the CLI are documented by the CLI's own ``--help`` and left out.  A module
inside a subpackage gets a page of its own only when it exports something its
package does not re-export (otherwise the package's page documents it all).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import conserve_verified

from . import _rst

__all__ = ["EXCLUDED", "api_pages", "public_modules", "render_api_page"]

#: Modules with no API of their own for users (entry points).
EXCLUDED = frozenset({"conserve_verified.cli", "conserve_verified.__main__"})
_EXCLUDED_PACKAGES = ("conserve_verified.commands",)


def _is_public(name: str) -> bool:
    if name in EXCLUDED or any(name == p or name.startswith(p + ".") for p in _EXCLUDED_PACKAGES):
        return False
    return not any(part.startswith("_") for part in name.split("."))


def _reexported(name: str) -> bool:
    """True if every name in ``__all__`` of module ``name`` is in its package's ``__all__``."""
    parent, _, _ = name.rpartition(".")
    module = importlib.import_module(name)
    package = importlib.import_module(parent)
    own = getattr(module, "__all__", None)
    exported = getattr(package, "__all__", None)
    return own is not None and exported is not None and set(own) <= set(exported)


def public_modules(package: ModuleType = conserve_verified) -> list[str]:
    """Dotted names of the public modules under ``package`` (itself first), sorted.

    Modules directly under ``package`` always count; deeper modules only when
    they export names their own package does not re-export.
    """
    names = [package.__name__]
    depth = package.__name__.count(".") + 1
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not _is_public(info.name):
            continue
        if info.name.count(".") > depth and _reexported(info.name):
            continue
        names.append(info.name)
    return [names[0], *sorted(names[1:])]


def render_api_page(module_name: str) -> str:
    """The page of one module: its docstring and the members it exports.

    A module with ``__all__`` documents exactly those names; the package
    itself documents its re-exports (``:imported-members:``).  A module
    shadowed in its package by an attribute of the same name is documented
    with ``:no-index:``.  The module is imported here so that a module that
    fails to import fails the build.
    """
    module = importlib.import_module(module_name)
    options: list[tuple[str, str]] = [("members", ""), ("show-inheritance", "")]
    parent, _, last = module_name.rpartition(".")
    if parent and getattr(importlib.import_module(parent), last, module) is not module:
        # the package's attribute of this name is something else (e.g. a function
        # named like its module): document the module without index entries.
        options.append(("no-index", ""))
    if module_name == conserve_verified.__name__:
        options.append(("imported-members", ""))
    title = _rst.inline_literal(module_name)
    return (
        f".. _api-{module_name}:\n\n"
        + f"{title}\n{'=' * len(title)}\n\n"
        + _rst.directive("automodule", module_name, options)
    )


def api_pages(modules: list[str] | None = None) -> dict[str, str]:
    """``{relative path: reST}`` for the API index and one page per public module."""
    modules = public_modules() if modules is None else modules
    pages = {f"api/{name}.rst": render_api_page(name) for name in modules}
    index = (
        _rst.heading("API reference", 1)
        + "\nOne page per public module, generated from the docstrings at build time.\n\n"
        + _rst.directive("toctree", options=[("maxdepth", "1")], body="\n".join(modules))
    )
    pages["api/index.rst"] = index
    return pages
