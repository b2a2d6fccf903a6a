"""Ray backend: the same cells as the local backend, run as Ray tasks (one CPU, one thread each).

Ray is imported lazily (it is an optional extra, ``conserve_verified[dist]``).
Connecting: ``address`` (``run --ray-address``), else ``$RAY_ADDRESS``, joins
an existing cluster and logs the nodes and CPUs it found; with neither, a local
Ray instance with ``num_cpus=workers`` is started and a warning says so.  An
already initialised Ray runtime is used as it is.

The driver's ``experiments`` package is shipped to the workers with Ray's
``runtime_env`` (``py_modules``), so a worker never depends on the driver's
absolute path; every task first checks that the ``experiments`` it imports has
the driver's fingerprint (:func:`.execute.experiments_fingerprint`) and
refuses to run another checkout's code (:class:`.execute.WrongCheckout`: the
run stops before any further cell).  Records stream back as tasks finish and
only the driver writes them to ``--out``, so a lost worker node loses only its
unfinished cells (they come back as error records and are retried by the next
run) and a killed driver loses only unfinished cells.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidArgument
from .protocol import Record, RunContext

__all__ = ["connect", "run_on_ray"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InvalidArgument(
            "backend",
            "ray",
            "Ray is not installed; install the extra: pip install 'conserve_verified[dist]'",
        ) from None
    return ray


def connect(address: str | None, workers: int, root: str, log: Any = None) -> str:
    """Initialise Ray (unless it already is) and return one line describing the cluster.

    ``address`` (else ``$RAY_ADDRESS``) joins a cluster; otherwise a local
    instance with ``workers`` CPUs starts.  ``root`` (the experiments
    directory) is shipped to every worker through ``runtime_env``.
    """
    ray = _import_ray()
    say = log if log is not None else (lambda m: print(m, file=sys.stderr, flush=True))
    if ray.is_initialized():
        return "ray: using the Ray runtime already initialised in this process"
    addr = address or os.environ.get("RAY_ADDRESS") or None
    env = {"py_modules": [root]}
    if addr:
        ray.init(address=addr, runtime_env=env, log_to_driver=False)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = ray.cluster_resources().get("CPU", 0)
        line = f"ray: joined cluster {addr}: {len(nodes)} node(s), {cpus:g} CPU(s)"
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, runtime_env=env)
        line = (
            f"ray: warning: no --ray-address or RAY_ADDRESS; started a local Ray instance "
            f"with {workers} CPU(s)"
        )
    say(line)
    return line


def _error_record(c: Any, ctx: RunContext, message: str) -> Record:
    return {
        "experiment": c.experiment,
        "config": c.config,
        "data": ctx.data,
        "profile": ctx.profile,
        "key": c.key,
        "status": "error",
        "metrics": {},
        "error": message[:2000],
        "seconds": 0.0,
    }


def run_on_ray(
    cells: list[Any],
    ctx: RunContext,
    root: str,
    workers: int,
    *,
    address: str | None = None,
    fingerprint: str | None = None,
) -> Iterator[Record]:
    """Submit one Ray task per cell (1 CPU each); yield records as they complete.

    A task whose worker imports another checkout's ``experiments`` raises
    :class:`.execute.WrongCheckout` here (remaining tasks are cancelled).
    """
    if not cells:
        return
    ray = _import_ray()
    connect(address, workers, root)
    from .execute import WrongCheckout, _execute_by_name

    task = ray.remote(num_cpus=1, max_retries=0)(_execute_by_name)
    # root=None: workers import the shipped copy, not the driver's path
    by_ref = {task.remote(None, c.module, c.config, ctx, fingerprint): c for c in cells}
    pending = list(by_ref)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield ray.get(ref)
                except Exception as exc:  # the task raised or died (worker crash, lost node)
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, WrongCheckout) or "WrongCheckout" in str(exc):
                        raise WrongCheckout(str(cause or exc).strip().splitlines()[-1]) from None
                    yield _error_record(
                        by_ref[ref], ctx, f"Ray task failed: {type(exc).__name__}: {exc}"
                    )
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
