"""The experiment protocol: what an experiment module defines and what it receives.

An experiment is a module ``experiments/<name>.py`` (or a package
``experiments/<name>/__init__.py``) defining at module level:

``NAME: str``
    unique id, e.g. ``"e1"``.
``CLAIMS: tuple[str, ...]``
    ids of claims in ``claims.json`` the experiment speaks to (may be empty).
``TITLE: str``
    one-line human title.
``GRIDS: dict[str, dict[str, list]]``
    for each profile ``"smoke"``, ``"quick"``, ``"paper"``: parameter name ->
    list of values.  A profile's grid is the Cartesian product of its lists and
    must contain ``"seed"``.
``run_cell(config: dict, ctx: RunContext) -> dict``
    runs one cell (one configuration including its seed) and returns
    JSON-serialisable metrics; deterministic given ``config``.
``report(records: list[dict], out_dir: pathlib.Path) -> str``
    Markdown section for the experiment's records (dicts with keys
    ``"experiment"``, ``"config"``, ``"metrics"``); writes its PNG plots into
    ``out_dir`` and links them relatively.

Optional:

``claim_rows(records: list[dict]) -> list[dict]``
    paper-vs-ours rows for the claims table (:mod:`.verdict`), one call per
    (experiment, dataset) group of records.
``DATA_LABEL: str``
    what the cells run on when it is not just the run's ``--data`` (a
    simulator, a grid axis of datasets); ``{data}`` in it stands for the run's
    dataset label.  The report labels the experiment's rows with it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch

__all__ = [
    "PROFILES",
    "Experiment",
    "Record",
    "RunContext",
]

#: Profiles every experiment defines a grid for, cheapest first.
PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")

#: A stored result: ``{"experiment", "config", "metrics", ...}``.
Record = dict[str, Any]


@dataclass(frozen=True)
class RunContext:
    """What ``run_cell`` receives besides its configuration.

    Attributes:
        data: dataset name (see :data:`conserve_verified.data.DATASETS`).
        data_dir: directory with local dataset files (CIFAR-10, MNIST), or ``None``.
        out_dir: the run's output directory (experiments may write artefacts under it).
        device: torch device to compute on.
        profile: the profile being run (``"smoke"``, ``"quick"`` or ``"paper"``).
    """

    data: str = "digits"
    data_dir: pathlib.Path | None = None
    out_dir: pathlib.Path = field(default_factory=lambda: pathlib.Path("results"))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    profile: str = "smoke"


@dataclass(frozen=True)
class Experiment:
    """A validated experiment module (built by :func:`..spec.validate_module`)."""

    name: str
    title: str
    claims: tuple[str, ...]
    grids: dict[str, dict[str, list[Any]]]
    run_cell: Callable[[dict[str, Any], RunContext], dict[str, Any]]
    report: Callable[[list[Record], pathlib.Path], str]
    module: ModuleType
