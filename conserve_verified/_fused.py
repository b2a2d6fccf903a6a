r"""Fast path of the conservation operator: fused forward and analytic backward.

The reference algorithm in :mod:`conserve_verified._math` makes several passes
over memory with full-size temporaries (an accumulation-dtype copy for
float16/bfloat16, the squares, the scaled input).  This module computes the
same arithmetic, in the same order, with the per-sample reductions taken on
*blocks of samples* held in reusable per-thread scratch buffers:

forward
    ``ss = sum(xa * xa)`` per block (``xa = x.to(acc)`` converted once per block
    for float16/bfloat16); ``y = (xa * (rsqrt(ss) * r)).to(x.dtype)`` -- one
    whole-tensor multiply for float32/float64, per block (rounded once from the
    accumulation dtype into ``y``) for float16/bfloat16
backward
    ``dot = sum(ya * ga)`` per block; ``grad = ((inv_rho * r) * (ga - ya * (dot / E))).to(g.dtype)``
    -- whole-tensor passes in place in the output for float32/float64, per block
    for float16/bfloat16

so the passes over main memory are the ones the math needs plus one read of
``x`` (or of ``y`` and ``g``) for the reduction, and no full-size temporary is
allocated (on a VM a fresh multi-MiB buffer costs more in page faults than the
arithmetic on it).  Each step is exactly the element-wise operation or the
per-sample reduction of the reference, so on CPU the results are bit-identical
to it (``tests/test_bench_fused.py`` checks ``torch.equal``).

one-pass forward (CPU, ``n <= tolerances.ONE_PASS_MAX_FEATURES``)
    ``nrm = vector_norm(x)`` per sample (torch's one-read 2-norm kernel: squares
    accumulated in vector lanes, lanes folded, tail added in sequence --
    :func:`conserve_verified.proof.finite.lane_fold`), ``scale = r / nrm`` by one
    division, ``y = x * scale``.  float32: one read of ``x`` for the norm and one
    read-write for ``y``, no temporary at all.  float16/bfloat16: each block of
    samples is up-converted (exactly) into a float32 scratch block in cache and
    its norms are taken there by the same kernel; then one pass over ``x``
    writes ``y = storage(float32(x * scale))`` through the eval-mode batch-norm
    kernel (``x`` viewed as ``(1, rows, n)``, one channel per sample, weight
    ``scale``, mean 0, variance 1, eps 0: ``y = x * scale + 0`` in float32,
    rounded once to the storage dtype), so no full-size float32 temporary is
    written.  Where the optional native kernel is built
    (:mod:`conserve_verified._native`, ``conserve-verified build-native``), float32
    and bfloat16 rows take it instead: the same arithmetic in one read of each
    row from memory, its sum in the lane-fold order with 16 lanes.  Its
    summation order is not the cascade's, so it is not bitwise
    the reference; its rounding error is derived from its own order and proved
    in theorems ``FP32``, ``FP16`` and ``BF16``, and the one-pass rows of the
    tolerance table come from it (:mod:`conserve_verified.tolerances`).

Identities:

* ``forward(x, E, dims) == _math._forward(x, E, dims, zero)`` (bitwise, CPU) whenever
  it returns a result, except on the one-pass path;
* one-pass path: ``y == (xa * (float32(r) / vector_norm(xa))).to(x.dtype)`` with
  ``xa = x.float()``, value for value (a ``-0.0`` input may give ``+0.0``), and
  ``|energy(y) - E| <= energy_atol(x.dtype, E, n)`` (theorems ``FP32``, ``FP16``,
  ``BF16``);
* ``backward(g, y, inv_rho, E, dims) == `` the reference backward (bitwise, CPU).

Scope: feature dims must be the trailing dims of a contiguous tensor (``dim=-1``
for ``(N, F)``, ``dim=(1, 2, 3)`` for a contiguous ``(N, C, H, W)``); anything
else returns ``None`` and the caller takes the reference path.  The forward also
returns the per-sample sums of squares; when any of them shows a sample that
needs the reference's scaled (overflow- or underflow-safe) path, is all zero,
or is not finite, the caller discards the result and the reference recomputes
everything and raises its typed errors, so the semantics (first-bad-index
errors, zero policy, scaling) are exactly the reference's.  The check reads
only the per-sample sums of squares (one small reduction and one host
synchronisation per call).

CUDA: on CUDA tensors the same per-sample math is compiled once with
:func:`torch.compile` (a single Triton kernel per direction, one read and one
write per tensor) when Triton is available; otherwise it runs eagerly on
whole tensors.  CPU tensors never take this branch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from . import _native
from .tolerances import ONE_PASS_DTYPES, ONE_PASS_MAX_FEATURES, tolerance

__all__ = [
    "BLOCK_BYTES",
    "backward",
    "cuda_backward_math",
    "cuda_forward_math",
    "disabled",
    "forward",
    "is_enabled",
    "one_pass",
    "one_pass_norm",
    "rows_view",
    "scale_rows",
    "sum_squares",
]

#: Bytes of accumulation-dtype data per block (per scratch buffer).  Blocks
#: live in per-thread scratch buffers that are allocated once and reused across
#: calls: on the 2-core reference machine a fresh multi-MiB temporary costs more
#: in page faults than the arithmetic on it (a 32 MiB ``torch.empty`` + fill
#: takes ~20 ms there, against ~3 ms to fill a resident buffer), so the fast
#: path never allocates a full-size temporary.  2 MiB blocks keep the number
#: of kernel launches per call small (each one is a parallel region, which on a
#: shared machine waits for both threads) while the block stays in L3; see
#: ``benchmarks/RESULTS.md``.
BLOCK_BYTES = 1 << 21

_enabled = True


def is_enabled() -> bool:
    """Whether :func:`forward` and :func:`backward` run (``False`` inside :func:`disabled`)."""
    return _enabled


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run a block with the fast path off, so the operator takes the reference path.

    Used by the benchmarks to time the reference against the fast path; the
    results are the same either way (bitwise on CPU).
    """
    global _enabled
    previous = _enabled
    _enabled = False
    try:
        yield
    finally:
        _enabled = previous


