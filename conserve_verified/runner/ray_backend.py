"""Ray backend: the same cells as the local backend, run as Ray tasks.

Ray is imported lazily (it is an optional extra, ``conserve_verified[dist]``).
When no Ray runtime is initialised, a local one is started with ``num_cpus=jobs``
(connect to a cluster by calling ``ray.init(address=...)`` first or setting
``RAY_ADDRESS``).  Records stream back as tasks finish and the caller writes
them to the result store, so a killed driver loses only unfinished cells.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidArgument
from .protocol import Record, RunContext

__all__ = ["run_on_ray"]


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


def run_on_ray(cells: list[Any], ctx: RunContext, root: str, jobs: int) -> Iterator[Record]:
    """Submit one Ray task per cell; yield records as they complete."""
    if not cells:
        return
    ray = _import_ray()
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    from .execute import _execute_by_name

    task = ray.remote(num_cpus=1)(_execute_by_name)
    by_ref = {task.remote(root, c.module, c.config, ctx): c for c in cells}
    pending = list(by_ref)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                yield ray.get(ref)
            except Exception as exc:  # the task itself died (worker crash, lost node)
                c = by_ref[ref]
                yield {
                    "experiment": c.experiment,
                    "config": c.config,
                    "data": ctx.data,
                    "profile": ctx.profile,
                    "key": c.key,
                    "status": "error",
                    "metrics": {},
                    "error": f"Ray task failed: {type(exc).__name__}: {exc}"[:2000],
                    "seconds": 0.0,
                }
