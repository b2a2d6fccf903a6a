"""The experiment runner: specs, profiles, seeds, resumable store, backends, statistics, report.

Protocol (what an experiment module defines): :mod:`.protocol`.  Typical use::

    from conserve_verified.runner import discover, run_grid, ResultStore, RunContext

    found = discover()                       # validated experiments by NAME
    store = ResultStore("results")
    summary = run_grid([found.experiments["e1"]], "smoke", RunContext(), store, workers=2)
    frame = load_records("results")          # pandas.DataFrame, one row per cell

Modules: :mod:`.protocol` (``RunContext``, ``Experiment``), :mod:`.spec`
(validation, grid cells, keys), :mod:`.discovery`, :mod:`.store` (atomic
records), :mod:`.execute` (seeding, local backend, resume), :mod:`.ray_backend`,
:mod:`.stats` (CIs, Welch, effect sizes, ANOVA), :mod:`.claims`.
"""

from __future__ import annotations

from .discovery import Discovery, discover, experiments_root
from .execute import BACKENDS, RunSummary, execute_cell, run_grid, seed_everything
from .protocol import PROFILES, Experiment, Record, RunContext
from .spec import cells, config_key, validate_module
from .store import ResultStore, load_records

__all__ = [
    "BACKENDS",
    "PROFILES",
    "Discovery",
    "Experiment",
    "Record",
    "ResultStore",
    "RunContext",
    "RunSummary",
    "cells",
    "config_key",
    "discover",
    "execute_cell",
    "experiments_root",
    "load_records",
    "run_grid",
    "seed_everything",
    "validate_module",
]
