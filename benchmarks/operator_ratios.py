"""``conserve`` against torch's own normalisations and a plain copy.

For each device (:func:`devices`), dtype and feature size (batch ``profile.batch``;
on CUDA ``profile.cuda_batch`` and ``profile.cuda_features``), times forward and
forward+backward (``torch.autograd.grad`` of the output with a fixed upstream
gradient) of:

* ``conserve``: the library operator (fused fast path);
* ``conserve_reference``: the same operator with the fast path disabled;
* ``conserve_torch``: the fast path on torch's kernels (the native kernel
  disabled; forward only -- the backward is the same either way);
* ``rms_norm``: ``F.rms_norm(x, (n,))``; ``normalize``: ``F.normalize(x, dim=-1)``;
* ``copy``: ``x.clone()`` (forward only): reads and writes what the forward must;
* ``*_compiled``: ``conserve``, ``rms_norm`` and ``normalize`` each under
  ``torch.compile(fullgraph=True, dynamic=False)`` (backend ``profile.compile_backend``),
  compiled before timing.

Ratios (``< 1`` means faster than the baseline): ``fwd_vs_peer`` and
``fwd_bwd_vs_peer`` against the faster of ``rms_norm`` and ``normalize``
(``compiled_*`` the same for the compiled candidates against the faster compiled peer);
``fused_speedup_*`` = reference time / fused time; ``fwd_bandwidth_vs_copy`` =
the forward's bandwidth as a fraction of the copy's (both move ``2 N`` bytes);
``fwd_bwd_bandwidth_vs_copy`` = the bandwidth of the ``5 N`` bytes forward and
backward must move (read ``x``, write ``y``; read ``y`` and ``g``, write the
gradient) as a fraction of the copy's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from conserve_verified import _fused, _native, conserve
from conserve_verified.errors import InvalidArgument

from ._timing import best_of_rounds

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["DEVICES", "devices", "run", "shape_row", "sizes"]

Op = Callable[[torch.Tensor], torch.Tensor]


def _ops(n: int) -> dict[str, Op]:
    return {
        "conserve": lambda x: conserve(x, 1.0),
        "conserve_reference": lambda x: conserve(x, 1.0),
        "conserve_torch": lambda x: conserve(x, 1.0),
        "rms_norm": lambda x: F.rms_norm(x, (n,)),
        "normalize": lambda x: F.normalize(x, dim=-1),
    }


def _compiled_ops(n: int, backend: str) -> dict[str, Op]:
    """The three operators under ``torch.compile(fullgraph=True)``; one graph per shape."""
    return {
        f"{name}_compiled": torch.compile(op, fullgraph=True, dynamic=False, backend=backend)
        for name, op in _ops(n).items()
        if name not in ("conserve_reference", "conserve_torch")
    }


def _context(name: str) -> contextlib.AbstractContextManager[None]:
    """The reference candidate runs with the fast path disabled, ``conserve_torch`` with the
    native kernel disabled."""
    if name == "conserve_reference":
        return _fused.disabled()
    if name == "conserve_torch":
        return _native.disabled()
    return contextlib.nullcontext()


def _fwd(name: str, op: Op, x: torch.Tensor) -> Callable[[], Any]:
    def step() -> Any:
        with _context(name):
            return op(x)

    return step


def _fwd_bwd(name: str, op: Op, x: torch.Tensor, g: torch.Tensor) -> Callable[[], Any]:
    def step() -> Any:
        with _context(name):
            return torch.autograd.grad(op(x), x, g)

    return step


def shape_row(
    batch: int, n: int, dtype: torch.dtype, device: torch.device, profile: Profile
) -> dict[str, Any]:
    """Timings and ratios for one ``(batch, n)`` shape and dtype on ``device``."""
    torch._dynamo.reset()  # the compiled lambdas share code objects across shapes
    gen = torch.Generator(device=device).manual_seed(n)
    x = torch.randn(batch, n, generator=gen, device=device).to(dtype)
    g = torch.randn(batch, n, generator=gen, device=device).to(dtype)
    xg = x.clone().requires_grad_(True)
    ops = {**_ops(n), **_compiled_ops(n, profile.compile_backend)}
    candidates: dict[str, Callable[[], Any]] = {}
    for name, op in ops.items():
        candidates[f"{name}.fwd"] = _fwd(name, op, x)
    candidates["copy.fwd"] = x.clone
    for name, op in ops.items():
        if name != "conserve_torch":
            candidates[f"{name}.fwd_bwd"] = _fwd_bwd(name, op, xg, g)
    t = best_of_rounds(candidates, profile.min_run_time, profile.threads, profile.rounds)
    ms = {k: v["median_ms"] for k, v in t.items()}
    peer_f = min(ms["rms_norm.fwd"], ms["normalize.fwd"])
    peer_fb = min(ms["rms_norm.fwd_bwd"], ms["normalize.fwd_bwd"])
    cpeer_f = min(ms["rms_norm_compiled.fwd"], ms["normalize_compiled.fwd"])
    cpeer_fb = min(ms["rms_norm_compiled.fwd_bwd"], ms["normalize_compiled.fwd_bwd"])
    nbytes = x.numel() * x.element_size()
    copy_gbs = 2 * nbytes / (ms["copy.fwd"] * 1e-3) / 1e9
    return {
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
        "batch": batch,
        "features": n,
        "timings": t,
        "ratios": {
            "fwd_vs_peer": ms["conserve.fwd"] / peer_f,
            "fwd_torch_vs_peer": ms["conserve_torch.fwd"] / peer_f,
            "fwd_bwd_vs_peer": ms["conserve.fwd_bwd"] / peer_fb,
            "fwd_vs_rms_norm": ms["conserve.fwd"] / ms["rms_norm.fwd"],
            "fwd_bwd_vs_rms_norm": ms["conserve.fwd_bwd"] / ms["rms_norm.fwd_bwd"],
            "fused_speedup_fwd": ms["conserve_reference.fwd"] / ms["conserve.fwd"],
            "fused_speedup_fwd_bwd": ms["conserve_reference.fwd_bwd"] / ms["conserve.fwd_bwd"],
            "fwd_bandwidth_vs_copy": ms["copy.fwd"] / ms["conserve.fwd"],
            "fwd_bwd_bandwidth_vs_copy": 2.5 * ms["copy.fwd"] / ms["conserve.fwd_bwd"],
            "compiled_fwd_vs_peer": ms["conserve_compiled.fwd"] / cpeer_f,
            "compiled_fwd_bwd_vs_peer": ms["conserve_compiled.fwd_bwd"] / cpeer_fb,
            "compiled_fwd_vs_eager_peer": ms["conserve_compiled.fwd"] / peer_f,
        },
        "compile_backend": profile.compile_backend,
        "copy_gb_per_s": copy_gbs,
        "conserve_fwd_gb_per_s": 2 * nbytes / (ms["conserve.fwd"] * 1e-3) / 1e9,
        "conserve_fwd_bwd_gb_per_s": 5 * nbytes / (ms["conserve.fwd_bwd"] * 1e-3) / 1e9,
    }


#: Devices the operator section can time.
DEVICES = ("cpu", "cuda")


def devices(profile: Profile) -> list[torch.device]:
    """The devices of the rows: ``profile.devices``, or the CPU and CUDA when present.

    Raises :class:`~conserve_verified.errors.InvalidArgument` (argument ``devices``)
    for a name outside :data:`DEVICES` or a named device this machine lacks.
    """
    if profile.devices is None:
        return [torch.device(d) for d in DEVICES if d == "cpu" or torch.cuda.is_available()]
    unknown = [d for d in profile.devices if d not in DEVICES]
    if unknown or not profile.devices:
        raise InvalidArgument("devices", profile.devices, f"must be some of {list(DEVICES)}")
    if "cuda" in profile.devices and not torch.cuda.is_available():
        raise InvalidArgument("devices", profile.devices, "CUDA is not available on this machine")
    return [torch.device(d) for d in profile.devices]


def sizes(profile: Profile, device: torch.device) -> tuple[int, tuple[int, ...]]:
    """``(batch, features)`` of the rows on ``device``: the profile's CUDA sizes on a GPU."""
    if device.type == "cuda":
        return profile.cuda_batch, profile.cuda_features
    return profile.batch, profile.features


def run(profile: Profile) -> dict[str, Any]:
    """Every shape and dtype of ``profile`` on each of its :func:`devices`."""
    rows = []
    for device in devices(profile):
        batch, features = sizes(profile, device)
        rows += [
            shape_row(batch, n, dtype, device, profile)
            for dtype in profile.dtype_objects()
            for n in features
        ]
    return {
        "rows": rows,
        "native": _native.status(),
        "cuda_sizes": {"batch": profile.cuda_batch, "features": list(profile.cuda_features)},
    }
