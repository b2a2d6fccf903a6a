"""E2: depth invariance -- retention at depths 2–5 with Gaussian noise at every boundary.

Modular MLPs of depth k (k − 1 boundaries), baseline vs conserved (``E = 1``
per feature), trained clean, evaluated with σ = 0.2 at every boundary under
both conventions (SNR-matched from the CLEAN activation's RMS, the headline;
absolute σ, E-dependent), 20 noise draws per trained model.

Where the noise enters relative to ``C_E``: baseline ``stage -> n -> stage``;
conserved ``stage -> C_E -> n -> C_E -> stage``; the normalisation-only
control (the conserved weights, no re-projection) ``stage -> C_E -> n -> stage``.
The noise seeds depend on (seed, depth, convention, draw), not on the arm.
Paper (CIFAR-10): the conserved pipeline retains 93.3% at each depth.
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
    NON_EFFECT_MARGIN,
    attribution_of,
    attribution_rows,
    attribution_table,
    ci_band_plot,
    per_seed,
    stored,
    train_and_sweep,
)
from conserve_verified.runner.paired import pair_by_seed, paired_difference
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, group_by, markdown_table, values
from conserve_verified.runner.verdict import effect_row, holm_adjust, level_row

NAME = "e2"
TITLE = "E2: retention vs depth (2–5) with noise at every boundary (conservation vs normalisation)"
CLAIMS = ("E2",)

_ARMS = ["baseline", "conserved"]
_CONV_TAGS = {"relative": "SNR-matched (clean RMS)", "absolute": "absolute σ, E-dependent"}
_COMMON: dict[str, list[Any]] = {"model": ["mlp"], "width": [64], "sigma": [0.2], "draws": [20]}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "arm": _ARMS,
        "depth": [2, 5],
        **_COMMON,
        "draws": [2],
        "epochs": [2],
        "max_train": [400],
        "seed": [0],
    },
    "quick": {
        "arm": _ARMS,
        "depth": [2, 3, 4, 5],
        **_COMMON,
        "epochs": [15],
        "max_train": [5000],
        "max_test": [2000],
        "seed": list(range(3)),
    },
    "paper": {
        "arm": _ARMS,
        "depth": [2, 3, 4, 5],
        **_COMMON,
        "epochs": [100],
        "max_train": [None],
        "seed": list(range(10)),
    },
}


def noise_seed(seed: int, depth: int, convention: int, draw: int) -> int:
    """Seed of one noise draw: a function of (seed, depth, convention, draw), not of the arm."""
    return 7_919 * seed + 104_729 * depth + 1_009 * convention + draw


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    seed, depth = int(config["seed"]), int(config["depth"])
    return train_and_sweep(
        config, ctx, [config["sigma"]], lambda c, _s, d: noise_seed(seed, depth, c, d)
    )


def _get(r: Record, conv: str, eval_arm: str | None = None, field: str = "retention_pct") -> Any:
    return stored(
        r, level=float(r["config"]["sigma"]), convention=conv, eval_arm=eval_arm, field=field
    )


def _estimates(groups: dict[Any, list[Record]], d: int, conv: str) -> dict[str, Any]:
    return attribution_of(
        groups.get((d, "baseline"), []),
        groups.get((d, "conserved"), []),
        lambda r, ev: _get(r, conv, ev),
    )


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """E2: conserved retention at each depth vs 93.3%; attribution per depth; the depth
    slope (deepest − shallowest, paired by seed, claimed 0); Holm-adjusted."""
    paper = float(claim("E2")["values"]["conserved"])
    rows: list[dict[str, Any]] = []
    groups = group_by(records, lambda r: (r["config"]["depth"], r["config"]["arm"]))
    depths = sorted({r["config"]["depth"] for r in records})
    for conv in ("relative", "absolute"):
        tag = _CONV_TAGS[conv]
        for d in depths:
            cons = groups.get((d, "conserved"), [])
            for ev in ("conserved", "normalized"):
                v = values(cons, partial(_get, conv=conv, eval_arm=ev))
                rows.append(level_row("E2", f"retention % {ev}, depth {d}, σ=0.2, {tag}", paper, v))
            rows += attribution_rows(
                "E2",
                f"retention depth {d}, σ=0.2, {tag}",
                None,
                _estimates(groups, d, conv),
                "paper gives no baseline; no paper value for the advantage",
            )
        if len(depths) >= 2:
            lo, hi = depths[0], depths[-1]
            for ev in ("conserved", "normalized"):
                a, b, _ = pair_by_seed(
                    per_seed(
                        groups.get((hi, "conserved"), []), partial(_get, conv=conv, eval_arm=ev)
                    ),
                    per_seed(
                        groups.get((lo, "conserved"), []), partial(_get, conv=conv, eval_arm=ev)
                    ),
                )
                if a:
                    rows.append(
                        effect_row(
                            "E2",
                            f"depth invariance: retention depth {hi} − {lo} (pp), {ev}, {tag}",
                            0.0,
                            paired_difference(a, b, zero_variance="sign-test"),
                            margin=NON_EFFECT_MARGIN,
                            note="claimed invariance: 0 within ±2 pp",
                        )
                    )
    return holm_adjust(rows)


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    groups = group_by(records, lambda r: (r["config"]["depth"], r["config"]["arm"]))
    depths = sorted({r["config"]["depth"] for r in records})
    rows_claim = claim_rows(records)
    out = [
        f"## {TITLE}",
        "",
        "Mean [95% CI] (n seeds), σ = 0.2 at every boundary, 20 noise draws per model. "
        "*[normalized]*: the conserved weights without the re-projection after the noise.",
        "",
    ]
    rows = []
    for d in depths:
        for arm in _ARMS:
            rs = groups.get((d, arm), [])
            for ev in ("conserved", "normalized") if arm == "conserved" else (None,):
                rows.append(
                    [d, arm if ev is None else f"{arm} [{ev}]"]
                    + [fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"]))]
                    + [
                        fmt_ci(values(rs, partial(_get, conv=c, eval_arm=ev, field=f)))
                        for c in ("relative", "absolute")
                        for f in ("retention_pct", "accuracy")
                    ]
                    + [fmt_ci(values(rs, lambda r: r["metrics"]["mean_boundary_rms"]), 3)]
                )
    out.append(
        markdown_table(
            [
                "depth",
                "arm [eval]",
                "clean acc %",
                "retention (SNR-matched)",
                "noisy acc (SNR-matched)",
                "retention (absolute)",
                "noisy acc (absolute)",
                "boundary RMS",
            ],
            rows,
        )
    )
    out += ["", "**Attribution** (retention, pp; paired by seed; raw p / Holm p (verdict)):", ""]
    table = [
        (f"retention depth {d}, σ=0.2, {_CONV_TAGS[c]}", _estimates(groups, d, c))
        for c in ("relative", "absolute")
        for d in depths
    ]
    out.append(attribution_table(table, rows_claim))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, conv in zip(axes, ("relative", "absolute"), strict=True):
        series = {
            name: [
                values(groups.get((d, arm), []), partial(_get, conv=conv, eval_arm=ev))
                for d in depths
            ]
            for name, arm, ev in (
                ("baseline", "baseline", None),
                ("normalized control", "conserved", "normalized"),
                ("conserved", "conserved", "conserved"),
            )
        }
        ci_band_plot(ax, depths, series)
        ax.set_title(f"{conv} σ = 0.2 (95% CI bands)")
        ax.set_xlabel("depth")
    axes[0].set_ylabel("retention %")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "e2_depth.png", dpi=100)
    plt.close(fig)
    out += ["", "![E2 retention vs depth](e2_depth.png)", ""]
    return "\n".join(out)
