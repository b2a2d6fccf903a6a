"""M3: energy-first architectures and training efficiency, with the paper's factorial design.

Architectures (:mod:`conserve_verified.energy_first`): the conventional
baselines ``mlp``, ``resmlp`` and ``cnn``, and the energy-first variants
``mlp+energy`` (``L_CE + λ_E·E``, ``λ_E = 0.01`` from the λ-sweep's no-loss
range), ``mlp+conserved`` (``C_E`` at every boundary), ``mlp+free_energy``
(Gaussian stochastic boundaries, ``L_CE + β·KL`` to a standard-normal prior,
``β = 0.01``), ``resmlp+least_action`` (``L_CE + λ_K·Σ_k ||h_{k+1} − h_k||²``,
``λ_K = 0.01``) and ``cnn+conserved``; each variant has its baseline's layer
shapes (parameter counts equal, or +1.5–2.5% for the free-energy noise scales).

Training efficiency, defined before running (not changed after):

* **primary** -- optimizer steps to reach the target test accuracy
  ``τ = 0.9 × (mean final test accuracy of the comparison's baseline over its
  seeds)`` on the same dataset, read off the learning curve (linear
  interpolation between evaluations), **censored at the step budget** (a run
  that never reaches ``τ`` counts as the budget);
* **gain %** ``= 100 · (baseline − energy-first) / baseline`` of the mean steps
  to target, per dataset, paired by seed (same batch order and, within a
  family, the same initial weights), 95% paired-bootstrap percentile CI over
  seeds and a paired t-test, Holm-corrected within each dataset (modality);
* **secondary** -- test accuracy at the step budget, area under the learning
  curve (mean accuracy over the budget), training wall time (no evaluation).

The paper's "5–33%" is a range: a row is *reproduced* when the gain is
significantly positive and its CI overlaps [5, 33]; *smaller*/*larger* when it
is significant and the CI lies below 5 / above 33 (the row's ``paper`` value is
the nearer end of the range).

Factorial (M2 re-measured): two-way ANOVA (statsmodels, type II) of
``log(1 + steps to target)``, target ``τ_d = 0.9 × mean final accuracy of the
plain MLP`` on each dataset, over every architecture that applies to every
dataset (the MLP family) × dataset, with partial η² and noncentral-F CIs.

Modalities: images (scikit-learn digits; Fashion-MNIST from Debian's
``dataset-fashion-mnist``, in the quick grid where it is installed and always in
the paper profile), 1-D signals (MNIST-1D),
tabular medical data (breast cancer, wine).  Text, neuromorphic and
physiological recordings cannot be had offline here: none is measured and
none is substituted.  The data layer reads N-MNIST's official event files
(``n-mnist`` with ``--data-dir``) and ``npz:PATH`` arrays for when a user has them.
The paper (minAction): 2,203 experiments over vision, text, neuromorphic and
physiological data, 10 seeds per configuration, gains 5–33%.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from conserve_verified.atomic import atomic_savefig
from conserve_verified.data import check_available, dataset_label, load
from conserve_verified.energy_first import (
    ARCHITECTURES,
    TARGET_FRACTION,
    build_model,
    curve_auc,
    efficiency_gain,
    parameter_count,
    steps_to_target,
    supports,
    train_curve,
)
from conserve_verified.errors import InvalidArgument
from conserve_verified.runner.claims import claim
from conserve_verified.runner.conservation import ci_band_plot
from conserve_verified.runner.paired import pair_by_seed, paired_difference
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.stats import two_way_anova
from conserve_verified.runner.tables import fmt_ci, fmt_num, fmt_p, markdown_table
from conserve_verified.runner.verdict import Estimate, effect_row, holm_adjust

NAME = "energy_first"
TITLE = "M3: energy-first architectures — training efficiency (steps to target) and factorial η²"
CLAIMS = ("M2", "M3")

_MLP_FAMILY = [
    "mlp",
    "mlp+energy",
    "mlp+conserved",
    "mlp+free_energy",
    "resmlp",
    "resmlp+least_action",
]
_ALL_ARCHS = [*_MLP_FAMILY, "cnn", "cnn+conserved"]
_OFFLINE = ["digits", "mnist1d", "breast-cancer", "wine"]

#: Step budgets and evaluation intervals per schedule and dataset: ``(steps, eval_every)``.
#: Tabular sets converge within tens of steps, so they are evaluated more finely.
SCHEDULES: dict[str, dict[str, tuple[int, int]]] = {
    "smoke": {"digits": (30, 10)},
    "short": {
        "digits": (300, 10),
        "mnist1d": (300, 10),
        "breast-cancer": (100, 2),
        "wine": (100, 2),
        "fashion-mnist": (200, 10),
    },
    "long": {
        "digits": (1000, 20),
        "mnist1d": (2000, 40),
        "breast-cancer": (300, 3),
        "wine": (300, 3),
        "fashion-mnist": (3000, 50),
    },
}
#: At most this many test samples are evaluated per point (a fixed seeded subset).
EVAL_CAP = {"smoke": 500, "short": 1000, "long": 10000}


def _fashion_installed() -> bool:
    """Whether Fashion-MNIST's files are where :func:`load` finds them without ``--data-dir``."""
    try:
        check_available("fashion-mnist")
    except InvalidArgument:
        return False
    return True