def rows_view(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[int, int] | None:
    """``(rows, n)`` when ``x`` is contiguous and ``dims`` are its trailing dims, else ``None``.

    Identity: then ``x.view(rows, n)`` has one sample per row.
    """
    k = len(dims)
    if not x.is_contiguous():
        return None
    if k == 1:
        if dims[0] != x.ndim - 1:
            return None
        n = x.shape[-1]
    elif dims != tuple(range(x.ndim - k, x.ndim)):
        return None
    else:
        n = 1
        for d in dims:  # a plain loop (no generator), so torch.compile traces it
            n *= x.shape[d]
    if n == 0:
        return None
    return x.numel() // n, n


def _block_rows(rows: int, n: int, itemsize: int) -> int:
    return max(1, min(rows, BLOCK_BYTES // (n * itemsize)))


def _keepdim_shape(x: torch.Tensor, dims: tuple[int, ...]) -> list[int]:
    return [1 if d in dims else s for d, s in enumerate(x.shape)]


# --------------------------------------------------------------------------- CPU

_scratch_local = threading.local()


def _scratch(slot: int, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A reusable 1-d buffer of ``numel`` elements (per thread, slot and dtype).

    The buffer grows to the largest block seen and is kept, so repeated calls
    allocate nothing; at most two buffers of ``max(BLOCK_BYTES, one sample)``
    bytes per dtype and thread are held.
    """
    cache: dict[tuple[int, torch.dtype], torch.Tensor] | None = getattr(
        _scratch_local, "buffers", None
    )
    if cache is None:
        cache = _scratch_local.buffers = {}
    buf = cache.get((slot, dtype))
    if buf is None or buf.numel() < numel:
        buf = cache[(slot, dtype)] = torch.empty(numel, dtype=dtype)
    return buf[:numel]


def _rows(buf: torch.Tensor, t: int, n: int) -> torch.Tensor:
    """The first ``t`` rows of ``n`` elements of a 1-d buffer, as a ``(t, n)`` view."""
    return buf[: t * n].view(t, n)


def _row_dots(
    a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, work: torch.Tensor, br: int
) -> None:
    """``out[i] = sum_j a[i, j] * b[i, j]`` on ``(rows, n)``, ``br`` rows at a time.

    Each block's products go to the scratch ``work`` and are reduced by
    ``torch.sum`` (the same per-row reduction as the reference path).
    """
    rows, n = a.shape
    if br == rows:
        w = work.view(rows, n)
        torch.mul(a, b, out=w)
        torch.sum(w, -1, keepdim=True, out=out)
        return
    for start in range(0, rows, br):
        stop = min(rows, start + br)
        w = _rows(work, stop - start, n)
        torch.mul(a[start:stop], b[start:stop], out=w)
        torch.sum(w, -1, keepdim=True, out=out[start:stop])


def _forward_blocks(
    x2: torch.Tensor, r: float, acc: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU forward on ``(rows, n)``: ``(y, ss)``.

    ``acc == x.dtype`` (float32, float64): the sums of squares are taken block
    by block (square into a scratch block, sum), then ``y = x * (rsqrt(ss) * r)``
    is one whole-tensor multiply -- two passes over ``x`` as in the math.
    Lower precision: each block is up-converted once into scratch, squared and
    summed there, and the scaled block is rounded once into ``y``.  (With
    ``r == 1`` the factor ``rsqrt(ss) * r`` is ``rsqrt(ss)`` exactly, so the
    multiply by ``r`` is skipped.)
    """
    rows, n = x2.shape
    y = torch.empty_like(x2)
    ss = torch.empty(rows, 1, dtype=acc)
    br = _block_rows(rows, n, torch.finfo(acc).bits // 8)
    work = _scratch(0, br * n, acc)
    if acc == x2.dtype:
        _row_dots(x2, x2, ss, work, br)
        scale = torch.rsqrt(ss)
        if r != 1.0:
            scale.mul_(r)
        torch.mul(x2, scale, out=y)
        return y, ss
    upcast = _scratch(1, br * n, acc)
    scale = torch.empty(rows, 1, dtype=acc)
    for start in range(0, rows, br):
        stop = min(rows, start + br)
        t = stop - start
        xa = _rows(upcast, t, n)
        xa.copy_(x2[start:stop])
        w = _rows(work, t, n)
        torch.mul(xa, xa, out=w)
        block_ss = ss[start:stop]
        torch.sum(w, -1, keepdim=True, out=block_ss)
        block_scale = scale[start:stop]
        torch.rsqrt(block_ss, out=block_scale)
        if r != 1.0:
            block_scale.mul_(r)
        torch.mul(xa, block_scale, out=y[start:stop])
    return y, ss


def one_pass(dtype: torch.dtype, n: int) -> bool:
    """Whether CPU samples of ``n`` features of ``dtype`` take the one-pass kernel."""
    return dtype in ONE_PASS_DTYPES and n <= ONE_PASS_MAX_FEATURES


def one_pass_norm(x2: torch.Tensor) -> torch.Tensor:
    """Per-row float32 2-norm of a contiguous CPU ``(rows, n)`` tensor, shaped ``(rows, 1)``.

    Identity: ``sqrt`` of :func:`conserve_verified.proof.finite.lane_fold` of the
    float32 squares, rounded once: the native kernel's (16 lanes, unfused; float32
    and bfloat16 when it is built, :mod:`conserve_verified._native`), else torch's
    one-read norm kernel (8 or 16 lanes) on ``x2`` itself (float32) or on its
    exact float32 up-conversion, one cache-sized block of rows at a time.
    """
    native = _native.kernel_for(x2.dtype)
    if native is not None:
        return native.norms(x2)
    if x2.dtype == torch.float32:
        return torch.linalg.vector_norm(x2, 2, -1, keepdim=True)
    rows, n = x2.shape
    nrm = torch.empty(rows, 1, dtype=torch.float32)
    br = _block_rows(rows, n, 4)
    upcast = _scratch(1, br * n, torch.float32)
    for start in range(0, rows, br):
        stop = min(rows, start + br)
        xa = _rows(upcast, stop - start, n)
        xa.copy_(x2[start:stop])
        torch.linalg.vector_norm(xa, 2, -1, keepdim=True, out=nrm[start:stop])
    return nrm


def scale_rows(x2: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(x2.float() * scale).to(x2.dtype)`` for a float16/bfloat16 ``(rows, n)`` CPU tensor.

    ``scale`` is float32 ``(rows, 1)``.  One read of ``x2`` and one write of the
    result, without a float32 temporary: the eval-mode batch-norm kernel on
    ``x2`` viewed as ``(1, rows, n)`` with one channel per row, mean 0, variance
    1, eps 0 and weight ``scale`` computes ``x * (scale * 1/sqrt(1 + 0)) + (0 - 0)``
    in float32 -- ``x * scale`` rounded once -- and rounds it once to the storage
    dtype.  Identity: equal value for value to ``(x2.float() * scale).to(x2.dtype)``
    (``tests/test_bench_fused.py``; a ``-0.0`` element may come out ``+0.0``).
    """
    rows, n = x2.shape
    flat = scale.view(rows)
    y = torch.nn.functional.batch_norm(
        x2.view(1, rows, n),
        torch.zeros_like(flat),
        torch.ones_like(flat),
        weight=flat,
        training=False,
        eps=0.0,
    )
    return y.view(rows, n)


def _forward_one_pass(x2: torch.Tensor, r: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One-pass CPU forward on ``(rows, n)``: ``(y, ss)`` with ``ss = nrm**2`` (for the checks).

    ``scale = float32(r) / nrm`` (one rounding of ``r``, one division), then
    ``y = x * scale`` (one rounding per element in float32; float16/bfloat16: and
    one rounding to the storage dtype) -- in the native kernel when it is built
    (one read of ``x`` from memory), else with torch's kernels.
    """
    native = _native.kernel_for(x2.dtype)
    if native is not None:
        y, nrm = native.forward(x2, r)
        return y, nrm.square_()
    nrm = one_pass_norm(x2)
    scale = torch.div(_root_tensor(r), nrm)
    y = torch.mul(x2, scale) if x2.dtype == torch.float32 else scale_rows(x2, scale)
    return y, nrm.square_()


@functools.lru_cache(maxsize=64)
def _root_tensor(r: float) -> torch.Tensor:
    """``float32(r)`` as a 0-d CPU tensor (cached: one fewer kernel per call than ``full_like``)."""
    return torch.tensor(r, dtype=torch.float32, device="cpu")


def _backward_blocks(
    g2: torch.Tensor, y2: torch.Tensor, inv2: torch.Tensor, e: float
) -> torch.Tensor:
    """CPU backward on ``(rows, n)``: ``(inv * r) * (g - y * (dot / e))`` per row.

    ``acc == dtype`` (float32, float64): the dots ``sum(y * g)`` are taken block
    by block, then three whole-tensor passes write the gradient in place into
    its output.  Lower precision: each block of ``y`` and ``g`` is up-converted
    once into scratch and the gradient block is rounded once into the output.
    """
    rows, n = y2.shape
    acc = inv2.dtype
    out = torch.empty_like(g2)
    br = _block_rows(rows, n, torch.finfo(acc).bits // 8)
    work = _scratch(0, br * n, acc)
    dot = torch.empty(rows, 1, dtype=acc)
    scale = inv2 * math.sqrt(e)
    if acc == y2.dtype and acc == g2.dtype:
        _row_dots(y2, g2, dot, work, br)
        torch.mul(y2, dot.div_(e), out=out)
        torch.sub(g2, out, out=out)
        return out.mul_(scale)
    ybuf = _scratch(1, br * n, acc)
    gbuf = _scratch(2, br * n, acc)
    for start in range(0, rows, br):
        stop = min(rows, start + br)
        t = stop - start
        ya = _rows(ybuf, t, n)
        ya.copy_(y2[start:stop])
        ga = _rows(gbuf, t, n)
        ga.copy_(g2[start:stop])
        w = _rows(work, t, n)
        d = dot[start:stop]
        torch.mul(ya, ga, out=w)
        torch.sum(w, -1, keepdim=True, out=d)
        torch.mul(ya, d.div_(e), out=w)
        torch.sub(ga, w, out=w)
        torch.mul(w, scale[start:stop], out=out[start:stop])
    return out


def sum_squares(x2: torch.Tensor) -> torch.Tensor:
    """Per-row ``sum(x * x)`` of a contiguous CPU ``(rows, n)`` tensor in its accumulation dtype.

    Identity: equals ``(x2.to(acc) * x2.to(acc)).sum(-1, keepdim=True)`` bitwise (the same
    per-row ``torch.sum`` on scratch blocks as the forward's sums of squares).
    """
    rows, n = x2.shape
    acc = tolerance(x2.dtype).accumulation
    out = torch.empty(rows, 1, dtype=acc)
    br = _block_rows(rows, n, torch.finfo(acc).bits // 8)
    work = _scratch(0, br * n, acc)
    if acc == x2.dtype:
        _row_dots(x2, x2, out, work, br)
        return out
    upcast = _scratch(1, br * n, acc)
    for start in range(0, rows, br):
        stop = min(rows, start + br)
        xa = _rows(upcast, stop - start, n)
        xa.copy_(x2[start:stop])
        w = _rows(work, stop - start, n)
        torch.mul(xa, xa, out=w)
        torch.sum(w, -1, keepdim=True, out=out[start:stop])
    return out


# --------------------------------------------------------------------------- CUDA


def cuda_forward_math(x2: torch.Tensor, r: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-tensor form of the forward on ``(rows, n)``: returns ``(y, ss)``.

    Identity: ``y == C_E(x)`` row-wise with ``r = sqrt(E)``, ``ss = ||x||**2``
    (both reduced in the accumulation dtype).  Compiled on CUDA; plain eager
    elsewhere.
    """
    xa = x2.to(tolerance(x2.dtype).accumulation)
    ss = (xa * xa).sum(-1, keepdim=True)
    return (xa * (torch.rsqrt(ss) * r)).to(x2.dtype), ss


def cuda_backward_math(
    g2: torch.Tensor, y2: torch.Tensor, inv2: torch.Tensor, e: float
) -> torch.Tensor:
    """Whole-tensor analytic backward ``(r/rho) (g - y (y.g) / E)`` on ``(rows, n)``.

    ``r = sqrt(E)``; ``inv2`` holds ``1/rho`` per row.
    """
    ga = g2.to(inv2.dtype)
    ya = y2.to(inv2.dtype)
    dot = (ya * ga).sum(-1, keepdim=True)
    return ((inv2 * math.sqrt(e)) * (ga - ya * (dot / e))).to(g2.dtype)


_compiled: dict[str, Callable[..., Any]] = {}


def _cuda_kernel(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled with ``torch.compile`` when Triton is importable, else ``fn``."""
    if name not in _compiled:
        try:
            import triton  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

            _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True)
        except ImportError:
            _compiled[name] = fn
    return _compiled[name]


# --------------------------------------------------------------------------- entry points


def forward(
    x: torch.Tensor, e: float, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(y, ss)`` computed without scaling, or ``None`` if the layout is unsupported.

    ``ss`` is the per-sample sum of squares in the accumulation dtype, shaped
    like ``x`` with ``dims`` kept as size 1.  The caller must discard ``y`` when
    any ``ss`` is non-finite, zero or in the underflow range (those samples need
    the reference's scaled path, zero policy or non-finite error).
    """
    shape = rows_view(x, dims)
    if not _enabled or shape is None or not (x.is_cpu or x.is_cuda):
        return None
    rows, n = shape
    r = math.sqrt(e)
    flat = x.ndim == 2 and len(dims) == 1
    x2 = x if flat else x.view(rows, n)
    if x.is_cuda:
        y2, ss = _cuda_kernel("forward", cuda_forward_math)(x2, r)
    elif one_pass(x.dtype, n):
        y2, ss = _forward_one_pass(x2, r)
    else:
        y2, ss = _forward_blocks(x2, r, tolerance(x.dtype).accumulation)
    if flat:
        return y2, ss
    return y2.view(x.shape), ss.view(_keepdim_shape(x, dims))


def backward(
    g: torch.Tensor, y: torch.Tensor, inv_rho: torch.Tensor, e: float, dims: tuple[int, ...]
) -> torch.Tensor | None:
    """Gradient ``(r/rho) (g - y (y.g)/E)`` in ``g.dtype``; ``None`` for an unsupported layout."""
    shape = rows_view(y, dims)
    if (
        not _enabled
        or shape is None
        or g.shape != y.shape
        or not g.is_contiguous()
        or g.device != y.device
        or y.device.type not in ("cpu", "cuda")
    ):
        return None
    rows, n = shape
    g2, y2, inv2 = g.view(rows, n), y.view(rows, n), inv_rho.reshape(rows, 1)
    if y.device.type == "cuda":
        out = _cuda_kernel("backward", cuda_backward_math)(g2, y2, inv2, e)
    else:
        out = _backward_blocks(g2, y2, inv2, e)
    return out.view(g.shape)
