"""E5: a MuJoCo Franka Panda perception -> control pipeline under monocular-depth-style noise.

Perception (a CNN on a 32x32 ray-cast depth image of the table) produces a
feature vector; the boundary between perception and control is plain or
conserved (``Conserved``, ``E = feature_dim``); control is a learned head
mapping the features to a Cartesian goal followed by a damped-least-squares
reaching controller in MuJoCo.  Success: the end-effector comes within
``TOLERANCE`` of the TRUE target within ``TIME_LIMIT`` without self-collision.
Noise (see :mod:`.noise_models`) acts on the depth image and on the boundary
features.  The paper reports +18.9 pp success for the conserved pipeline under
monocular-depth-style noise (3 runs x 90 trials per cell).

Cells: ``seed`` (one run: its own training set, initial weights and test
targets) x ``arm`` x ``noise`` x ``sigma``; ``trials``, ``n_train``, ``epochs``
and ``image_size`` are fixed per profile.
"""

from __future__ import annotations

import pathlib
from typing import Any

from .cell import run
from .report import make_report

NAME = "e5_panda"
CLAIMS: tuple[str, ...] = ("E5",)
TITLE = "E5: Franka Panda perception -> control under monocular-depth-style noise (MuJoCo)"

_ARMS = ["plain", "conserved"]
_NOISES = ["monodepth", "gaussian"]

GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "seed": [0],
        "arm": _ARMS,
        "noise": ["monodepth"],
        "sigma": [0.0, 0.3],
        "trials": [6],
        "n_train": [200],
        "epochs": [3],
        "image_size": [32],
    },
    "quick": {
        "seed": [0, 1, 2],
        "arm": _ARMS,
        "noise": _NOISES,
        "sigma": [0.0, 0.1, 0.3],
        "trials": [40],
        "n_train": [1200],
        "epochs": [15],
        "image_size": [32],
    },
    "paper": {
        "seed": [0, 1, 2],
        "arm": _ARMS,
        "noise": _NOISES,
        "sigma": [0.0, 0.1, 0.2, 0.3],
        "trials": [90],
        "n_train": [2000],
        "epochs": [25],
        "image_size": [32],
    },
}


def run_cell(config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """One cell (see :mod:`.cell`); trained pipelines are cached under ``ctx.out_dir``."""
    out_dir = getattr(ctx, "out_dir", None)
    return run(config, pathlib.Path(out_dir) if out_dir is not None else None)


def report(records: list[dict[str, Any]], out_dir: pathlib.Path) -> str:
    """Markdown section: success rates with Wilson CIs, conserved - plain with Newcombe CIs,
    paired McNemar tests, verdict against +18.9 pp, and pictures."""
    return make_report(records, pathlib.Path(out_dir), TITLE)