#: Fashion-MNIST joins the quick grid where it is installed (Debian's package; 200 steps,
#: 1,000 test images per evaluation keep it cheap); the paper profile always needs it.
QUICK_DATASETS = [*_OFFLINE, *(["fashion-mnist"] if _fashion_installed() else [])]

GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "arch": ["mlp", "mlp+conserved"],
        "dataset": ["digits"],
        "schedule": ["smoke"],
        "seed": [0],
    },
    "quick": {
        "arch": _MLP_FAMILY,
        "dataset": QUICK_DATASETS,
        "schedule": ["short"],
        "seed": list(range(5)),
    },
    "paper": {
        "arch": _ALL_ARCHS,
        "dataset": [*_OFFLINE, "fashion-mnist"],
        "schedule": ["long"],
        "seed": list(range(10)),
    },
}

#: M2's "architecture alone η² = 0.001" is a non-effect: reproduced when the CI of the partial
#: η² lies below this (the λ-sweep's rule for the same claim; Cohen's medium effect).
M2_MARGIN = 0.06

#: Paper's M3 range of gains (%).
_PAPER_RANGE = tuple(float(v) for v in claim("M3")["values"]["energy_first_architectures"])


def _eval_subset(x: torch.Tensor, y: torch.Tensor, cap: int) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape[0] <= cap:
        return x, y
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:cap]
    return x[idx], y[idx]


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    arch, ds, schedule = config["arch"], config["dataset"], config["schedule"]
    if schedule not in SCHEDULES or ds not in SCHEDULES[schedule]:
        raise InvalidArgument("schedule/dataset", (schedule, ds), f"valid: {SCHEDULES}")
    data = load(ds, ctx.data_dir)
    if not supports(arch, data.input_shape):
        return {"applicable": False, "reason": f"{arch} needs image or signal inputs"}
    steps, every = SCHEDULES[schedule][ds]
    torch.manual_seed(int(config["seed"]))
    model = build_model(arch, data.input_shape, data.num_classes).to(ctx.device)
    x_ev, y_ev = _eval_subset(data.x_test, data.y_test, EVAL_CAP[schedule])
    dev = ctx.device
    curve = train_curve(
        arch,
        model,
        data.x_train.to(dev),
        data.y_train.to(dev),
        x_ev.to(dev),
        y_ev.to(dev),
        steps=steps,
        eval_every=every,
        seed=int(config["seed"]),
    )
    return {
        "applicable": True,
        "curve_steps": curve.steps,
        "curve_acc": curve.acc,
        "final_accuracy": curve.acc[-1],
        "auc": curve_auc(curve.steps, curve.acc),
        "train_seconds": curve.train_seconds,
        "final_loss": curve.final_loss,
        "parameters": parameter_count(model),
        "eval_samples": int(x_ev.shape[0]),
    }


# ---------------------------------------------------------------- analysis


def _ok(records: list[Record]) -> list[Record]:
    return [
        r for r in records if r["metrics"].get("applicable", True) and "curve_acc" in r["metrics"]
    ]


