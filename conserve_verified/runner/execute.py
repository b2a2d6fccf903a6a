"""Running cells: seeding, thread pinning, timing, error capture, resume, the local pool.

:func:`execute_cell` turns one ``(experiment, config)`` into a record, never
raising for a failure inside ``run_cell`` (the record then has
``status="error"`` and the traceback's last lines).  Every cell runs with
``torch.set_num_threads(CELL_THREADS)`` (one thread), whatever the backend, and
its record carries a ``"runtime"`` entry (torch threads, torch version, host,
Python): a seeded cell gives the same metrics in-process, in a local worker
process and on a Ray worker.

:func:`run_grid` runs the missing cells of one or more experiments on a
backend and stores each record as soon as it is finished (only the driver
writes to the store), so a killed run loses nothing it had completed and the
next run skips those cells.  ``workers > 1`` runs cells in a local pool of
spawned worker processes (one thread each).  Progress goes to stderr: a tqdm
bar (experiment, cell, done/total, ETA) on a terminal, else one line per
cell.  Ctrl-C stops the workers and raises :class:`Interrupted` with the
counts (the CLI prints one line and exits 130).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import json
import os
import pathlib
import platform
import random
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import numpy as np
import torch

from ..errors import ConserveError, InvalidArgument, check_int
from .protocol import Experiment, Record, RunContext
from .spec import canonical_json, cells, check_profile, config_key
from .store import ResultStore

__all__ = [
    "BACKENDS",
    "CELL_THREADS",
    "Cell",
    "Interrupted",
    "Progress",
    "RunSummary",
    "WrongCheckout",
    "available_cores",
    "execute_cell",
    "experiments_fingerprint",
    "pending_cells",
    "progress_enabled",
    "run_grid",
    "runtime_info",
    "seed_everything",
]

#: Execution backends accepted by :func:`run_grid`.
BACKENDS: tuple[str, ...] = ("local", "ray")

#: Torch intra-op threads of every cell, on every backend (recorded in each record).
CELL_THREADS = 1


class Interrupted(ConserveError):
    """The run was interrupted (Ctrl-C) after ``done`` of ``total`` cells; stored cells are kept."""

    def __init__(self, done: int, total: int, summary: RunSummary) -> None:
        self.done, self.total, self.summary = done, total, summary
        super().__init__(
            f"interrupted after {done}/{total} cells; rerun the same command to resume"
        )


class WrongCheckout(ConserveError):
    """A worker imported an ``experiments`` package other than the driver's (another checkout)."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def progress_enabled() -> bool:
    """A progress *bar* only on an interactive terminal and never under CI (``$CI`` set)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def runtime_info() -> dict[str, Any]:
    """Where and how a cell ran: torch threads, torch version, host, Python version, and
    whether the operator's native kernel ran (``native_kernel``; its flags when it did)."""
    from .. import _native  # local: the runner does not need the kernel to import

    native = _native.status()
    return {
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "native_kernel": " ".join(native["flags"]) if native["active"] else None,
    }


