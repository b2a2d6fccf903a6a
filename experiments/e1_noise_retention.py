"""E1: retention of clean accuracy under Gaussian noise at every boundary, attributed.

Arms of the same modular MLP, trained clean: ``baseline`` (plain pipeline),
``energy_penalized`` (loss ``CE + λ·E``), and ``conserved`` at several energies
per feature ``E`` (``conserved`` = 1, ``conserved:E=baseline`` = the same-seed
baseline's RMS² at each boundary, ``conserved:E=4``, ``conserved:E=25``).

Where the noise enters relative to ``C_E`` (boundary hook ``n``):
baseline ``stage -> n -> stage``; conserved ``stage -> C_E -> n -> C_E -> stage``;
the normalisation-only control, evaluated on the conserved weights,
``stage -> C_E -> n -> stage`` (no re-projection; see
:mod:`conserve_verified.runner.conservation`).  So *conserved − control* is the
conservation effect (the re-projection after the noise) and *control −
baseline* the normalisation effect.

Gaussian noise at every boundary over a σ grid including 0.2, under both
conventions: SNR-matched (headline; σ times the RMS of the CLEAN activation
at that boundary) and absolute σ per feature (the paper's; E-dependent).
Every noisy accuracy is the mean of 20 noise draws per trained model; arms are
compared paired by seed; Holm correction across the rows of the claim.
Retention = 100 · noisy / clean accuracy.  Paper (CIFAR-10, σ = 0.2, 5 seeds):
conserved 77.4 ± 1.0, baseline 35.1 ± 1.1, energy-penalised 30.9 ± 0.9.
The quick profile trains on at most 5,000 samples (a seeded subset) and tests on
the first 2,000: no-ops on digits, a cap for Fashion-MNIST.
"""

from __future__ import annotations

import pathlib
from functools import partial
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from conserve_verified.atomic import atomic_savefig
from conserve_verified.runner.claims import claim
from conserve_verified.runner.conservation import (
    attribution_of,
    attribution_rows,
    attribution_table,
    ci_band_plot,
    energy_label,
    per_seed,
    stored,
    train_and_sweep,
)
from conserve_verified.runner.paired import pair_by_seed, paired_difference
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, group_by, markdown_table, values
from conserve_verified.runner.verdict import effect_row, holm_adjust, level_row

NAME = "e1"
TITLE = "E1: retention under Gaussian noise at every boundary (conservation vs normalisation)"
CLAIMS = ("E1",)

_SIGMAS = [0.1, 0.2, 0.5, 1.0]
_CONSERVED = ["conserved", "conserved:E=baseline", "conserved:E=4", "conserved:E=25"]
_ARMS = ["baseline", "energy_penalized", *_CONSERVED]
_CONV_TAGS = {"relative": "SNR-matched (clean RMS)", "absolute": "absolute σ, E-dependent"}
_COMMON: dict[str, list[Any]] = {
    "model": ["mlp"],
    "depth": [4],
    "width": [64],
    "penalty": [0.1],
    "sigmas": [_SIGMAS],
    "draws": [20],
}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "arm": ["baseline", "energy_penalized", "conserved"],
        **_COMMON,
        "draws": [2],
        "epochs": [2],
        "max_train": [400],
        "seed": [0],
    },
    "quick": {
        "arm": _ARMS,
        **_COMMON,
        "epochs": [15],
        "max_train": [5000],
        "max_test": [2000],
        "seed": list(range(4)),
    },
    "paper": {
        "arm": _ARMS,
        **_COMMON,
        "epochs": [100],
        "max_train": [None],
        "seed": list(range(10)),
    },
}


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    seed = int(config["seed"])
    return train_and_sweep(
        config,
        ctx,
        config["sigmas"],
        lambda c, s, d: 1_000_003 * seed + 100_003 * c + 1_009 * s + d,
    )


def _per_seed(
    by_arm: dict[str, list[Record]],
    arm: str,
    sigma: float,
    conv: str,
    eval_arm: str | None = None,
    field: str = "retention_pct",
) -> dict[int, float]:
    return per_seed(
        by_arm.get(arm, []),
        lambda r: stored(r, level=sigma, convention=conv, eval_arm=eval_arm, field=field),
    )


