r"""Gauge-LR: does orbit selection widen the stable learning-rate range? (claim G)

A one-hidden-layer ReLU network (input -> ``hidden`` -> classes, no output
bias) is trained by
full-batch gradient descent on a fixed training subset, with squared loss
(``0.5 * mean ||f(x) - onehot(y)||^2``, where the edge of stability is sharp)
or cross-entropy, from two initialisations on the same orbit:

* ``default``: PyTorch's default initialisation;
* ``imbalanced``: the same network after the gauge transformation that scales
  every hidden neuron's incoming weights and bias by ``kappa`` and its outgoing
  weights by ``1/kappa`` (identical function, imbalance ``delta`` inflated).

Orbit selection methods (``method``):

* ``none``: plain gradient descent;
* ``penalty``: the balancing penalty ``mu * sum_k delta_k^2`` added to the loss
  and differentiated as an ordinary Euclidean gradient term;
* ``gauge_step``: after each gradient step, one step of the same functional in
  log-scale coordinates only, preconditioned by its diagonal curvature, at
  rate ``GAUGE_RATE`` (:func:`conserve_verified.gauge.log_scale_penalty_step`;
  it never changes the function);
* ``balance``: one closed-form :func:`conserve_verified.gauge.balance` at
  initialisation (G2), then plain gradient descent.

The output layer has no bias on purpose: an output bias adds a gauge-invariant
curvature direction of eigenvalue 1 to the squared loss (``d^2 L / db^2 = I``),
which caps the stable rate at ``eta < 2`` for every point of the orbit and so
hides the gauge-dependent curvature the claim is about.

A run *diverges* when the loss becomes non-finite or ends above its initial
value; it is *unstable* when it diverges or its loss rises above its initial
value at any step (a loss spike: the edge of stability was crossed, even if
gradient descent later recovers in a flatter region, "catapult").  The
report gives, per (loss, init, method), the largest stable learning rate of
the grid (the largest rate at and below which no run was unstable, per seed),
its ratio to ``none``, instability and divergence rates per learning rate, the
mean final loss, and the scale drift (mean |log-scale imbalance| of the hidden
neurons) along training.
"""

from __future__ import annotations

import math
import pathlib
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from scipy import stats as sps
from torch import nn
from torch.nn import functional as F

from conserve_verified.atomic import atomic_savefig
from conserve_verified.gauge import (
    ImbalanceMonitor,
    balance,
    balance_penalty,
    gauge_structure,
    gauge_transform,
    log_scale_penalty_step,
)

NAME = "gauge_lr"
CLAIMS: tuple[str, ...] = ("G",)
TITLE = "Gauge symmetry: stable learning-rate range with and without orbit selection"

_METHODS = ["none", "penalty", "gauge_step", "balance"]
_LRS_QUICK = [0.4, 0.8, 1.6, 2.26, 3.2]

GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "loss": ["mse"],
        "init": ["imbalanced"],
        "method": ["none", "balance"],
        "lr": [0.4, 3.2],
        "steps": [20],
        "seed": [0],
    },
    "quick": {
        "loss": ["mse", "ce"],
        "init": ["default", "imbalanced"],
        "method": _METHODS,
        "lr": _LRS_QUICK,
        "steps": [50],
        "seed": [0, 1, 2, 3, 4],
    },
    "paper": {
        "loss": ["mse", "ce"],
        "init": ["default", "imbalanced"],
        "method": _METHODS,
        "lr": [0.05 * 2 ** (k / 2) for k in range(13)],
        "steps": [1000],
        "seed": list(range(10)),
    },
}

#: Fixed hyper-parameters (not swept): hidden width, train subset, imbalance, penalty weight.
HIDDEN = 32
N_TRAIN = 256
KAPPA = 4.0
MU = 0.01
GAUGE_RATE = 0.5
RECORD_EVERY = 10