def experiments_fingerprint(root: pathlib.Path | str) -> str:
    """SHA-256 (16 hex digits) of every ``*.py`` file under ``root`` (relative path + bytes).

    Two checkouts with the same experiment sources have the same fingerprint;
    a worker compares it with the driver's before running a cell.
    """
    base = pathlib.Path(root)
    h = hashlib.sha256()
    for p in sorted(base.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        h.update(p.relative_to(base).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


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
    """Run ``exp.run_cell(config, ctx)`` on one torch thread, seeded from ``config["seed"]``.

    The metrics must be a dict that serialises to finite JSON; anything else
    (an exception, NaN, a tensor) yields a record with ``status="error"``.
    Identity: the record depends only on ``(exp, config, ctx)`` apart from
    ``seconds`` and ``runtime["host"]``.
    """
    torch.set_num_threads(CELL_THREADS)
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
    rec["runtime"] = runtime_info()
    return rec


#: (experiments folder, fingerprint) pairs this worker process has already checked.
_CHECKED: set[tuple[pathlib.Path, str]] = set()


def _import_checked(root: str | None, fingerprint: str | None) -> None:
    """Import ``experiments`` (from ``root`` when it exists here) and check its fingerprint."""
    from .discovery import import_experiments_package

    if root is not None and pathlib.Path(root, "__init__.py").is_file():
        pkg = import_experiments_package(pathlib.Path(root))
    else:
        # shipped to this worker (Ray runtime_env py_modules): its folder is on
        # $PYTHONPATH, ahead of whatever else this machine could import
        shipped = [
            pathlib.Path(p, "experiments").resolve()
            for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and pathlib.Path(p, "experiments", "__init__.py").is_file()
        ]
        if shipped:
            pkg = import_experiments_package(shipped[0])
        else:
            pkg = importlib.import_module("experiments")
    where = pathlib.Path(getattr(pkg, "__file__", "") or ".").resolve().parent
    if fingerprint is not None and (where, fingerprint) not in _CHECKED:
        # once per worker process: the shipped copy cannot change under a running job
        got = experiments_fingerprint(where)
        if got != fingerprint:
            raise WrongCheckout(
                f"worker {socket.gethostname()} imports 'experiments' from {where} "
                f"(fingerprint {got}), not the driver's (fingerprint {fingerprint}): "
                "another checkout; refusing to run its code"
            )
        _CHECKED.add((where, fingerprint))


def _execute_by_name(
    root: str | None,
    module: str,
    config: dict[str, Any],
    ctx: RunContext,
    fingerprint: str | None = None,
) -> Record:
    """Worker-side :func:`execute_cell`: import (and check) the experiment package first."""
    from .spec import validate_module

    _import_checked(root, fingerprint)
    mod = importlib.import_module(f"experiments.{module}")
    return execute_cell(validate_module(mod), config, ctx)


def _worker_init() -> None:
    """Pool worker start-up: one torch thread; Ctrl-C is the driver's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(CELL_THREADS)
    torch.set_num_threads(CELL_THREADS)


def pending_cells(
    experiments: Sequence[Experiment],
    profile: str,
    data: str,
    store: ResultStore,
    seeds: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[list[Cell], int]:
    """Cells of ``profile`` not yet finished in ``store``, and the number skipped.

    ``seeds`` keeps only the first ``seeds`` seeds of every grid (``None``: all);
    ``overrides`` replaces grid axes (see :func:`.spec.cells`).
    """
    check_profile(profile)
    todo: list[Cell] = []
    skipped = 0
    for exp in experiments:
        for config in cells(exp, profile, seeds=seeds, overrides=overrides):
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
    seconds: float = 0.0
    workers: int = 1
    backend: str = "local"

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def done(self) -> int:
        """Cells stored after the run (finished now, failed now, or already stored)."""
        return self.finished + self.skipped + len(self.failed)


def _short_config(config: dict[str, Any], limit: int = 60) -> str:
    text = " ".join(f"{k}={v}" for k, v in config.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_eta(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Progress of a run: a tqdm bar on a terminal, else one line per cell on ``stream``.

    A line reads ``[done/total] experiment cell status seconds, ETA h:mm:ss``,
    the ETA being (elapsed / cells done in this run) x cells remaining.
    """

    def __init__(
        self, total: int, skipped: int, stream: TextIO | None = None, bar: bool | None = None
    ) -> None:
        self.total, self.done, self.start_done = total, skipped, skipped
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self.bar: Any = None
        use_bar = progress_enabled() if bar is None else bar
        if use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=skipped, unit="cell", file=self.stream)

    def eta(self) -> float:
        """Seconds left at the mean pace of this run so far."""
        ran = self.done - self.start_done
        if ran <= 0:
            return 0.0
        return (time.monotonic() - self.t0) / ran * (self.total - self.done)

    def update(self, rec: Record) -> None:
        self.done += 1
        cell = _short_config(rec.get("config", {}))
        if self.bar is not None:
            self.bar.set_description(str(rec.get("experiment")), refresh=False)
            self.bar.set_postfix_str(cell, refresh=False)
            self.bar.update(1)
            return
        print(
            f"[{self.done}/{self.total}] {rec.get('experiment')} {cell} {rec.get('status')} "
            f"{float(rec.get('seconds') or 0):.1f}s, ETA {_fmt_eta(self.eta())}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel queued cells and end the pool's worker processes now (Ctrl-C)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def _local(
    todo: list[Cell],
    by_name: dict[str, Experiment],
    ctx: RunContext,
    workers: int,
    root: str,
    fingerprint: str | None,
) -> Iterator[Record]:
    if workers <= 1:
        for cell in todo:
            yield execute_cell(by_name[cell.experiment], cell.config, ctx)
        return
    import multiprocessing as mp

    pool = cf.ProcessPoolExecutor(
        max_workers=min(workers, len(todo)) or 1,
        mp_context=mp.get_context("spawn"),
        initializer=_worker_init,
    )
    try:
        futures = [
            pool.submit(_execute_by_name, root, c.module, c.config, ctx, fingerprint) for c in todo
        ]
        for fut in cf.as_completed(futures):
            yield fut.result()
    except BaseException:
        _stop_pool(pool)
        raise
    else:
        pool.shutdown(wait=True)


def run_grid(
    experiments: Sequence[Experiment],
    profile: str,
    ctx: RunContext,
    store: ResultStore,
    backend: str = "local",
    workers: int = 1,
    root: pathlib.Path | None = None,
    on_record: Callable[[Record], None] | None = None,
    *,
    jobs: int | None = None,
    seeds: int | None = None,
    ray_address: str | None = None,
    progress: Progress | bool | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunSummary:
    """Run every unfinished cell of ``experiments`` under ``profile`` and store the records.

    ``backend`` is ``"local"`` (in-process for ``workers == 1``, else a pool of
    ``workers`` spawned processes) or ``"ray"`` (see :mod:`.ray_backend`;
    ``ray_address`` or ``$RAY_ADDRESS`` names a cluster); every backend writes
    to the same ``store`` from this process only.  ``root`` (the experiments
    directory) is needed by pool and Ray workers to import the experiment
    modules.  ``jobs`` is an alias of ``workers``; ``seeds`` keeps the first
    ``seeds`` seeds of each grid; ``overrides`` replaces grid axes
    (:func:`.spec.cells`).  ``progress``: ``True`` a bar, ``False``
    lines, ``None`` a bar on a terminal.  Ctrl-C raises :class:`Interrupted`.
    """
    if jobs is not None:
        workers = jobs
    if backend not in BACKENDS:
        raise InvalidArgument("backend", backend, f"unknown backend; valid: {list(BACKENDS)}")
    check_int("workers", workers)
    check_int("seeds", seeds, none=True)
    ctx = replace(ctx, profile=check_profile(profile))
    todo, skipped = pending_cells(
        experiments, profile, ctx.data, store, seeds=seeds, overrides=overrides
    )
    summary = RunSummary(skipped=skipped, workers=workers, backend=backend)
    by_name = {e.name: e for e in experiments}
    if (backend == "ray" or workers > 1) and root is None:
        raise InvalidArgument(
            "root", None, f"backend {backend!r} with workers={workers} needs root"
        )
    # Ray workers import a shipped copy and check it against this fingerprint; local pool
    # workers import ``root`` itself (another package already imported there is refused by
    # :func:`.discovery.import_experiments_package`), so edits to the checkout during a run
    # do not stop it.
    fingerprint = experiments_fingerprint(root) if root is not None and backend == "ray" else None
    if backend == "ray":
        from .ray_backend import run_on_ray

        stream: Iterator[Record] = run_on_ray(
            todo, ctx, str(root), workers, address=ray_address, fingerprint=fingerprint
        )
    else:
        stream = _local(todo, by_name, ctx, workers, str(root), fingerprint)
    if isinstance(progress, Progress):
        bar = progress
    else:
        bar = Progress(len(todo) + skipped, skipped, bar=progress)
    t0 = time.monotonic()
    try:
        for rec in stream:
            store.write(rec)
            if rec["status"] == "ok":
                summary.finished += 1
            else:
                summary.failed.append((rec["experiment"], rec["config"], rec["error"] or ""))
            if on_record is not None:
                on_record(rec)
            bar.update(rec)
    except KeyboardInterrupt:
        summary.seconds = time.monotonic() - t0
        raise Interrupted(summary.done, len(todo) + skipped, summary) from None
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()
        bar.close()
    summary.seconds = time.monotonic() - t0
    return summary