def _runs(records: list[Record], arch: str, ds: str) -> dict[int, dict[str, Any]]:
    return {
        int(r["config"]["seed"]): r["metrics"]
        for r in _ok(records)
        if r["config"]["arch"] == arch and r["config"]["dataset"] == ds
    }


def _target(records: list[Record], baseline: str, ds: str) -> float | None:
    runs = _runs(records, baseline, ds)
    if not runs:
        return None
    return TARGET_FRACTION * float(np.mean([m["final_accuracy"] for m in runs.values()]))


def _steps(runs: dict[int, dict[str, Any]], target: float) -> dict[int, tuple[float, bool]]:
    out = {}
    for seed, m in runs.items():
        st = steps_to_target(m["curve_steps"], m["curve_acc"], target)
        out[seed] = (st.steps, st.censored)
    return out


def _datasets(records: list[Record]) -> list[str]:
    order = [*_OFFLINE, "fashion-mnist"]
    found = {r["config"]["dataset"] for r in _ok(records)}
    return [d for d in order if d in found] + sorted(found - set(order))


def _range_paper(mean: float) -> float:
    """The end of the paper's range nearest to ``mean`` (``mean`` itself inside it)."""
    lo, hi = _PAPER_RANGE
    return min(max(mean, lo), hi)


def _paired_pp(
    var_runs: dict[int, dict[str, Any]],
    base_runs: dict[int, dict[str, Any]],
    seeds: list[int],
    field: str,
) -> Estimate:
    """Paired difference variant − baseline of ``field`` in percentage points."""
    return paired_difference(
        [100.0 * var_runs[s][field] for s in seeds], [100.0 * base_runs[s][field] for s in seeds]
    )


def comparisons(records: list[Record]) -> list[dict[str, Any]]:
    """One entry per (dataset, energy-first variant): target, steps, gains and secondaries."""
    out = []
    for ds in _datasets(records):
        for arch, spec in ARCHITECTURES.items():
            if spec.baseline is None:
                continue
            target = _target(records, spec.baseline, ds)
            base_runs, var_runs = _runs(records, spec.baseline, ds), _runs(records, arch, ds)
            if target is None or not var_runs:
                continue
            sb, sv = _steps(base_runs, target), _steps(var_runs, target)
            b, v, seeds = pair_by_seed(
                {s: x[0] for s, x in sb.items()}, {s: x[0] for s, x in sv.items()}
            )
            if not seeds:
                continue
            gain = efficiency_gain(b, v)

            wall = efficiency_gain(
                [base_runs[s]["train_seconds"] for s in seeds],
                [var_runs[s]["train_seconds"] for s in seeds],
            )
            out.append(
                {
                    "dataset": ds,
                    "arch": arch,
                    "baseline": spec.baseline,
                    "target": target,
                    "steps_baseline": b,
                    "steps_variant": v,
                    "censored_baseline": sum(sb[s][1] for s in seeds),
                    "censored_variant": sum(sv[s][1] for s in seeds),
                    "gain": gain,
                    "acc_diff_pp": _paired_pp(var_runs, base_runs, seeds, "final_accuracy"),
                    "auc_diff_pp": _paired_pp(var_runs, base_runs, seeds, "auc"),
                    "wall_gain": wall,
                    "budget": int(var_runs[seeds[0]]["curve_steps"][-1]),
                }
            )
    return out


def _factorial(records: list[Record]) -> tuple[Any, int] | None:
    """ANOVA of log(steps to the MLP-derived target) over MLP-family arch × dataset."""
    y, a, b = [], [], []
    datasets = _datasets(records)
    archs = [x for x in _MLP_FAMILY if all(_runs(records, x, d) for d in datasets)]
    for ds in datasets:
        target = _target(records, "mlp", ds)
        if target is None:
            continue
        for arch in archs:
            for _seed, (s, _c) in sorted(_steps(_runs(records, arch, ds), target).items()):
                y.append(math.log1p(s))
                a.append(arch)
                b.append(ds)
    try:
        return two_way_anova(y, a, b), len(y)
    except InvalidArgument:  # incomplete or too small a design (e.g. the smoke grid)
        return None


