"""Paired ratios: ``conserve`` against its peers, timed back to back.

The best-of-rounds tables of the operator and pipeline sections compare each
candidate's fastest round; on a shared machine the rounds of two candidates can
fall in different load phases.  Here the candidates of one comparison are timed
one right after the other (one short ``blocked_autorange`` each,
``profile.pair_run_time`` seconds), ``profile.pairs`` times, and each
comparison reports the median and the interquartile range of its per-pair
ratios:

* ``eager``: ``conserve`` / the faster of ``rms_norm`` and ``normalize`` in the
  same pair, for every dtype and feature size of the profile (batch
  ``profile.batch``);
* ``compiled``: the same under ``torch.compile(fullgraph=True, dynamic=False)``
  (backend ``profile.compile_backend``), compiled before timing;
* ``checks``: the 4-stage MLP of the pipeline section (``profile.mlp``) in
  inference: ``Conserved`` with checks on / with checks off, and with checks off
  / the plain ``Pipeline``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from conserve_verified import conserve

from .pipeline_overhead import mlp_models, step

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["paired", "run"]

Fn = Callable[[], Any]


def paired(
    candidate: Fn, peers: Sequence[Fn], pairs: int, run_time: float, threads: int
) -> dict[str, Any]:
    """``candidate`` / the fastest of ``peers``, timed back to back ``pairs`` times.

    Returns ``{"median", "q1", "q3", "pairs"}`` of the per-pair ratios, with
    ``min <= q1 <= median <= q3 <= max`` (inclusive quartiles; ``q1 = q3 = median`` for
    fewer than two pairs).  Each callable runs once before timing.
    """

    def time_one(fn: Fn) -> float:
        t = Timer("fn()", globals={"fn": fn}, num_threads=threads)
        return float(t.blocked_autorange(min_run_time=run_time).median)

    for fn in (candidate, *peers):
        fn()
    ratios = []
    for _ in range(pairs):
        own = time_one(candidate)
        ratios.append(own / min(time_one(fn) for fn in peers))
    med = statistics.median(ratios)
    # "inclusive": quartiles inside the data's range (the default "exclusive" method
    # extrapolates beyond it from few pairs, down to a negative q1 from two ratios)
    q1, _, q3 = (
        statistics.quantiles(ratios, n=4, method="inclusive")
        if len(ratios) >= 2
        else (med, med, med)
    )
    return {"median": med, "q1": q1, "q3": q3, "pairs": len(ratios)}


Op = Callable[[torch.Tensor], torch.Tensor]


def _versus_peers(ops: dict[str, Op], x: torch.Tensor, profile: Profile) -> dict[str, Any]:
    """``ops["conserve"](x)`` / the faster of ``ops["rms_norm"](x)`` and ``ops["normalize"](x)``."""
    fns = {k: (lambda op=op: op(x)) for k, op in ops.items()}
    peers = [fns["rms_norm"], fns["normalize"]]
    return paired(fns["conserve"], peers, profile.pairs, profile.pair_run_time, profile.threads)


def _rms_norm(n: int) -> Op:
    return lambda t: F.rms_norm(t, (n,))


def _shape_rows(profile: Profile) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    eager, compiled = [], []
    for dtype in profile.dtype_objects():
        for n in profile.features:
            torch._dynamo.reset()  # the compiled lambdas share code objects across shapes
            gen = torch.Generator().manual_seed(n)
            x = torch.randn(profile.batch, n, generator=gen).to(dtype)
            ops: dict[str, Op] = {
                "conserve": lambda t: conserve(t, 1.0),
                "rms_norm": _rms_norm(n),
                "normalize": lambda t: F.normalize(t, dim=-1),
            }
            backend = profile.compile_backend
            cops: dict[str, Op] = {
                k: torch.compile(op, fullgraph=True, dynamic=False, backend=backend)
                for k, op in ops.items()
            }
            key = {"dtype": str(dtype).removeprefix("torch."), "features": n}
            eager.append({**key, **_versus_peers(ops, x, profile)})
            compiled.append({**key, **_versus_peers(cops, x, profile)})
    return eager, compiled


def _checks(profile: Profile) -> dict[str, Any]:
    plain, conserved, x = mlp_models(profile)
    on, off = step(conserved, x, False, "raise"), step(conserved, x, False, "off")
    args = (profile.pairs, profile.pair_run_time, profile.threads)
    return {
        "model": "mlp",
        "input_shape": list(x.shape),
        "checks_on_vs_off": paired(on, [off], *args),
        "conserved_vs_plain": paired(off, [step(plain, x, False, "off")], *args),
    }


def run(profile: Profile) -> dict[str, Any]:
    """Paired eager and compiled operator ratios and the MLP's checks ratios."""
    eager, compiled = _shape_rows(profile)
    return {
        "batch": profile.batch,
        "pairs": profile.pairs,
        "pair_run_time": profile.pair_run_time,
        "compile_backend": profile.compile_backend,
        "eager": eager,
        "compiled": compiled,
        "checks": _checks(profile),
    }
