r"""The optional native CPU kernel of the one-pass forward (``conserve_cpu.cpp``).

torch's kernels make the one-pass forward in two reads of ``x`` from memory
(its norm, then ``y = x * scale``) and, for bfloat16, through a float32 copy of
each block; the native kernel reads each row once from memory and once more
from cache, converting bfloat16 in registers.  It computes the same arithmetic
as the one-pass path in the order :func:`conserve_verified.proof.finite.lane_fold`
with :data:`LANES` = 16 lanes and unfused steps, which the tolerance table's
one-pass rows cover (theorems ``FP32`` and ``BF16``; ``tests/test_native.py``
checks the order bit for bit).

Build and use:

* :func:`build` (``conserve-verified build-native``) compiles it once with
  ``torch.utils.cpp_extension`` (a C++ compiler and ninja; about a minute on
  two cores) into :func:`build_dir`, keyed by the source, torch, Python and the
  compiler flags (AVX2 code where torch reports AVX2 or better);
* :func:`kernel` loads a built kernel, never compiling one: importing the
  library stays fast and a machine without a compiler uses torch's kernels;
* ``CONSERVE_NATIVE=off`` (or :func:`disabled`) keeps torch's kernels even
  when the kernel is built; ``auto`` (the default) uses it when built.

bfloat16 rows take an AVX-512 variant of the same loop where the CPU has
AVX512-BF16 (chosen when the kernel runs, so the build stays portable;
:func:`status` says which): the same operations in the same order, 16 lanes per
instruction, the rounding to bfloat16 by one instruction except in vectors with
subnormal results, which take the portable rounding -- bit for bit the portable
loop's outputs (``tests/test_native.py``).

Identity: ``kernel().forward(x, r) == (y, norm)`` with ``norm = sqrt(lane_fold(x**2))``
per row (float32) and ``y = (x.float() * (float32(r) / norm)).to(x.dtype)``.

The library also registers ``conserve_native::infer``: the inference forward as an
op with a C++ kernel, which a ``torch.compile`` graph calls without a Python kernel
per call; inputs outside the fast path's safety range go from inside it to the
library's Python inference forward (the same results and typed errors as eager).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from ..errors import InvalidArgument

__all__ = [
    "DTYPES",
    "LANES",
    "SOURCE",
    "build",
    "build_dir",
    "disabled",
    "flags",
    "handles",
    "handles_when_traced",
    "kernel",
    "kernel_for",
    "prune",
    "stale_builds",
    "status",
]

#: The C++ source of the kernel.
SOURCE = pathlib.Path(__file__).with_name("conserve_cpu.cpp")
#: Lanes of the kernel's sum of squares (:func:`conserve_verified.proof.finite.lane_fold`).
LANES = 16
#: Dtypes the kernel computes (float16 keeps torch's kernels).
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16)
_MODES = ("auto", "off")

_ENV = ("CONSERVE_NATIVE_DIR", "XDG_CACHE_HOME")
#: Loaded kernels (or ``None``) per build location, keyed by the environment that names it.
_loaded: dict[tuple[str | None, ...], ModuleType | None] = {}
_reason: dict[tuple[str | None, ...], str] = {}
_disabled = False


def flags() -> list[str]:
    """Compiler flags: ``-O3 -ffp-contract=off`` (no fused multiply-add: the order is the
    model's), plus ``-mavx2`` where torch reports AVX2 or better on this CPU."""
    out = ["-O3", "-ffp-contract=off"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        out.append("-mavx2")
    return out


@functools.cache
def _tag() -> str:
    h = hashlib.sha256(SOURCE.read_bytes())
    for part in (torch.__version__, sys.version.split()[0], " ".join(flags()), sys.platform):
        h.update(part.encode())
    return h.hexdigest()[:16]


def _name() -> str:
    return f"conserve_verified_native_{_tag()}"


def build_dir() -> pathlib.Path:
    """Where the kernel is built: ``$CONSERVE_NATIVE_DIR``, else the user cache, per tag."""
    root = os.environ.get("CONSERVE_NATIVE_DIR")
    if root:
        base = pathlib.Path(root)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
        base = pathlib.Path(cache) / "conserve_verified" / "native"
    return base / _tag()


def _library() -> pathlib.Path:
    return build_dir() / f"{_name()}.so"


def _mode() -> str:
    value = os.environ.get("CONSERVE_NATIVE", "auto").strip().lower()
    if value not in _MODES:
        raise InvalidArgument("CONSERVE_NATIVE", value, f"must be one of {', '.join(_MODES)}")
    return value


def _import(path: pathlib.Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_name(), path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _key() -> tuple[str | None, ...]:
    return tuple(os.environ.get(k) for k in _ENV)


def kernel() -> Any | None:
    """The built kernel module, or ``None`` (not built, failed to load, disabled, or off).

    Loads the library once per process and build location; never compiles (see
    :func:`build`).
    """
    if _disabled or _mode() == "off":
        return None
    key = _key()
    try:
        return _loaded[key]
    except KeyError:
        pass
    path = _library()
    mod: ModuleType | None = None
    if path.is_file():
        try:
            mod = _install(_import(path))
        except (ImportError, OSError) as exc:
            _reason[key] = f"built library failed to load: {exc}"
    else:
        _reason[key] = f"not built (no {path}; run conserve-verified build-native)"
    _loaded[key] = mod
    return mod


_fake_registered = False


def _install(mod: ModuleType) -> ModuleType:
    """Give a loaded kernel its Python fallback and the fake (shape) rule of its op.

    ``conserve_native::infer`` (the compiled inference op) hands unsafe inputs to
    :func:`conserve_verified._math._conserve_inference`; under tracing its output is
    shaped like ``x``.
    """
    global _fake_registered
    from .. import _math  # local: _math imports this module

    mod.set_fallback(_math._conserve_inference)
    if not _fake_registered:
        torch.library.register_fake("conserve_native::infer")(_infer_fake)
        _fake_registered = True
    return mod


def _infer_fake(
    x: torch.Tensor,
    energy: float,
    dims: list[int],
    zero: str,
    lo: float,
    hi: float,
    max_features: int,
) -> torch.Tensor:
    return torch.empty_like(x)


def build(verbose: bool = False) -> Any:
    """Compile the kernel into :func:`build_dir` if needed and return it (loaded).

    Raises :class:`RuntimeError` (from ``torch.utils.cpp_extension``) when no
    compiler or ninja is available or the compilation fails.
    """
    from torch.utils import cpp_extension

    out = build_dir()
    out.mkdir(parents=True, exist_ok=True)
    mod = cpp_extension.load(
        name=_name(),
        sources=[str(SOURCE)],
        extra_cflags=flags(),
        build_directory=str(out),
        verbose=verbose,
    )
    _loaded[_key()] = _install(mod)
    return mod


_TAG_CHARS = frozenset("0123456789abcdef")


def stale_builds() -> list[pathlib.Path]:
    """The other builds beside :func:`build_dir`: sibling folders named by a tag (16 hex
    digits) that hold a ``conserve_verified_native_<tag>`` library or build files.

    Each is the kernel of another source, torch, Python or flag set; a second
    environment on this machine (another torch version, say) may still load its own.
    """
    here = build_dir()
    root = here.parent
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d == here or not d.is_dir() or len(d.name) != 16 or not set(d.name) <= _TAG_CHARS:
            continue
        if any(d.glob("conserve_verified_native_*")) or (d / "build.ninja").is_file():
            out.append(d)
    return out


def prune() -> list[pathlib.Path]:
    """Delete :func:`stale_builds`; returns what was deleted.  The current build stays."""
    import shutil

    gone = stale_builds()
    for d in gone:
        shutil.rmtree(d)
    return gone


def status() -> dict[str, Any]:
    """What :func:`kernel` gives now and why: ``{"active", "path", "flags", "reason",
    "bf16_avx512"}`` (the last: whether bfloat16 rows take the kernel's AVX-512 variant,
    chosen at run time by the CPU; ``None`` without a kernel)."""
    mod = kernel()
    if _disabled:
        reason = "disabled in this block"
    elif _mode() == "off":
        reason = "CONSERVE_NATIVE=off"
    else:
        reason = "in use" if mod is not None else _reason.get(_key(), "")
    return {
        "active": mod is not None,
        "path": str(_library()),
        "flags": flags(),
        "reason": reason,
        "bf16_avx512": None if mod is None else bool(mod.bf16_avx512()),
    }


def kernel_for(dtype: torch.dtype) -> Any | None:
    """:func:`kernel` where it computes ``dtype`` rows (:data:`DTYPES`), else ``None``."""
    return kernel() if dtype in DTYPES else None


def handles(dtype: torch.dtype) -> bool:
    """Whether the forward of ``dtype`` rows runs in the kernel now."""
    return kernel_for(dtype) is not None


@torch.compiler.assume_constant_result
def handles_when_traced(dtype: torch.dtype) -> bool:
    """:func:`handles` as ``torch.compile`` sees it: evaluated when a graph is traced and
    kept as a constant of that graph (the kernel choice of a compiled graph is fixed)."""
    return handles(dtype)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run a block on torch's kernels even when the native kernel is built."""
    global _disabled
    previous = _disabled
    _disabled = True
    try:
        yield
    finally:
        _disabled = previous
