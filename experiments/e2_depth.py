"""E2: depth invariance -- retention at depths 2–5 with Gaussian noise at every boundary.

Modular MLPs of depth k (k − 1 boundaries), baseline vs conserved, trained
clean, evaluated with σ = 0.2 at every boundary under both conventions.
Paper (CIFAR-10): the conserved pipeline retains 93.3% at each depth.
"""

from __future__ import annotations

import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from conserve_verified.atomic import atomic_savefig
from conserve_verified.runner.claims import claim
from conserve_verified.runner.conservation import CONVENTIONS, train_and_sweep
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, group_by, markdown_table, values
from conserve_verified.runner.verdict import difference_row, level_row

NAME = "e2"
TITLE = "E2: retention vs depth (2–5) with noise at every boundary"
CLAIMS = ("E2",)

_ARMS = ["baseline", "conserved"]
_COMMON = {"model": ["mlp"], "width": [64], "sigma": [0.2]}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "arm": _ARMS,
        "depth": [2, 5],
        **_COMMON,
        "epochs": [2],
        "max_train": [400],
        "seed": [0],
    },
    "quick": {
        "arm": _ARMS,
        "depth": [2, 3, 4, 5],
        **_COMMON,
        "epochs": [20],
        "max_train": [None],
        "seed": list(range(5)),
    },
    "paper": {
        "arm": _ARMS,
        "depth": [2, 3, 4, 5],
        **_COMMON,
        "epochs": [100],
        "max_train": [None],
        "seed": list(range(5)),
    },
}


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    seed = int(config["seed"])
    return train_and_sweep(config, ctx, [config["sigma"]], lambda c, _s: 7_919 * seed + c)


def _ret(r: Record, conv: str) -> float | None:
    for e in r["metrics"]["evaluations"]:
        if e["convention"] == conv:
            return float(e["retention_pct"])
    return None


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """E2: conserved retention at each depth vs the paper's 93.3% (absolute σ = 0.2)."""
    paper = float(claim("E2")["values"]["conserved"])
    rows = []
    groups = group_by(records, lambda r: (r["config"]["depth"], r["config"]["arm"]))
    depths = sorted({r["config"]["depth"] for r in records})
    for conv in CONVENTIONS:
        tag = "absolute σ=0.2, as in paper" if conv == "absolute" else "SNR-matched σ=0.2"
        for d in depths:
            c = values(groups.get((d, "conserved"), []), lambda r, c=conv: _ret(r, c))
            b = values(groups.get((d, "baseline"), []), lambda r, c=conv: _ret(r, c))
            rows.append(level_row("E2", f"retention % conserved, depth {d} ({tag})", paper, c))
            rows.append(
                difference_row(
                    "E2",
                    f"conserved − baseline (pp), depth {d} ({tag})",
                    paper - paper,
                    c,
                    b,
                    "paper gives no baseline; 0 = no advantage",
                )
            )
    return rows


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    groups = group_by(records, lambda r: (r["config"]["depth"], r["config"]["arm"]))
    depths = sorted({r["config"]["depth"] for r in records})
    out = [f"## {TITLE}", "", "Retention % (mean [95% CI] (n)); σ = 0.2 at every boundary.", ""]
    rows = []
    for d in depths:
        for arm in _ARMS:
            rs = groups.get((d, arm), [])
            rows.append(
                [d, arm, fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"]))]
                + [fmt_ci(values(rs, lambda r, c=c: _ret(r, c))) for c in CONVENTIONS]
                + [fmt_ci(values(rs, lambda r: r["metrics"]["mean_boundary_rms"]), 3)]
            )
    out.append(
        markdown_table(
            [
                "depth",
                "arm",
                "clean acc %",
                "retention (absolute)",
                "retention (relative)",
                "boundary RMS",
            ],
            rows,
        )
    )
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, conv in zip(axes, CONVENTIONS, strict=True):
        for arm in _ARMS:
            ms = []
            for d in depths:
                v = values(groups.get((d, arm), []), lambda r, c=conv: _ret(r, c))
                ms.append(sum(v) / len(v) if v else float("nan"))
            ax.plot(depths, ms, marker="o", label=arm)
        ax.set_title(f"{conv} σ = 0.2")
        ax.set_xlabel("depth")
    axes[0].set_ylabel("retention %")
    axes[0].legend()
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "e2_depth.png", dpi=100)
    plt.close(fig)
    out += ["", "![E2 retention vs depth](e2_depth.png)", ""]
    return "\n".join(out)
