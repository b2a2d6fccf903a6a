"""E5: a MuJoCo Franka Panda perception -> control pipeline under decomposed depth noise.

Perception (a CNN on a 32x32 ray-cast depth image of the table) produces a
feature vector; the boundary between perception and control is plain or
conserved (``Conserved``, ``E = feature_dim``); control is a learned head
mapping the features to a Cartesian goal followed by a damped-least-squares
reaching controller in MuJoCo.  Success: the end-effector comes within
``TOLERANCE`` of the TRUE target within ``TIME_LIMIT`` without self-collision.

Where the noise enters relative to ``C_E``: the image term acts on the depth
map before perception (no ``C_E`` there); the boundary terms act on the
features: plain ``encoder -> n -> head``; conserved ``encoder -> n -> C_E ->
head``; the normalisation-only control (conserved weights)
``encoder -> C_E -> n -> head``.  The conditions (:mod:`.noise_models`)
separate the image term, the per-feature boundary term and the per-sample
feature-scale term (which the conserved arm cancels exactly by construction,
T3), and their combinations.  The paper reports +18.9 pp success for the
conserved pipeline under monocular-depth-style noise (3 runs x 90 trials).

Statistics: the unit is the run (seed: its own training set, weights and test
targets); differences are paired per trial and analysed with seed-level
clustered t intervals (:func:`~conserve_verified.runner.paired.clustered_difference`)
and a CMH test stratified by seed, separately for every (condition, σ).

Cells: ``seed`` x ``arm``; each cell evaluates every condition and σ.
"""

from __future__ import annotations

import pathlib
from typing import Any

from .cell import run
from .report import claim_rows as _claim_rows
from .report import make_report

NAME = "e5_panda"
CLAIMS: tuple[str, ...] = ("E5",)
TITLE = "E5: Franka Panda perception -> control under decomposed depth noise (MuJoCo)"
DATA_LABEL = "MuJoCo Franka Panda (simulated)"

_ARMS = ["plain", "conserved"]
_CONDITIONS = ["image", "boundary", "scale", "both", "all"]

GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "seed": [0],
        "arm": _ARMS,
        "conditions": [["image", "scale", "both"]],
        "sigmas": [[0.3]],
        "curve_sigmas": [[0.3]],
        "trials": [6],
        "curve_targets": [10],
        "n_train": [200],
        "epochs": [3],
        "image_size": [32],
    },
    "quick": {
        "seed": [0, 1, 2],
        "arm": _ARMS,
        "conditions": [_CONDITIONS],
        "sigmas": [[0.1, 0.3]],
        "curve_sigmas": [[0.05, 0.1, 0.2, 0.3, 0.5]],
        "trials": [30],
        "curve_targets": [100],
        "n_train": [1200],
        "epochs": [15],
        "image_size": [32],
    },
    "paper": {
        "seed": [0, 1, 2],
        "arm": _ARMS,
        "conditions": [[*_CONDITIONS, "gaussian"]],
        "sigmas": [[0.1, 0.2, 0.3]],
        "curve_sigmas": [[0.05, 0.1, 0.2, 0.3, 0.5]],
        "trials": [90],
        "curve_targets": [300],
        "n_train": [2000],
        "epochs": [25],
        "image_size": [32],
    },
}


def run_cell(config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """One cell (see :mod:`.cell`); trained pipelines are cached under ``ctx.out_dir``."""
    out_dir = getattr(ctx, "out_dir", None)
    return run(config, pathlib.Path(out_dir) if out_dir is not None else None)


def claim_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """E5 rows: per (condition, σ) the total / conservation / normalisation effects on the
    success rate (pp, seed-clustered), Holm-adjusted (see :func:`.report.claim_rows`)."""
    return _claim_rows(records)


def report(records: list[dict[str, Any]], out_dir: pathlib.Path) -> str:
    """Markdown section: the decomposition table (success per arm, effects with seed-level
    clustered CIs and CMH tests per condition and σ), goal-error curves and pictures."""
    return make_report(records, pathlib.Path(out_dir), TITLE)
