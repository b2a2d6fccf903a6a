"""``conserve-verified run EXPERIMENT|all --profile P``: run experiment grids into a result store.

Every selected experiment is validated (and the dataset checked) before any
cell runs.  Finished cells are skipped (resume).  Exit status: 0 when every
cell finished, 1 when a cell failed or an experiment could not be loaded (each
listed on stderr), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import torch

from ..data import DATASETS
from ..errors import InvalidArgument
from ..runner.discovery import discover
from ..runner.execute import BACKENDS, run_grid
from ..runner.protocol import PROFILES, RunContext
from ..runner.store import ResultStore

NAME = "run"
HELP = "run experiments (one, or all) under a profile, resuming from finished cells"

__all__ = ["HELP", "NAME", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment NAME, or 'all'")
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    parser.add_argument("--data", default="digits", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", type=pathlib.Path, default=None)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results"))
    parser.add_argument("--backend", default="local", choices=BACKENDS)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel workers (default: 1 for local, all CPUs for ray)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument(
        "--experiments-dir",
        type=pathlib.Path,
        default=None,
        help="directory of experiment modules (default: ./experiments)",
    )


def run(args: argparse.Namespace) -> int:
    found = discover(args.experiments_dir)
    if args.experiment == "all":
        selected = list(found.experiments.values())
        broken = dict(found.errors)
    elif args.experiment in found.experiments:
        selected = [found.experiments[args.experiment]]
        broken = {}
    else:
        hint = f"; modules that failed to load: {sorted(found.errors)}" if found.errors else ""
        raise InvalidArgument(
            "experiment",
            args.experiment,
            f"unknown; valid: {sorted(found.experiments)} or 'all'{hint}",
        )
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise InvalidArgument("--data-dir", str(args.data_dir), "is not an existing directory")
    if args.data in ("cifar10", "mnist") and args.data_dir is None:
        raise InvalidArgument("--data", args.data, "is read from local files: pass --data-dir")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise InvalidArgument("--device", args.device, str(exc)) from None
    jobs = (
        args.jobs
        if args.jobs is not None
        else (os.cpu_count() or 1 if args.backend == "ray" else 1)
    )
    ctx = RunContext(
        data=args.data,
        data_dir=args.data_dir,
        out_dir=args.out,
        device=device,
        profile=args.profile,
    )
    store = ResultStore(args.out)
    for mod, err in sorted(broken.items()):
        print(
            f"conserve-verified run: experiment module {mod!r} not loaded: {err}", file=sys.stderr
        )
    summary = run_grid(
        selected, args.profile, ctx, store, backend=args.backend, jobs=jobs, root=found.root
    )
    print(
        f"run {args.experiment} --profile {args.profile} --data {args.data}: "
        f"{summary.finished} cells finished, {summary.skipped} already stored, "
        f"{len(summary.failed)} failed -> {store.root}"
    )
    for exp, config, err in summary.failed:
        last = err.strip().splitlines()[-1] if err.strip() else "unknown error"
        print(f"conserve-verified run: FAILED {exp} {config}: {last}", file=sys.stderr)
    return 0 if summary.ok and not broken else 1
