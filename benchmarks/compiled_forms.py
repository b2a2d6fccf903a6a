"""Compiled forms of the forward: what a form inductor can fuse gains, and what it gives up.

Under ``torch.compile`` the operator is an opaque op (:mod:`conserve_verified._math`):
its results are bitwise the eager ones, its errors are the typed ones, and samples
outside the fast path's safe range take the eager fallback.  This section times,
as :mod:`benchmarks.paired_ratios` does (back to back, median and interquartile
range of the per-pair ratios), each of four compiled forms of ``y = C_1(x)``
against compiled ``rms_norm``, for every dtype and feature size of the profile:

``operator``
    ``conserve(t, 1.0)``: the library's compiled operator.
``fused``
    the forward's formula as torch ops -- the sum of squares in float32 and
    ``y = x * rsqrt(ss)`` -- which inductor fuses into one kernel of the same
    shape as its ``rms_norm`` kernel.  No check: a zero sample gives ``inf``/NaN.
``fused_assert``
    ``fused`` plus ``torch._assert_async`` of the fast path's safe range, which
    inductor compiles into the same kernel.  A sample outside it raises
    ``RuntimeError`` with a fixed message (no type, no index), and a valid sample
    of extreme norm raises instead of taking the fallback.
``fused_check_op``
    ``fused`` plus an opaque op (:func:`check_fast_path_`) that does what the
    operator's contract needs when a sample is outside the safe range: it runs
    the eager operator, which raises the typed error or computes the fallback,
    and writes its result into ``y``.  Every call pays one call of an opaque op.

Only ``operator`` is the library; the three others exist to measure the design
choice (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from conserve_verified import conserve
from conserve_verified._math import _safe_range

from .paired_ratios import paired

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["FORMS", "check_fast_path_", "forms", "run"]

Op = Callable[[torch.Tensor], torch.Tensor]

#: The forms timed, in table order.
FORMS: tuple[str, ...] = ("operator", "fused", "fused_assert", "fused_check_op")


def _fused_parts(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, ss)``: ``y = x / ||x||`` over the last dim from a float32 sum of squares ``ss``."""
    ss = t.float().square().sum(-1, keepdim=True)
    return (t.float() * torch.rsqrt(ss)).to(t.dtype), ss


def _outside(ss: torch.Tensor, n: int) -> torch.Tensor:
    """0-d bool: some float32 sum of squares is outside the fast path's safe range (NaN is)."""
    lo, hi = _safe_range(torch.float32, n)
    return ~((ss >= lo) & (ss <= hi)).all()


@torch.library.custom_op("conserve_bench::check_fast_path_", mutates_args=("y",))
def check_fast_path_(y: torch.Tensor, x: torch.Tensor, outside: torch.Tensor) -> None:
    """Make ``y`` the eager ``conserve(x, 1.0)`` when ``outside`` is set, else leave it.

    Identity: after the call ``y`` holds the fused result where every sample was in the
    safe range, and otherwise the eager operator's result or its typed error.
    """
    if bool(outside):
        y.copy_(conserve(x, 1.0))


def _fused(t: torch.Tensor) -> torch.Tensor:
    return _fused_parts(t)[0]


def _fused_assert(t: torch.Tensor) -> torch.Tensor:
    y, ss = _fused_parts(t)
    torch._assert_async(~_outside(ss, t.shape[-1]), "conserve: a sample outside the safe range")
    return y


def _fused_check_op(t: torch.Tensor) -> torch.Tensor:
    y, ss = _fused_parts(t)
    check_fast_path_(y, t, _outside(ss, t.shape[-1]))
    return y


def forms() -> dict[str, Op]:
    """The uncompiled forms of :data:`FORMS`, by name."""
    return {
        "operator": lambda t: conserve(t, 1.0),
        "fused": _fused,
        "fused_assert": _fused_assert,
        "fused_check_op": _fused_check_op,
    }


def _row(x: torch.Tensor, profile: Profile) -> dict[str, Any]:
    """Each compiled form's paired ratio over compiled ``rms_norm`` on ``x``."""
    options: dict[str, Any] = {
        "fullgraph": True,
        "dynamic": False,
        "backend": profile.compile_backend,
    }
    n = x.shape[-1]
    peer = torch.compile(lambda t: F.rms_norm(t, (n,)), **options)
    args = (profile.pairs, profile.pair_run_time, profile.threads)
    row: dict[str, Any] = {"dtype": str(x.dtype).removeprefix("torch."), "features": n}
    with torch.no_grad():
        for name, op in forms().items():
            fn = torch.compile(op, **options)
            row[name] = paired(partial(fn, x), [partial(peer, x)], *args)
    return row


def run(profile: Profile) -> dict[str, Any]:
    """Paired ratios of each compiled form over compiled ``rms_norm``, per dtype and size."""
    rows = []
    for dtype in profile.dtype_objects():
        for n in profile.features:
            torch._dynamo.reset()
            gen = torch.Generator().manual_seed(n)
            rows.append(_row(torch.randn(profile.batch, n, generator=gen).to(dtype), profile))
    return {
        "batch": profile.batch,
        "pairs": profile.pairs,
        "compile_backend": profile.compile_backend,
        "forms": list(FORMS),
        "rows": rows,
    }