def _data(ctx: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    name = getattr(ctx, "data", "digits") if ctx is not None else "digits"
    data_dir = getattr(ctx, "data_dir", None) if ctx is not None else None
    from conserve_verified.data import load

    ds = load(name, data_dir)
    x = ds.x_train[:N_TRAIN].reshape(min(N_TRAIN, len(ds.x_train)), -1).to(torch.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1.0)  # standardise; +1 keeps constant pixels finite
    return x, ds.y_train[:N_TRAIN], ds.num_classes


def _loss(name: str, out: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    if name == "mse":
        return 0.5 * (out - F.one_hot(y, classes).to(out.dtype)).pow(2).sum(1).mean()
    return F.cross_entropy(out, y)


def run_cell(config: dict[str, Any], ctx: Any = None) -> dict[str, Any]:
    """Train one (loss, init, method, lr, seed) cell; returns loss, divergence and drift curves."""
    torch.set_num_threads(1)
    x, y, classes = _data(ctx)
    torch.manual_seed(int(config["seed"]))
    model = nn.Sequential(
        nn.Linear(x.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes, bias=False)
    ).to(torch.float64)
    s = gauge_structure(model, x[:2])
    if config["init"] == "imbalanced":
        gauge_transform(model, s, torch.full((s.num_scales,), math.log(KAPPA), dtype=torch.float64))
    elif config["init"] != "default":
        raise ValueError(f"init={config['init']!r}: expected 'default' or 'imbalanced'")
    method, lr, steps = str(config["method"]), float(config["lr"]), int(config["steps"])
    if method == "balance":
        balance(model, s)
    elif method not in _METHODS:
        raise ValueError(f"method={method!r}: expected one of {_METHODS}")
    monitor = ImbalanceMonitor(model, structure=s)
    losses: list[float] = []
    for step in range(steps + 1):
        if step % RECORD_EVERY == 0 or step == steps:
            monitor.record(step)
        model.zero_grad()
        loss = _loss(config["loss"], model(x), y, classes)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]) or losses[-1] > 1e6 * max(losses[0], 1.0):
            monitor.record(step)
            break
        if step == steps:
            break
        objective = loss + balance_penalty(model, s, MU) if method == "penalty" else loss
        objective.backward()
        with torch.no_grad():
            for p in model.parameters():
                assert p.grad is not None  # every parameter is in the loss
                p.sub_(lr * p.grad)
        if method == "gauge_step":
            log_scale_penalty_step(model, s, GAUGE_RATE)
    loss0, final = losses[0], losses[-1]
    diverged = len(losses) < steps + 1 or not math.isfinite(final) or final > loss0
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).double().mean()) if not diverged else 0.0
    return {
        "loss0": loss0,
        "final_loss": final if math.isfinite(final) else math.inf,
        "train_acc": acc,
        "diverged": bool(diverged),
        "unstable": bool(diverged or max(losses) > loss0),
        "max_loss_ratio": max(losses) / loss0 if math.isfinite(max(losses)) else math.inf,
        "steps_run": len(losses) - 1,
        "drift_steps": monitor.series("step"),
        "drift": monitor.series("mean_abs_log_imbalance"),
        "norm": monitor.series("norm"),
    }


# --------------------------------------------------------------------------- report


def _largest_stable(by_lr: dict[float, bool]) -> float:
    """Largest lr such that no lr <= it diverged (0 when the smallest already diverged)."""
    best = 0.0
    for lr in sorted(by_lr):
        if by_lr[lr]:
            break
        best = lr
    return best