def _m3_row(c: dict[str, Any]) -> dict[str, Any]:
    g: Estimate = c["gain"]
    paper = _range_paper(g.mean if g.mean is not None else _PAPER_RANGE[0])
    row = effect_row(
        "M3",
        f"gain % steps to target ({c['arch']} vs {c['baseline']}, {dataset_label(c['dataset'])})",
        paper,
        g,
        note=(
            f"paper: 5–33% range (nearest end {paper:g}); target {100 * c['target']:.1f}% "
            f"= {TARGET_FRACTION:g}× baseline final; censored b/v "
            f"{c['censored_baseline']}/{c['censored_variant']} at {c['budget']} steps"
        ),
    )
    row["data"] = dataset_label(c["dataset"])
    return row


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """M3: gain % per (variant, dataset), Holm within each dataset (the within-modality
    family, as the report groups rows by claim and ``data``); M2: partial η² of the factorial.
    """
    rows: list[dict[str, Any]] = []
    m3 = [_m3_row(c) for c in comparisons(records)]
    for label in dict.fromkeys(r["data"] for r in m3):
        rows += holm_adjust([r for r in m3 if r["data"] == label])
    fac = _factorial(records)
    if fac is not None:
        an, n = fac
        paper = claim("M2")["values"]
        for effect, key, margin in (
            ("A", "architecture", M2_MARGIN),
            ("A:B", "architecture_x_dataset", None),
        ):
            e = an.effects[effect]
            est = Estimate(
                e["partial_eta_sq"],
                e["eta_low"],
                e["eta_high"],
                e["p"],
                n,
                None,
                "two-way ANOVA (statsmodels, type II); noncentral-F CI",
            )
            rows.append(
                effect_row(
                    "M2",
                    f"partial η² {key} (log steps to target; energy-first factorial)",
                    float(paper[key]),
                    est,
                    margin=margin,
                    note="n = runs; p: ANOVA F-test"
                    + ("" if margin is None else f"; non-effect margin η² < {margin:g}"),
                )
            )
            rows[-1]["data"] = "factorial: " + ", ".join(
                dataset_label(d) for d in _datasets(records)
            )
    return rows


def _fmt_est(e: Estimate, digits: int = 1) -> str:
    if e.mean is None:
        return "–"
    if e.low is None or e.high is None:
        return f"{fmt_num(e.mean, digits)} (n={e.n})"
    return f"{fmt_num(e.mean, digits)} [{fmt_num(e.low, digits)}, {fmt_num(e.high, digits)}]"


