"""E4: ResNet-18 adapted to small images, with and without BatchNorm, σ = 0.2 and 0.5, attributed.

ResNet-18 (3×3 stem, no max-pool; stages stem, layer1–4, head → five
boundaries), baseline vs conserved (``C_E`` at each stage boundary with
``E`` per feature 1, the same-seed baseline's RMS² there, or 4), trained
clean, evaluated with Gaussian noise at every boundary under both conventions
(SNR-matched from the CLEAN activation's RMS, the headline; absolute σ,
E-dependent), 20 noise draws per trained model.

Where the noise enters relative to ``C_E``: baseline ``stage -> n -> stage``;
conserved ``stage -> C_E -> n -> C_E -> stage``; the normalisation-only
control (conserved weights, no re-projection) ``stage -> C_E -> n -> stage``.

Fairness: the arms reach different clean accuracies (the no-BN baseline
trains worst), and retention divides by it.  The report therefore gives noisy
accuracy beside retention, and the noisy-accuracy advantage adjusted for the
paired clean-accuracy gap (OLS of the per-seed differences on the clean gap:
the advantage at a matched clean accuracy).  Advantage = conserved − baseline
retention (pp).  Paper (CIFAR-10): +0.3 with BatchNorm at σ = 0.2, +26.2
without BatchNorm at σ = 0.2, +58.0 without BatchNorm at σ = 0.5.
The quick profile has E = 1 only (the E sweep, ``conserved:E=baseline`` and
``conserved:E=4``, is in the paper profile, to keep quick cheap) and trains on at
most 3,000 samples (a seeded subset) and tests on the first 500: no-ops on digits
(450 test images), a cap for Fashion-MNIST.
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
from conserve_verified.runner.paired import covariate_adjusted_difference, pair_by_seed
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, group_by, markdown_table, values
from conserve_verified.runner.verdict import effect_row, holm_adjust

NAME = "e4"
TITLE = (
    "E4: ResNet-18 with / without BatchNorm under boundary noise (conservation vs normalisation)"
)
CLAIMS = ("E4",)

_CONSERVED = ["conserved", "conserved:E=baseline", "conserved:E=4"]
_ARMS = ["baseline", *_CONSERVED]
_SIGMAS = [0.2, 0.5]
_CONV_TAGS = {"relative": "SNR-matched (clean RMS)", "absolute": "absolute σ, E-dependent"}
_SETTINGS = [
    ("with_batchnorm_sigma0.2", True, 0.2),
    ("without_batchnorm_sigma0.2", False, 0.2),
    ("without_batchnorm_sigma0.5", False, 0.5),
]
_COMMON: dict[str, list[Any]] = {
    "model": ["resnet18"],
    "batchnorm": [True, False],
    "sigmas": [_SIGMAS],
    "draws": [20],
}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "arm": ["baseline", "conserved"],
        **_COMMON,
        "draws": [2],
        "width": [4],
        "epochs": [1],
        "max_train": [300],
        "seed": [0],
    },
    "quick": {
        "arm": ["baseline", "conserved"],
        **_COMMON,
        "width": [8],
        "epochs": [8],
        "max_train": [3000],
        "max_test": [500],
        "seed": list(range(3)),
    },
    "paper": {
        "arm": _ARMS,
        **_COMMON,
        "width": [64],
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
        lambda c, s, d: 15_485_863 * seed + 10_007 * c + 1_009 * s + d,
    )


def _ps(
    g: dict[Any, list[Record]],
    bn: bool,
    arm: str,
    sigma: float,
    conv: str,
    ev: str | None = None,
    field: str = "retention_pct",
) -> dict[int, float]:
    return per_seed(
        g.get((bn, arm), []),
        lambda r: stored(r, level=sigma, convention=conv, eval_arm=ev, field=field),
    )


def _estimates(
    g: dict[Any, list[Record]], bn: bool, arm: str, sigma: float, conv: str, field: str
) -> dict[str, Any]:
    return attribution_of(
        g.get((bn, "baseline"), []),
        g.get((bn, arm), []),
        lambda r, ev: stored(r, level=sigma, convention=conv, eval_arm=ev, field=field),
    )


def _adjusted(g: dict[Any, list[Record]], bn: bool, arm: str, sigma: float, conv: str) -> Any:
    """Noisy-accuracy advantage conserved − baseline at a matched clean accuracy."""
    a, b, seeds = pair_by_seed(
        _ps(g, bn, arm, sigma, conv, "conserved", "accuracy"),
        _ps(g, bn, "baseline", sigma, conv, field="accuracy"),
    )
    ca = _ps(g, bn, arm, sigma, conv, "conserved", "clean")
    cb = _ps(g, bn, "baseline", sigma, conv, field="clean")
    if not a:
        return None
    return covariate_adjusted_difference(a, b, [ca[s] for s in seeds], [cb[s] for s in seeds])


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """E4: attribution rows for the paper's three settings (each convention and E), and the
    clean-gap-adjusted noisy-accuracy advantage; Holm-adjusted."""
    paper = claim("E4")["values"]
    g = group_by(records, lambda r: (r["config"]["batchnorm"], r["config"]["arm"]))
    present = sorted({r["config"]["arm"] for r in records} & set(_CONSERVED), key=_CONSERVED.index)
    rows: list[dict[str, Any]] = []
    for conv in ("relative", "absolute"):
        tag = _CONV_TAGS[conv]
        for key, bn, sigma in _SETTINGS:
            for arm in present:
                where = f"{'with' if bn else 'without'} BN, σ={sigma}, {tag}, {energy_label(arm)}"
                label = f"retention {where}"
                est = _estimates(g, bn, arm, sigma, conv, "retention_pct")
                rows += attribution_rows("E4", label, float(paper[key]), est)
                adj = _adjusted(g, bn, arm, sigma, conv)
                if adj is not None:
                    rows.append(
                        effect_row(
                            "E4",
                            "noisy accuracy conserved − baseline at matched clean accuracy "
                            f"(pp), {where}",
                            None,
                            adj,
                            note="clean-accuracy gap as covariate (E4 fairness)",
                        )
                    )
    return holm_adjust(rows)


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    g = group_by(records, lambda r: (r["config"]["batchnorm"], r["config"]["arm"]))
    width = records[0]["config"]["width"] if records else "?"
    present = [a for a in _ARMS if any(r["config"]["arm"] == a for r in records)]
    rows_claim = claim_rows(records)
    out = [
        f"## {TITLE}",
        "",
        f"Base width {width}. Mean [95% CI] (n seeds) with Gaussian noise at all five stage "
        "boundaries, 20 draws per model. *[normalized]*: the conserved weights without the "
        "re-projection after the noise.",
        "",
    ]
    for field, what in (("retention_pct", "retention %"), ("accuracy", "noisy accuracy %")):
        header = (
            ["BatchNorm", "arm [eval]", "clean acc %"]
            + [f"σ={s} ({c})" for c in ("relative", "absolute") for s in _SIGMAS]
            + ["boundary RMS"]
        )
        rows = []
        for bn in (True, False):
            for arm in present:
                rs = g.get((bn, arm), [])
                for ev in ("conserved", "normalized") if arm != "baseline" else (None,):
                    rows.append(
                        [
                            "with" if bn else "without",
                            arm if ev is None else f"{arm} [{ev}]",
                            fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"])),
                        ]
                        + [
                            fmt_ci(
                                values(
                                    rs,
                                    partial(
                                        stored, level=s, convention=c, eval_arm=ev, field=field
                                    ),
                                )
                            )
                            for c in ("relative", "absolute")
                            for s in _SIGMAS
                        ]
                        + [fmt_ci(values(rs, lambda r: r["metrics"]["mean_boundary_rms"]), 3)]
                    )
        out += [f"**{what}**", "", markdown_table(header, rows), ""]
    out += ["**Attribution** (retention, pp; paired by seed; raw p / Holm p (verdict)):", ""]
    table = []
    for conv in ("relative", "absolute"):
        for _key, bn, sigma in _SETTINGS:
            for arm in present:
                if arm == "baseline":
                    continue
                label = (
                    f"retention {'with' if bn else 'without'} BN, σ={sigma}, "
                    f"{_CONV_TAGS[conv]}, {energy_label(arm)}"
                )
                table.append((label, _estimates(g, bn, arm, sigma, conv, "retention_pct")))
    out.append(attribution_table(table, rows_claim))
    adj_rows = [r for r in rows_claim if r["quantity"].startswith("noisy accuracy")]
    if adj_rows:
        out += [
            "",
            "**Fairness**: noisy-accuracy advantage conserved − baseline at a matched clean "
            "accuracy (OLS intercept of the per-seed differences on the clean gap):",
            "",
            markdown_table(
                ["condition", "adjusted advantage (pp) [95% CI]", "p / Holm p"],
                [
                    [
                        r["quantity"].split("(pp), ", 1)[-1],
                        "–"
                        if r["mean"] is None
                        else f"{r['mean']:.1f} [{r['low']:.1f}, {r['high']:.1f}] (n={r['n']})"
                        if r["low"] is not None
                        else f"{r['mean']:.1f} (n={r['n']})",
                        f"{r['p_value']:.2g} / {r['p_holm']:.2g}"
                        if r["p_value"] is not None
                        else "–",
                    ]
                    for r in adj_rows
                ],
            ),
        ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, bn in zip(axes, (True, False), strict=True):
        series = {}
        for name, arm, ev in (
            ("baseline", "baseline", None),
            ("normalized control (E=1)", "conserved", "normalized"),
            ("conserved (E=1)", "conserved", "conserved"),
        ):
            series[name] = [
                values(
                    g.get((bn, arm), []),
                    partial(stored, level=s, convention="relative", eval_arm=ev),
                )
                for s in _SIGMAS
            ]
        ci_band_plot(ax, _SIGMAS, series)
        ax.set_title(f"{'with' if bn else 'without'} BN, SNR-matched σ (95% CI bands)")
        ax.set_xlabel("σ")
    axes[0].set_ylabel("retention %")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "e4_resnet.png", dpi=100)
    plt.close(fig)
    out += ["", "![E4 retention vs σ](e4_resnet.png)", ""]
    return "\n".join(out)