def _stable_by_seed(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    """Largest stable lr per (loss, init, method) and seed (see :func:`_largest_stable`)."""
    cells: dict[tuple[str, str, str, int], dict[float, bool]] = defaultdict(dict)
    for r in records:
        c, m = r["config"], r["metrics"]
        cells[(c["loss"], c["init"], c["method"], int(c["seed"]))][float(c["lr"])] = m["unstable"]
    stable: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for (loss, init, method, seed), by_lr in cells.items():
        stable[(loss, init, method)][seed] = _largest_stable(by_lr)
    return stable


def _floored(seeds: dict[int, float], floor: float) -> dict[int, float | None]:
    """Each seed's largest stable rate; a rate of 0 counts as ``floor``."""
    return {k: (v if v > 0 else floor) for k, v in seeds.items()}


def claim_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claim G: orbit selection widens the stable learning-rate range.

    One row per (loss, orbit-selection method) from the imbalanced initialisation
    (the same function as the default init, moved along its orbit): the paired-by-seed
    difference ``log2(largest stable lr of method) - log2(largest stable lr of none)``
    (paired t CI and test, Cohen's d_z; :func:`conserve_verified.runner.paired.paired_difference`).
    The paper gives no size, so the claim is an unsized positive effect (``paper=None``):
    significant and positive is reproduced.  A run whose smallest grid rate was already
    unstable counts as half that rate.  The largest grid rate is a ceiling: a method
    stable everywhere has an unknown, possibly larger, range; when every seed of both
    arms is at the ceiling the row has no CI (grid too small for a verdict).
    """
    from conserve_verified.runner.paired import pair_by_seed, paired_difference
    from conserve_verified.runner.verdict import Estimate, effect_row

    stable = _stable_by_seed(records)
    lrs = sorted({float(r["config"]["lr"]) for r in records})
    if not lrs:
        return []
    floor, ceiling = lrs[0] / 2, lrs[-1]
    rows = []
    for loss in sorted({k[0] for k in stable}):
        base = stable.get((loss, "imbalanced", "none"))
        if base is None:
            continue
        for method in _METHODS[1:]:
            seeds = stable.get((loss, "imbalanced", method))
            if seeds is None:
                continue
            a, b, _ = pair_by_seed(_floored(seeds, floor), _floored(base, floor))
            capped = sum(1 for k in seeds if seeds[k] >= ceiling)
            # log2 of each seed's ratio (exact for the grid's powers of two), paired with 0
            d = [math.log2(x / y) for x, y in zip(a, b, strict=True)]
            at_ceiling = bool(a) and all(x >= ceiling for x in a + b)
            if d and not at_ceiling:
                est = paired_difference(d, [0.0] * len(d))
            else:  # no seeds, or both arms stable over the whole grid: it cannot tell
                mean = sum(d) / len(d) if d else None
                est = Estimate(mean, None, None, None, len(d), method="paired t (by seed)")
            ratio = "–" if est.mean is None else f"{2**est.mean:.2f}×"
            rows.append(
                effect_row(
                    "G",
                    f"log2 largest stable lr, {method} − none ({loss}, imbalanced init)",
                    None,
                    est,
                    note=(
                        f"every seed of both stable up to the grid's largest rate {ceiling:g}: "
                        "a wider lr grid is needed"
                        if at_ceiling
                        else f"ratio {ratio} (geometric mean over seeds); {capped}/{len(seeds)} "
                        f"seeds stable up to the grid's largest rate {ceiling:g} (a lower "
                        f"bound); {est.method}"
                    ),
                )
            )
    return rows


def _fmt_ci(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    if arr.size == 1:
        return f"{arr[0]:.3g} (n=1)"
    m = float(arr.mean())
    half = float(sps.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))
    return f"{m:.3g} ± {half:.2g} (n={arr.size})"


def report(records: list[dict[str, Any]], out_dir: pathlib.Path) -> str:
    """Markdown: largest stable lr (+ ratio to ``none``), divergence rates, drift plots."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells: dict[tuple[str, str, str, int], dict[float, bool]] = defaultdict(dict)
    div: dict[tuple[str, str, str, float], list[bool]] = defaultdict(list)
    uns: dict[tuple[str, str, str, float], list[bool]] = defaultdict(list)
    fin: dict[tuple[str, str, str, float], list[float]] = defaultdict(list)
    for r in records:
        c, m = r["config"], r["metrics"]
        key = (c["loss"], c["init"], c["method"], float(c["lr"]))
        cells[(c["loss"], c["init"], c["method"], int(c["seed"]))][float(c["lr"])] = m["unstable"]
        div[key].append(bool(m["diverged"]))
        uns[key].append(bool(m["unstable"]))
        fin[key].append(float(m["final_loss"]))
    stable: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for (loss, init, method, seed), by_lr in cells.items():
        stable[(loss, init, method)][seed] = _largest_stable(by_lr)
    lines = [
        f"## {TITLE}",
        "",
        f"One-hidden-layer ReLU MLP (width {HIDDEN}, no output bias), full-batch GD on "
        f"{N_TRAIN} training "
        f"samples, imbalanced init kappa={KAPPA}, penalty weight mu={MU}, gauge-step rate "
        f"{GAUGE_RATE}. A run diverges when its loss turns non-finite or ends above its "
        "initial value; it is unstable when it diverges or its loss rises above the initial "
        "value at any step. Largest stable learning rate: the largest grid rate with no "
        "unstable run at or below it, per seed; "
        "mean ± 95% CI over seeds; ratio = method / none (geometric mean over seeds, "
        "paired); p = Wilcoxon signed-rank test of log(ratio) (two-sided; with 5 seeds its "
        "smallest possible value is 0.0625). A largest stable rate equal to the largest grid "
        "rate is only a lower bound (no instability inside the grid).",
        "",
        "| loss | init | method | largest stable lr | ratio vs none | p |",
        "|---|---|---|---|---|---|",
    ]
    for loss, init, method in sorted(stable):
        seeds = stable[(loss, init, method)]
        base = stable.get((loss, init, "none"), {})
        common = sorted(set(seeds) & set(base))
        ratio_txt, p_txt = "–", "–"
        if method != "none" and common:
            logs = [
                math.log(seeds[k] / base[k]) if seeds[k] > 0 and base[k] > 0 else 0.0
                for k in common
            ]
            ratio_txt = f"{math.exp(float(np.mean(logs))):.2f}"
            if len(logs) > 1 and any(v != 0 for v in logs):
                p_txt = f"{sps.wilcoxon(logs).pvalue:.3g}"
            elif len(logs) > 1:
                p_txt = "1 (all equal)"
        lines.append(
            f"| {loss} | {init} | {method} | {_fmt_ci(list(seeds.values()))} "
            f"| {ratio_txt} | {p_txt} |"
        )
    lrs = sorted({k[3] for k in div})
    for title, table, fmt in (
        ("Instability rate (fraction of seeds with a loss spike or divergence)", uns, "{:.2f}"),
        ("Divergence rate (fraction of seeds)", div, "{:.2f}"),
        ("Mean final training loss (inf: diverged)", fin, "{:.3g}"),
    ):
        lines += [
            "",
            f"{title} per learning rate:",
            "",
            "| loss | init | method | " + " | ".join(f"{lr:.3g}" for lr in lrs) + " |",
            "|---|---|---|" + "---|" * len(lrs),
        ]
        for loss, init, method in sorted(stable):
            cells_txt = []
            for lr in lrs:
                v = table.get((loss, init, method, lr))
                cells_txt.append(fmt.format(float(np.mean(v))) if v else "–")
            lines.append(f"| {loss} | {init} | {method} | " + " | ".join(cells_txt) + " |")
    lines += ["", *_drift_plots(records, out_dir)]
    return "\n".join(lines) + "\n"


def _drift_plots(records: list[dict[str, Any]], out_dir: pathlib.Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["config"]["loss"], float(r["config"]["lr"]))].append(r)
    for loss in sorted({k[0] for k in groups}):
        lrs = sorted(lr for (l_, lr) in groups if l_ == loss)
        # the largest lr at which plain GD from the default init still converged in most seeds
        lr = lrs[0]
        for cand in lrs:
            runs = [r for r in groups[(loss, cand)] if r["config"]["method"] == "none"]
            if runs and np.mean([r["metrics"]["diverged"] for r in runs]) < 0.5:
                lr = cand
        inits = [
            i
            for i in ("default", "imbalanced")
            if any(r["config"]["init"] == i for r in groups[(loss, lr)])
        ]
        fig, axes_arr = plt.subplots(
            1, len(inits), figsize=(5 * len(inits), 3.6), sharey=True, squeeze=False
        )
        axes = list(axes_arr[0])
        for ax, init in zip(axes, inits, strict=True):
            for method in _METHODS:
                runs = [
                    r["metrics"]
                    for r in groups[(loss, lr)]
                    if r["config"]["method"] == method and r["config"]["init"] == init
                ]
                if not runs:
                    continue
                n_steps = min(len(m["drift"]) for m in runs)
                steps = runs[0]["drift_steps"][:n_steps]
                curves = np.asarray([m["drift"][:n_steps] for m in runs], dtype=float)
                mean = curves.mean(0)
                color = f"C{_METHODS.index(method)}"
                ax.plot(steps, mean, color=color, label=f"{method} (n={len(runs)})")
                if len(runs) >= 2:
                    half = sps.t.ppf(0.975, len(runs) - 1) * curves.std(0, ddof=1)
                    half = half / math.sqrt(len(runs))
                    ax.fill_between(
                        steps, np.maximum(mean - half, 0.0), mean + half, color=color, alpha=0.2
                    )
            ax.set_title(f"{loss}, init={init}, lr={lr:.3g}")
            ax.set_xlabel("step")
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_xlim(left=0)
        axes[0].set_ylim(bottom=0)  # after every panel is drawn (shared y: no clipped curve)
        axes[0].set_ylabel("mean |log-scale imbalance|")
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"gauge_lr_drift_{loss}.png"
        atomic_savefig(fig, out_dir / name, dpi=100)
        plt.close(fig)
        out.append(f"![scale drift, {loss}: mean and 95% CI band over seeds]({name})")
        out.append("")
    return out
