"""``conserve-verified run EXPERIMENT|all --profile P``: run experiment grids into a result store.

Every selected experiment is validated, and the dataset and device are checked
once, before any cell runs (one clear error line, exit status 2).  Finished
cells are skipped (resume).  Cells run in a local pool of ``--workers`` worker
processes (default: the available cores), one torch thread each, or as Ray
tasks (``--backend ray``, ``--ray-address`` / ``$RAY_ADDRESS`` for a cluster);
only this process writes ``--out``.  Exit status: 0 when every cell finished,
1 when a cell failed or an experiment could not be loaded (each listed on
stderr), 2 for a usage error, 130 after Ctrl-C (one line; rerunning the same
command resumes).
"""

from __future__ import annotations

import argparse
import difflib
import json
import pathlib
import re
import sys
from typing import Any

import torch

from ..data import DATASETS
from ..errors import InvalidArgument
from ..runner.discovery import discover, experiments_root
from ..runner.execute import BACKENDS, Interrupted, available_cores, pending_cells, run_grid
from ..runner.protocol import PROFILES, RunContext
from ..runner.spec import cells, check_overrides
from ..runner.store import ResultStore

NAME = "run"
HELP = "run experiments (one, or all) under a profile, resuming from finished cells"

__all__ = [
    "HELP",
    "NAME",
    "check_data",
    "check_device",
    "configure",
    "parse_overrides",
    "resolve_names",
    "run",
]

_NAME_RE = re.compile(r"^NAME\s*(?::\s*str\s*)?=\s*[\"']([^\"']+)[\"']", re.MULTILINE)


def _experiment_names() -> list[str]:
    """``NAME`` of each experiment module, read from the sources without importing them."""
    try:
        root = experiments_root()
    except InvalidArgument:
        return []
    names = []
    for p in sorted(root.iterdir()):
        src = p / "__init__.py" if p.is_dir() else p
        if p.name.startswith("_") or src.suffix != ".py" or not src.is_file():
            continue
        m = _NAME_RE.search(src.read_text(encoding="utf-8", errors="replace"))
        if m:
            names.append(m.group(1))
    return names


