"""E4: ResNet-18 adapted to small images, with and without BatchNorm, σ = 0.2 and 0.5.

ResNet-18 (3×3 stem, no max-pool; stages stem, layer1–4, head → five
boundaries), baseline vs conserved (``C_E`` with unit RMS per feature at each
stage boundary), trained clean, evaluated with Gaussian noise at every
boundary under both conventions.  Advantage = conserved − baseline retention
(pp).  Paper (CIFAR-10): +0.3 with BatchNorm at σ = 0.2, +26.2 without
BatchNorm at σ = 0.2, +58.0 without BatchNorm at σ = 0.5.
"""

from __future__ import annotations

import pathlib
from typing import Any

from conserve_verified.runner.claims import claim
from conserve_verified.runner.conservation import (
    CONVENTIONS,
    stored_retention,
    train_and_sweep,
)
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, group_by, markdown_table, values
from conserve_verified.runner.verdict import difference_row

NAME = "e4"
TITLE = "E4: ResNet-18 with / without BatchNorm under boundary noise"
CLAIMS = ("E4",)

_ARMS = ["baseline", "conserved"]
_SIGMAS = [0.2, 0.5]
_COMMON = {"model": ["resnet18"], "batchnorm": [True, False], "sigmas": [_SIGMAS]}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "arm": _ARMS,
        **_COMMON,
        "width": [4],
        "epochs": [1],
        "max_train": [300],
        "seed": [0],
    },
    "quick": {
        "arm": _ARMS,
        **_COMMON,
        "width": [8],
        "epochs": [8],
        "max_train": [None],
        "seed": list(range(5)),
    },
    "paper": {
        "arm": _ARMS,
        **_COMMON,
        "width": [64],
        "epochs": [100],
        "max_train": [None],
        "seed": list(range(5)),
    },
}


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    seed = int(config["seed"])
    return train_and_sweep(
        config, ctx, config["sigmas"], lambda c, s: 15_485_863 * seed + 10 * c + s
    )


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """E4: conserved − baseline retention (pp) for the paper's three settings."""
    paper = claim("E4")["values"]
    g = group_by(records, lambda r: (r["config"]["batchnorm"], r["config"]["arm"]))
    settings = [
        ("with_batchnorm_sigma0.2", True, 0.2),
        ("without_batchnorm_sigma0.2", False, 0.2),
        ("without_batchnorm_sigma0.5", False, 0.5),
    ]
    rows = []
    for conv in CONVENTIONS:
        tag = "absolute, as in paper" if conv == "absolute" else "SNR-matched"
        for key, bn, sigma in settings:
            c = values(
                g.get((bn, "conserved"), []), lambda r, s=sigma, v=conv: stored_retention(r, s, v)
            )
            b = values(
                g.get((bn, "baseline"), []), lambda r, s=sigma, v=conv: stored_retention(r, s, v)
            )
            label = f"advantage (pp), {'with' if bn else 'without'} BN, σ={sigma} ({tag})"
            rows.append(difference_row("E4", label, float(paper[key]), c, b))
    return rows


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    g = group_by(records, lambda r: (r["config"]["batchnorm"], r["config"]["arm"]))
    width = records[0]["config"]["width"] if records else "?"
    out = [
        f"## {TITLE}",
        "",
        f"Base width {width}. Retention % (mean [95% CI] (n)) with Gaussian noise at all five "
        "stage boundaries.",
        "",
    ]
    header = (
        ["BatchNorm", "arm", "clean acc %"]
        + [f"σ={s} ({c})" for c in CONVENTIONS for s in _SIGMAS]
        + ["boundary RMS"]
    )
    rows = []
    for bn in (True, False):
        for arm in _ARMS:
            rs = g.get((bn, arm), [])
            rows.append(
                [
                    "with" if bn else "without",
                    arm,
                    fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"])),
                ]
                + [
                    fmt_ci(values(rs, lambda r, s=s, c=c: stored_retention(r, s, c)))
                    for c in CONVENTIONS
                    for s in _SIGMAS
                ]
                + [fmt_ci(values(rs, lambda r: r["metrics"]["mean_boundary_rms"]), 3)]
            )
    out.append(markdown_table(header, rows))
    out.append("")
    return "\n".join(out)
