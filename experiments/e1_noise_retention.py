"""E1: retention of clean accuracy under Gaussian noise at every boundary.

Three arms of the same modular MLP, trained clean: ``baseline`` (plain
pipeline), ``energy_penalized`` (loss ``CE + λ·E``), ``conserved`` (``C_E`` at
every boundary, unit RMS per feature).  Each is evaluated with Gaussian noise
added at every boundary, over a σ grid including 0.2, under both noise
conventions (absolute σ per feature; σ relative to each boundary's RMS).
Retention = 100 · noisy / clean accuracy.  Paper (CIFAR-10, σ = 0.2, 5 seeds):
conserved 77.4 ± 1.0, baseline 35.1 ± 1.1, energy-penalised 30.9 ± 0.9.
"""

from __future__ import annotations

import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from conserve_verified.atomic import atomic_savefig
from conserve_verified.runner.claims import claim
from conserve_verified.runner.conservation import (
    CONVENTIONS,
    stored_retention,
    train_and_sweep,
)
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.stats import hedges_g, welch
from conserve_verified.runner.tables import fmt_ci, fmt_p, group_by, markdown_table, values
from conserve_verified.runner.verdict import difference_row, level_row

NAME = "e1"
TITLE = "E1: retention under Gaussian noise at every boundary (baseline / penalised / conserved)"
CLAIMS = ("E1",)

_SIGMAS = [0.05, 0.1, 0.2, 0.5, 1.0]
_ARMS = ["baseline", "energy_penalized", "conserved"]
_COMMON = {"model": ["mlp"], "depth": [4], "width": [64], "penalty": [0.1], "sigmas": [_SIGMAS]}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {"arm": _ARMS, **_COMMON, "epochs": [2], "max_train": [400], "seed": [0]},
    "quick": {"arm": _ARMS, **_COMMON, "epochs": [30], "max_train": [None], "seed": list(range(5))},
    "paper": {
        "arm": _ARMS,
        **_COMMON,
        "epochs": [100],
        "max_train": [None],
        "seed": list(range(5)),
    },
}


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    seed = int(config["seed"])
    return train_and_sweep(
        config, ctx, config["sigmas"], lambda c, s: 1_000_003 * seed + 101 * c + s
    )


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """Paper-vs-ours rows for claim E1 (σ = 0.2, absolute convention as in the paper)."""
    paper = claim("E1")["values"]
    by_arm = group_by(records, lambda r: r["config"]["arm"])
    data = records[0]["data"] if records else "?"
    note = f"paper: CIFAR-10; ours: {data}"
    rows = []
    for conv in CONVENTIONS:
        ret = {
            a: values(by_arm.get(a, []), lambda r, c=conv: stored_retention(r, 0.2, c))
            for a in _ARMS
        }
        tag = "σ=0.2 " + ("(absolute, as in paper)" if conv == "absolute" else "(SNR-matched)")
        for arm in _ARMS:
            mean, sd = paper[arm]
            rows.append(level_row("E1", f"retention % {arm}, {tag}", mean, ret[arm], sd, 5, note))
        rows.append(
            difference_row(
                "E1",
                f"retention conserved − baseline (pp), {tag}",
                paper["conserved"][0] - paper["baseline"][0],
                ret["conserved"],
                ret["baseline"],
                note,
            )
        )
        rows.append(
            difference_row(
                "E1",
                f"retention conserved − energy_penalized (pp), {tag}",
                paper["conserved"][0] - paper["energy_penalized"][0],
                ret["conserved"],
                ret["energy_penalized"],
                note,
            )
        )
    return rows


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    by_arm = group_by(records, lambda r: r["config"]["arm"])
    sigmas = records[0]["config"]["sigmas"] if records else _SIGMAS
    out = [f"## {TITLE}", ""]
    out.append(
        "Retention = 100 · noisy / clean test accuracy, mean [95% CI] (n seeds). "
        "*absolute*: σ per feature (paper's convention); *relative*: σ · RMS of the "
        "activation at each boundary (same SNR for every arm)."
    )
    for conv in CONVENTIONS:
        out += ["", f"**{conv} σ**", ""]
        rows = []
        for arm in _ARMS:
            rs = by_arm.get(arm, [])
            rows.append(
                [arm, fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"]))]
                + [
                    fmt_ci(values(rs, lambda r, s=s, c=conv: stored_retention(r, s, c)))
                    for s in sigmas
                ]
            )
        out.append(markdown_table(["arm", "clean acc %"] + [f"σ={s}" for s in sigmas], rows))
    out += [
        "",
        "Boundary RMS of the clean activation entering each boundary (what noise is added to):",
        "",
    ]
    rows = []
    for arm in _ARMS:
        rs = by_arm.get(arm, [])
        rows.append([arm, fmt_ci(values(rs, lambda r: r["metrics"]["mean_boundary_rms"]), 3)])
    out.append(markdown_table(["arm", "mean boundary RMS"], rows))
    out += ["", "Welch tests at σ = 0.2 (conserved vs each other arm):", ""]
    rows = []
    for conv in CONVENTIONS:
        c = values(by_arm.get("conserved", []), lambda r, c=conv: stored_retention(r, 0.2, c))
        for other in ("baseline", "energy_penalized"):
            o = values(by_arm.get(other, []), lambda r, c=conv: stored_retention(r, 0.2, c))
            if len(c) >= 2 and len(o) >= 2:
                rows.append([conv, other, fmt_p(welch(c, o).p_value), f"{hedges_g(c, o):.2f}"])
            else:
                rows.append([conv, other, "–", "–"])
    out.append(markdown_table(["convention", "vs", "Welch p", "Hedges g"], rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, conv in zip(axes, CONVENTIONS, strict=True):
        for arm in _ARMS:
            rs = by_arm.get(arm, [])
            ms = []
            for s in sigmas:
                v = values(rs, lambda r, s=s, c=conv: stored_retention(r, s, c))
                ms.append(sum(v) / len(v) if v else float("nan"))
            ax.plot(sigmas, ms, marker="o", label=arm)
        ax.set_xscale("log")
        ax.set_title(f"{conv} σ")
        ax.set_xlabel("σ")
    axes[0].set_ylabel("retention %")
    axes[0].legend()
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "e1_retention.png", dpi=100)
    plt.close(fig)
    out += ["", "![E1 retention vs σ](e1_retention.png)", ""]
    return "\n".join(out)