def configure(parser: argparse.ArgumentParser) -> None:
    names = _experiment_names()
    parser.add_argument(
        "experiment",
        nargs="*",
        help="experiment NAME(s) (case-insensitive), or 'all'"
        + (f"; available: {', '.join(names)}" if names else ""),
    )
    parser.add_argument(
        "--profile", default="smoke", choices=PROFILES, help="grid size (default: %(default)s)"
    )
    parser.add_argument(
        "--data",
        default="digits",
        help=f"dataset of the cells: {', '.join(sorted(DATASETS))}, npz:PATH or "
        "imagefolder:PATH (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=None,
        help="directory with local dataset files (default: the dataset's standard place)",
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("results"),
        help="result store, written by this process only (default: %(default)s)",
    )
    parser.add_argument(
        "--backend", default="local", choices=BACKENDS, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"parallel worker processes / Ray CPUs, one torch thread each "
        f"(default: the available cores, here {available_cores()})",
    )
    parser.add_argument("--jobs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="run only the first N seeds of every grid (default: all of the profile's)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="AXIS=VALUES",
        help="override a grid axis of the selected experiments, e.g. --set epochs=5 or "
        "--set 'seed=[0,1,2]' (JSON; a scalar means a one-value list)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the experiments (claims, cells per profile) and exit",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show how many cells would run and how many are stored, and exit",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join with --backend ray (default: $RAY_ADDRESS, else a local "
        "Ray instance is started)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)"
    )
    parser.add_argument(
        "--experiments-dir",
        type=pathlib.Path,
        default=None,
        help="directory of experiment modules (default: ./experiments)",
    )


def resolve_names(requested: list[str], valid: list[str]) -> list[str]:
    """Experiment names for ``requested`` (case-insensitive; ``all`` = every valid name).

    An unknown name raises :class:`InvalidArgument` with a "did you mean" hint
    and the valid names.
    """
    by_lower = {v.lower(): v for v in valid}
    out: list[str] = []
    for name in requested:
        if name.lower() == "all":
            return list(valid)
        if name.lower() not in by_lower:
            close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
            hint = f"did you mean {by_lower[close[0]]!r}? " if close else ""
            raise InvalidArgument(
                "experiment", name, f"unknown; {hint}valid: {sorted(valid)} or 'all'"
            )
        if by_lower[name.lower()] not in out:
            out.append(by_lower[name.lower()])
    return out


def check_data(name: str, data_dir: pathlib.Path | None) -> str:
    """The checked dataset name; one :class:`InvalidArgument` (before any cell) if unavailable.

    Uses :func:`conserve_verified.data.check_name` and
    :func:`~conserve_verified.data.check_available` (files present, nothing read).
    """
    from .. import data as data_mod

    if data_dir is not None and not data_dir.is_dir():
        raise InvalidArgument("--data-dir", str(data_dir), "is not an existing directory")
    try:
        checked = str(data_mod.check_name(name))
        data_mod.check_available(checked, data_dir)
    except InvalidArgument as exc:
        raise InvalidArgument("--data", name, f"dataset not available: {exc}") from None
    return checked


def check_device(spec: str) -> torch.device:
    """The torch device ``spec``, checked by allocating on it (one error line if unusable)."""
    try:
        device = torch.device(spec)
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArgument("--device", spec, f"unusable: {first}") from None
    return device


def _note(
    store: ResultStore,
    args: argparse.Namespace,
    label: str,
    names: list[str],
    workers: int,
    summary: Any,
    interrupted: bool = False,
) -> None:
    """One line of ``<out>/runs.jsonl`` for this run (the report's header sums them)."""
    extra = "" if args.seeds is None else f" --seeds {args.seeds}"
    extra += "".join(f" --set '{k}={json.dumps(v)}'" for k, v in parse_overrides(args.set).items())
    store.note_run(
        {
            "command": f"conserve-verified run {label} --profile {args.profile}{extra} "
            f"--data {args.data}",
            "profile": args.profile,
            "seeds": args.seeds,
            "data": args.data,
            "experiments": names,
            "backend": summary.backend,
            "workers": workers,
            "finished": summary.finished,
            "skipped": summary.skipped,
            "failed": len(summary.failed),
            "seconds": round(summary.seconds, 2),
            "interrupted": interrupted,
        }
    )


def _print_quarantined(store: ResultStore) -> None:
    for line in store.quarantine_messages():
        print(f"conserve-verified run: {line}", file=sys.stderr)


def parse_overrides(items: list[str]) -> dict[str, list[Any]]:
    """``["k=v", ...]`` as ``{k: [values]}``: ``v`` read as JSON (else a string), scalars wrapped.

    Raises :class:`InvalidArgument` naming ``--set`` for an item without ``=``.
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument("--set", item, "expected AXIS=VALUES, e.g. epochs=5")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key.strip()] = value if isinstance(value, list) else [value]
    return check_overrides(out)


def _list(found: Any) -> int:
    rows = []
    for name, exp in sorted(found.experiments.items()):
        counts = " / ".join(str(len(cells(exp, p))) for p in PROFILES)
        rows.append(f"{name:<18} {','.join(exp.claims) or '-':<10} {counts:<18} {exp.title}")
    print(f"{'experiment':<18} {'claims':<10} {'cells ' + '/'.join(PROFILES):<18} title")
    print("\n".join(rows))
    for mod, err in sorted(found.errors.items()):
        print(f"(not loaded: {mod}: {err.splitlines()[-1] if err else '?'})")
    return 0


def run(args: argparse.Namespace) -> int:
    found = discover(args.experiments_dir)
    if args.list:
        return _list(found)
    if not args.experiment:
        raise InvalidArgument("experiment", [], "name at least one experiment, or 'all'")
    names = resolve_names(list(args.experiment), sorted(found.experiments))
    everything = any(n.lower() == "all" for n in args.experiment)
    if not names and not everything:
        hint = f"; modules that failed to load: {sorted(found.errors)}" if found.errors else ""
        raise InvalidArgument("experiment", args.experiment, f"no experiment selected{hint}")
    selected = [found.experiments[n] for n in names]
    broken = dict(found.errors) if everything else {}
    workers = args.workers if args.workers is not None else args.jobs
    if workers is None:
        workers = available_cores()
    if workers < 1:
        raise InvalidArgument("--workers", workers, "must be >= 1")
    if args.seeds is not None and args.seeds < 1:
        raise InvalidArgument("--seeds", args.seeds, "must be >= 1")
    overrides = parse_overrides(list(args.set))
    unknown = [k for k in overrides if not any(k in e.grids[args.profile] for e in selected)]
    if unknown:
        raise InvalidArgument(
            "--set", unknown, f"no selected experiment has these axes in profile {args.profile!r}"
        )
    device = check_device(args.device)
    data = check_data(args.data, args.data_dir)
    ctx = RunContext(
        data=data,
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
    label = " ".join(args.experiment)
    if args.dry_run:
        total_todo = total_skip = 0
        for exp in selected:
            todo, skipped = pending_cells(
                [exp], args.profile, data, store, seeds=args.seeds, overrides=overrides
            )
            total_todo, total_skip = total_todo + len(todo), total_skip + skipped
            print(f"{exp.name}: {len(todo)} cells to run, {skipped} already stored")
        print(f"dry run: {total_todo} cells to run, {total_skip} already stored -> {store.root}")
        return 0
    try:
        summary = run_grid(
            selected,
            args.profile,
            ctx,
            store,
            backend=args.backend,
            workers=workers,
            root=found.root,
            seeds=args.seeds,
            ray_address=args.ray_address,
            overrides=overrides,
        )
    except Interrupted as exc:
        _print_quarantined(store)
        _note(store, args, label, names, workers, exc.summary, interrupted=True)
        print(str(exc), file=sys.stderr, flush=True)
        return 130
    _print_quarantined(store)
    seeds = "" if args.seeds is None else f" --seeds {args.seeds}"
    seeds += "".join(f" --set '{k}={json.dumps(v)}'" for k, v in overrides.items())
    print(
        f"run {label} --profile {args.profile}{seeds} --data {args.data}: "
        f"{summary.finished} cells finished, {summary.skipped} already stored, "
        f"{len(summary.failed)} failed in {summary.seconds:.1f} s "
        f"({summary.backend}, {workers} worker(s)) -> {store.root}"
    )
    _note(store, args, label, names, workers, summary)
    for name, config, err in summary.failed:
        last = err.strip().splitlines()[-1] if err.strip() else "unknown error"
        print(f"conserve-verified run: FAILED {name} {config}: {last}", file=sys.stderr)
    return 0 if summary.ok and not broken else 1