def _estimates(
    by_arm: dict[str, list[Record]], arm: str, sigma: float, conv: str, field: str
) -> dict[str, Any]:
    return attribution_of(
        by_arm.get("baseline", []),
        by_arm.get(arm, []),
        lambda r, ev: stored(r, level=sigma, convention=conv, eval_arm=ev, field=field),
    )


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """E1 rows at σ = 0.2: attribution (total / conservation / normalisation) for each
    convention and E, paper levels at E = 1, conserved − energy-penalised; Holm-adjusted."""
    paper = claim("E1")["values"]
    total = paper["conserved"][0] - paper["baseline"][0]
    by_arm = group_by(records, lambda r: r["config"]["arm"])
    data = records[0]["data"] if records else "?"
    note = f"paper: CIFAR-10; ours: {data}"
    rows: list[dict[str, Any]] = []
    for conv in ("relative", "absolute"):
        tag = _CONV_TAGS[conv]
        for arm in _CONSERVED:
            if arm not in by_arm:
                continue
            est = _estimates(by_arm, arm, 0.2, conv, "retention_pct")
            label = f"retention σ=0.2, {tag}, {energy_label(arm)}"
            rows += attribution_rows("E1", label, total, est, note)
        for arm in ("baseline", "energy_penalized", "conserved"):
            mean, sd = paper[arm]
            v = values(by_arm.get(arm, []), partial(stored, level=0.2, convention=conv))
            rows.append(
                level_row("E1", f"retention % {arm}, σ=0.2, {tag}, E=1", mean, v, sd, 5, note)
            )
        a, b, _ = pair_by_seed(
            _per_seed(by_arm, "conserved", 0.2, conv),
            _per_seed(by_arm, "energy_penalized", 0.2, conv),
        )
        if a:
            rows.append(
                effect_row(
                    "E1",
                    f"retention conserved − energy_penalized (pp), σ=0.2, {tag}, E=1",
                    paper["conserved"][0] - paper["energy_penalized"][0],
                    paired_difference(a, b, zero_variance="sign-test"),
                    note=note,
                )
            )
    return holm_adjust(rows)


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    by_arm = group_by(records, lambda r: r["config"]["arm"])
    sigmas = records[0]["config"]["sigmas"] if records else _SIGMAS
    rows_claim = claim_rows(records)
    out = [f"## {TITLE}", ""]
    out.append(
        "Mean [95% CI] (n seeds); every noisy accuracy is the mean of "
        f"{records[0]['config'].get('draws', 20) if records else 20} noise draws per model. "
        "*relative* (headline): σ · RMS of the CLEAN activation at each boundary (same SNR "
        "for every arm); *absolute*: σ per feature (paper's convention; depends on the "
        "conserved arm's E and on the baseline's activation scale). *normalized* = the "
        "conserved weights evaluated without the re-projection after the noise "
        "(normalisation-only control)."
    )
    for conv in ("relative", "absolute"):
        for field, what in (("retention_pct", "retention %"), ("accuracy", "noisy accuracy %")):
            out += ["", f"**{what}, {conv} σ**", ""]
            rows = []
            for arm in _ARMS:
                evals = ("conserved", "normalized") if arm.startswith("conserved") else (None,)
                for ev in evals:
                    rs = by_arm.get(arm, [])
                    if not rs:
                        continue
                    name = arm if ev is None else f"{arm} [{ev}]"
                    rows.append(
                        [name, fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"]))]
                        + [
                            fmt_ci(
                                values(
                                    rs,
                                    partial(
                                        stored, level=s, convention=conv, eval_arm=ev, field=field
                                    ),
                                )
                            )
                            for s in sigmas
                        ]
                    )
            out.append(
                markdown_table(["arm [eval]", "clean acc %"] + [f"σ={s}" for s in sigmas], rows)
            )
    out += [
        "",
        "**Attribution** (retention, pp; paired by seed: mean [95% paired-t CI] (n seeds), "
        "raw p / Holm-adjusted p across E1's rows (verdict)):",
        "",
    ]
    table = []
    for conv in ("relative", "absolute"):
        for s in sigmas:
            for arm in _CONSERVED:
                if arm in by_arm:
                    label = f"retention σ={s}, {_CONV_TAGS[conv]}, {energy_label(arm)}"
                    table.append((label, _estimates(by_arm, arm, s, conv, "retention_pct")))
    out.append(attribution_table(table, rows_claim))
    out += [
        "",
        "Boundary RMS of the clean activation entering each boundary (what absolute noise "
        "is compared with):",
        "",
        markdown_table(
            ["arm", "mean boundary RMS"],
            [
                [
                    a,
                    fmt_ci(
                        values(by_arm.get(a, []), lambda r: r["metrics"]["mean_boundary_rms"]), 3
                    ),
                ]
                for a in _ARMS
                if a in by_arm
            ],
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, conv in zip(axes[:2], ("relative", "absolute"), strict=True):
        series = {}
        for name, arm, ev in (
            ("baseline", "baseline", None),
            ("energy_penalized", "energy_penalized", None),
            ("normalized control (E=1)", "conserved", "normalized"),
            ("conserved (E=1)", "conserved", "conserved"),
        ):
            series[name] = [
                values(
                    by_arm.get(arm, []),
                    partial(stored, level=s, convention=conv, eval_arm=ev),
                )
                for s in sigmas
            ]
        ci_band_plot(ax, sigmas, series)
        ax.set_xscale("log")
        ax.set_title(f"{conv} σ (95% CI bands)")
        ax.set_xlabel("σ")
        ax.set_ylabel("retention %")
        ax.legend(fontsize=7)
    ax = axes[2]
    present = [a for a in _CONSERVED if a in by_arm]
    xs = list(range(len(present)))
    for conv in ("relative", "absolute"):
        series = {
            f"{ev} ({conv})": [
                values(
                    by_arm[a],
                    partial(stored, level=0.2, convention=conv, eval_arm=ev),
                )
                for a in present
            ]
            for ev in ("conserved", "normalized")
        }
        ci_band_plot(ax, xs, series)
    ax.set_xticks(xs, [energy_label(a) for a in present])
    ax.set_title("retention at σ=0.2 vs E")
    ax.set_ylabel("retention %")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "e1_retention.png", dpi=100)
    plt.close(fig)
    out += ["", "![E1 retention vs σ and vs E](e1_retention.png)", ""]
    return "\n".join(out)