def _curve_plot(records: list[Record], ds: str, out_dir: pathlib.Path) -> str | None:
    archs = [a for a in _ALL_ARCHS if _runs(records, a, ds)]
    if not archs:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs: list[float] = []
    series: dict[str, list[list[float]]] = {}
    for arch in archs:
        runs = _runs(records, arch, ds)
        steps = next(iter(runs.values()))["curve_steps"]
        xs = xs or [float(s) for s in steps]
        if [float(s) for s in steps] != xs:
            continue
        series[arch] = [
            [100.0 * m["curve_acc"][j] for m in runs.values()] for j in range(len(steps))
        ]
    ci_band_plot(ax, xs, series, markers="......")
    target = _target(records, "mlp", ds)
    if target is not None:
        ax.axhline(100 * target, color="grey", ls="--", lw=0.8, label="target (0.9 × MLP)")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"{dataset_label(ds)}: learning curves, mean and 95% CI over seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = f"energy_first_curves_{ds}.png"
    atomic_savefig(fig, out_dir / name, dpi=100)
    plt.close(fig)
    return name


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    ok = _ok(records)
    out = [f"## {TITLE}", ""]
    out.append(
        f"{len(records)} cells ({len(ok)} trained; "
        f"{len(records) - len(ok)} not applicable, e.g. CNNs on tabular data). "
        "Primary metric: optimizer steps to the target test accuracy (0.9 × the baseline's "
        "mean final accuracy), censored at the budget; gain % = (baseline − variant) / "
        "baseline, paired by seed, 95% paired-bootstrap CI, paired t-test, Holm within "
        "each dataset."
    )
    out.append("")
    sizes = ", ".join(f"{p} {math.prod(len(v) for v in g.values())}" for p, g in GRIDS.items())
    out += [
        f"Grid sizes (cells): {sizes}; the paper profile is the paper's design: every "
        "architecture × dataset, 10 seeds (Fashion-MNIST required; CNN cells on tabular data "
        "are recorded as not applicable).",
        "",
    ]
    comps = comparisons(records)
    rows = {(r["quantity"]): r for r in claim_rows(records)}
    table = []
    for c in comps:
        r = _m3_row(c)
        held = rows.get(r["quantity"], r)
        table.append(
            [
                dataset_label(c["dataset"]),
                c["arch"],
                c["baseline"],
                f"{100 * c['target']:.1f}",
                fmt_ci(c["steps_baseline"], 0),
                fmt_ci(c["steps_variant"], 0),
                f"{c['censored_baseline']}/{c['censored_variant']}",
                _fmt_est(c["gain"]),
                fmt_p(c["gain"].p_value),
                fmt_p(held.get("p_holm")),
                held["verdict"],
            ]
        )
    out.append(
        markdown_table(
            [
                "dataset",
                "energy-first",
                "baseline",
                "target %",
                "steps baseline",
                "steps energy-first",
                "censored b/v",
                "gain % [95% CI]",
                "p",
                "p (Holm, per dataset)",
                "verdict (paper 5–33%)",
            ],
            table,
        )
    )
    out += ["", "Secondary metrics (energy-first − baseline, paired by seed, mean [95% CI]):", ""]
    out.append(
        markdown_table(
            [
                "dataset",
                "energy-first",
                "Δ accuracy at budget (pp)",
                "Δ AUC (pp)",
                "wall-time gain %",
                "budget (steps)",
            ],
            [
                [
                    dataset_label(c["dataset"]),
                    c["arch"],
                    _fmt_est(c["acc_diff_pp"]),
                    _fmt_est(c["auc_diff_pp"]),
                    _fmt_est(c["wall_gain"]),
                    c["budget"],
                ]
                for c in comps
            ],
        )
    )
    fac = _factorial(records)
    if fac is not None:
        an, n = fac
        out += [
            "",
            f"Factorial (M2 re-measured): two-way ANOVA of log(1 + steps to target), "
            f"architecture (MLP family) × dataset, n = {n}, type II:",
            "",
        ]
        names = {"A": "architecture", "B": "dataset", "A:B": "architecture × dataset"}
        out.append(
            markdown_table(
                ["effect", "df", "F", "p", "partial η² [95% CI]"],
                [
                    [
                        names[k],
                        fmt_num(v["df"], 0),
                        fmt_num(v["F"], 2),
                        fmt_p(v["p"]),
                        f"{v['partial_eta_sq']:.3f} [{v['eta_low']:.3f}, {v['eta_high']:.3f}]",
                    ]
                    for k, v in an.effects.items()
                ],
            )
        )
    params = sorted(
        {(r["config"]["dataset"], r["config"]["arch"], r["metrics"]["parameters"]) for r in ok}
    )
    if params:
        out += ["", "Parameters per architecture and dataset:", ""]
        archs = [a for a in _ALL_ARCHS if any(p[1] == a for p in params)]
        lookup = {(d, a): n for d, a, n in params}
        out.append(
            markdown_table(
                ["dataset", *archs],
                [
                    [dataset_label(d), *[lookup.get((d, a), "–") for a in archs]]
                    for d in _datasets(records)
                ],
            )
        )
    out += [""]
    for ds in _datasets(records):
        name = _curve_plot(records, ds, out_dir)
        if name:
            out.append(f"![learning curves {dataset_label(ds)}]({name})")
    out += [
        "",
        "Modalities: images (digits; Fashion-MNIST where installed), 1-D signals "
        "(MNIST-1D), tabular medical data (breast cancer, wine). The paper's text, "
        "neuromorphic and physiological data cannot be obtained offline here and are not "
        "measured (no synthetic stand-in); the data layer reads N-MNIST event files "
        "(`n-mnist`, `--data-dir`) and `npz:PATH` arrays when a user has them.",
        "",
    ]
    return "\n".join(out)
