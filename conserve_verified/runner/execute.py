"""Running cells: seeding, timing, error capture, resume, and the local backend.

:func:`execute_cell` turns one ``(experiment, config)`` into a record, never
raising for a failure inside ``run_cell`` (the record then has
``status="error"`` and the traceback's last lines).  :func:`run_grid` runs the
missing cells of one or more experiments on a backend and stores each record
as soon as it is finished, so a killed run loses nothing it had completed and
the next run skips those cells.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import json
import os
import pathlib
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgument
from .protocol import Experiment, Record, RunContext
from .spec import canonical_json, cells, check_profile, config_key
from .store import ResultStore

__all__ = [
    "BACKENDS",
    "Cell",
    "RunSummary",
    "execute_cell",
    "pending_cells",
    "progress_enabled",
    "run_grid",
    "seed_everything",
]

#: Execution backends accepted by :func:`run_grid`.
BACKENDS: tuple[str, ...] = ("local", "ray")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal and never under CI (``$CI`` set)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@dataclass(frozen=True)
class Cell:
    """One unit of work: an experiment's module, a configuration and its store key."""

    experiment: str
    module: str
    config: dict[str, Any]
    key: str


def _module_short(exp: Experiment) -> str:
    return exp.module.__name__.rsplit(".", 1)[-1]


def execute_cell(exp: Experiment, config: dict[str, Any], ctx: RunContext) -> Record:
    """Run ``exp.run_cell(config, ctx)`` after seeding from ``config["seed"]``; return its record.

    The metrics must be a dict that serialises to finite JSON; anything else
    (an exception, NaN, a tensor) yields a record with ``status="error"``.
    """
    key = config_key(config, ctx.data)
    rec: Record = {
        "experiment": exp.name,
        "config": config,
        "data": ctx.data,
        "profile": ctx.profile,
        "key": key,
        "status": "ok",
        "metrics": {},
        "error": None,
        "seconds": 0.0,
    }
    t0 = time.perf_counter()
    try:
        seed_everything(int(config["seed"]))
        metrics = exp.run_cell(dict(config), ctx)
        if not isinstance(metrics, dict):
            raise TypeError(f"run_cell returned {type(metrics).__name__}, expected dict")
        try:
            metrics = json.loads(canonical_json(metrics))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metrics are not finite JSON: {exc}") from None
        rec["metrics"] = metrics
    except Exception as exc:
        rec["status"] = "error"
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        rec["error"] = "".join(lines[-6:]).strip()
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    return rec


def _execute_by_name(root: str, module: str, config: dict[str, Any], ctx: RunContext) -> Record:
    """Worker-side :func:`execute_cell`: import the experiment from ``root`` first."""
    from .discovery import import_experiments_package
    from .spec import validate_module

    import_experiments_package(pathlib.Path(root))
    mod = importlib.import_module(f"experiments.{module}")
    return execute_cell(validate_module(mod), config, ctx)


def pending_cells(
    experiments: Sequence[Experiment], profile: str, data: str, store: ResultStore
) -> tuple[list[Cell], int]:
    """Cells of ``profile`` not yet finished in ``store``, and the number skipped."""
    check_profile(profile)
    todo: list[Cell] = []
    skipped = 0
    for exp in experiments:
        for config in cells(exp, profile):
            key = config_key(config, data)
            if store.is_finished(exp.name, key):
                skipped += 1
            else:
                todo.append(Cell(exp.name, _module_short(exp), config, key))
    return todo, skipped


@dataclass
class RunSummary:
    """What a run did: cells finished, skipped (already stored) and failed (with messages)."""

    finished: int = 0
    skipped: int = 0
    failed: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _local(
    todo: list[Cell], by_name: dict[str, Experiment], ctx: RunContext, jobs: int, root: str
) -> Iterator[Record]:
    if jobs <= 1:
        for cell in todo:
            yield execute_cell(by_name[cell.experiment], cell.config, ctx)
        return
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_execute_by_name, root, c.module, c.config, ctx) for c in todo]
        for fut in cf.as_completed(futures):
            yield fut.result()


def run_grid(
    experiments: Sequence[Experiment],
    profile: str,
    ctx: RunContext,
    store: ResultStore,
    backend: str = "local",
    jobs: int = 1,
    root: pathlib.Path | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> RunSummary:
    """Run every unfinished cell of ``experiments`` under ``profile`` and store the records.

    ``backend`` is ``"local"`` (in-process, or a spawn process pool with
    ``jobs > 1``) or ``"ray"`` (see :mod:`.ray_backend`); every backend writes to
    the same ``store``.  ``root`` (the experiments directory) is needed by
    process-pool and Ray workers to import the experiment modules.
    """
    if backend not in BACKENDS:
        raise InvalidArgument("backend", backend, f"unknown backend; valid: {list(BACKENDS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgument("jobs", jobs, "must be an int >= 1")
    ctx = replace(ctx, profile=check_profile(profile))
    todo, skipped = pending_cells(experiments, profile, ctx.data, store)
    summary = RunSummary(skipped=skipped)
    by_name = {e.name: e for e in experiments}
    if (backend == "ray" or jobs > 1) and root is None:
        raise InvalidArgument("root", None, f"backend {backend!r} with jobs={jobs} needs root")
    if backend == "ray":
        from .ray_backend import run_on_ray

        stream: Iterator[Record] = run_on_ray(todo, ctx, str(root), jobs)
    else:
        stream = _local(todo, by_name, ctx, jobs, str(root))
    from tqdm import tqdm

    with tqdm(total=len(todo), disable=not progress_enabled(), unit="cell") as bar:
        for rec in stream:
            store.write(rec)
            if rec["status"] == "ok":
                summary.finished += 1
            else:
                summary.failed.append((rec["experiment"], rec["config"], rec["error"] or ""))
            if on_record is not None:
                on_record(rec)
            bar.update(1)
    return summary
