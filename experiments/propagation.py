r"""Noise propagation in a trained digits MLP: analytic predictor vs Monte Carlo (claim S).

``validation`` cells train a small ReLU MLP on scikit-learn digits
(64 -> 64 -> 64 -> 10, full-batch Adam, about a second) and compare, at every
tap (every layer's and boundary's output), the per-layer noise variance
predicted by :func:`conserve_verified.propagation.predict` with the Monte Carlo
estimate of :func:`conserve_verified.propagation.monte_carlo` (``samples``
noise draws for each of ``inputs`` test digits), for additive and
multiplicative, uncorrelated and fully correlated Gaussian noise of small
``sigma``, placed in every neuron (every Linear output) or at the pipeline
boundaries, without and with ``C_E`` at the boundaries (the same trained
weights; ``E`` = mean clean boundary energy).  Both are timed in the same run;
the ratio is Monte Carlo time over predictor time (the predictor's time is the
median of ``PREDICT_REPEATS`` runs; each estimator first makes one untimed warm-up
call).  The same records give the
qualitative findings: per-unit variance behind a linear layer against the
weights' mean of squares and squared mean; the variance ratio across each ReLU.

``depth`` cells train ReLU MLPs of ``max_depth`` hidden layers (width 32, He-initialised,
zero biases, full-batch Adam; 100% train / about 92% test accuracy at depth 20 in
about 3 s) and follow additive noise of ``depth_sigma`` injected at every boundary: the
predicted signal-to-noise ratio per depth (checked by a smaller Monte Carlo)
without and with conservation, and for the conserved arm the validity diagnostic of
the first-order C_E step (linearity ratio and the share of each boundary's noise that
passed a C_E step above ``LINEARITY_THRESHOLD``), so the report names the boundaries
outside the small-noise regime.

Acceptance (issue 6): relative error <= 10% at every tap that carries noise,
predictor >= 100x faster than the Monte Carlo estimate.
"""

from __future__ import annotations

import itertools
import math
import pathlib
import statistics
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from scipy import stats
from torch import nn

from conserve_verified import Conserved, Pipeline
from conserve_verified.atomic import atomic_savefig
from conserve_verified.data import load
from conserve_verified.noise import GaussianNoise, MultiplicativeNoise, NoiseInjector
from conserve_verified.propagation import (
    LINEARITY_THRESHOLD,
    RESOLVED_SE,
    LayerNoise,
    monte_carlo,
    predict,
    resolved,
)
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, group_by, markdown_table

NAME = "propagation"
TITLE = "Noise propagation: analytic predictor vs Monte Carlo on a trained digits MLP"
CLAIMS: tuple[str, ...] = ("S",)

#: Relative-error acceptance bound and speed-ratio bound of the issue.
MAX_REL_ERROR = 0.10
MIN_SPEEDUP = 100.0
#: The predictor (milliseconds) is timed as the median of this many runs, so that
#: one scheduler hiccup on a shared machine does not decide its time; the Monte Carlo
#: estimate (seconds) is timed once.
PREDICT_REPEATS = 15
#: Monte Carlo samples of the untimed warm-up call before each timed estimate.
WARMUP_SAMPLES = 100
#: A tap whose measured and predicted variance are both below this fraction of its
#: signal power carries no noise (e.g. fully correlated multiplicative noise after C_E).
ZERO_FRACTION = 1e-9

#: Depth study: width of the hidden layers and full-batch Adam schedule of the deep MLPs
#: (He-initialised, zero biases; about 3 s for 20 hidden layers on one core).
DEPTH_WIDTH = 32
DEPTH_STEPS = 300
DEPTH_LR = 3e-3
#: A depth-study boundary is reported outside the first-order regime when more than this
#: share of its predicted noise variance passed a C_E step with linearity ratio above
#: :data:`~conserve_verified.propagation.LINEARITY_THRESHOLD`.
OUTSIDE_SHARE = 0.1

_NOISE_TYPES = ["additive", "additive-correlated", "multiplicative", "multiplicative-correlated"]

GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {
        "part": ["validation", "depth"],
        "sigma": [0.05],
        "depth_sigma": [0.01],
        "samples": [1000],
        "inputs": [4],
        "max_depth": [4],
        "seed": [0],
    },
    "quick": {
        "part": ["validation", "depth"],
        "sigma": [0.05],
        "depth_sigma": [0.01],
        "samples": [10_000],
        "inputs": [20],
        "max_depth": [20],
        "seed": [0, 1, 2],
    },
    "paper": {
        "part": ["validation", "depth"],
        "sigma": [0.05],
        "depth_sigma": [0.01],
        "samples": [10_000],
        "inputs": [50],
        "max_depth": [20],
        "seed": [0, 1, 2, 3, 4],
    },
}


def _injector(kind: str, sigma: float, seed: int) -> NoiseInjector:
    if kind == "additive":
        return GaussianNoise(sigma, seed=seed)
    if kind == "additive-correlated":
        return GaussianNoise(sigma, correlation=1.0, seed=seed)
    if kind == "multiplicative":
        return MultiplicativeNoise(sigma, seed=seed)
    return MultiplicativeNoise(sigma, correlation=1.0, seed=seed)


def _train(model: Pipeline, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _he_init(mods: list[nn.Module]) -> None:
    """He (Kaiming-normal, fan-in, ReLU gain) weights and zero biases for every Linear."""
    for mod in mods:
        for layer in mod.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _mlp(widths: list[int], classes: int) -> list[nn.Module]:
    stages: list[nn.Module] = [
        nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in itertools.pairwise(widths)
    ]
    return [*stages, nn.Linear(widths[-1], classes)]


def _mean_energy(model: Pipeline, x: torch.Tensor) -> float:
    with torch.no_grad():
        acts = model.boundary_activations(x)
    return float(torch.stack([a.pow(2).sum(-1).mean() for a in acts]).mean())


def _tap_rows(pred: list[LayerNoise], mc: list[LayerNoise]) -> list[dict[str, Any]]:
    rows = []
    for p, m in zip(pred, mc, strict=True):
        power = max(m.signal_power, 1e-30)
        zero = max(p.noise_variance, m.noise_variance) <= ZERO_FRACTION * power
        rel = None if zero else abs(p.noise_variance / m.noise_variance - 1.0)
        rel_se = None if zero else m.noise_variance_rel_se
        rows.append(
            {
                "tap": p.name,
                "predicted": p.noise_variance,
                "measured": m.noise_variance,
                "rel_error": rel,
                "mc_rel_se": rel_se,
                "resolved": resolved(rel, rel_se),
                "snr_predicted": None if math.isinf(p.snr) else p.snr,
                "per_unit_measured": m.variance.mean(0).tolist(),
            }
        )
    return rows


def _validation(config: dict[str, Any], data: Any) -> dict[str, Any]:
    seed = int(config["seed"])
    torch.manual_seed(seed)
    x_train = data.x_train.flatten(1)
    x_test = data.x_test.flatten(1)
    mods = _mlp([x_train.shape[1], 64, 64], data.num_classes)
    plain = Pipeline(*mods)
    acc = _train(plain, x_train, data.y_train, steps=150, lr=1e-2)
    energy = _mean_energy(plain, x_train)
    conserved = Conserved(*mods, energy=energy).eval()
    x = x_test[: int(config["inputs"])]
    first: Any = mods[1]
    last: Any = mods[2]
    weights = {
        "stages.1.0:Linear": first[0].weight.detach(),
        "stages.2:Linear": last.weight.detach(),
    }
    runs = []
    for placement in ("neuron", "boundary"):
        for kind in _NOISE_TYPES:
            for arm, model in (("plain", plain), ("conserved", conserved)):
                inj = _injector(kind, float(config["sigma"]), seed)
                kw: dict[str, Any] = {f"{placement}_noise": inj}
                # one untimed warm-up call of each estimator (first-call costs excluded
                # alike), with its own injector so the timed draws are not shifted
                warm: dict[str, Any] = {
                    f"{placement}_noise": _injector(kind, float(config["sigma"]), seed)
                }
                predict(model, x, **warm)
                monte_carlo(model, x, samples=WARMUP_SAMPLES, **warm)
                times = []
                for _ in range(PREDICT_REPEATS):
                    t0 = time.perf_counter()
                    pred = predict(model, x, **kw)
                    times.append(time.perf_counter() - t0)
                t_pred = statistics.median(times)
                t0 = time.perf_counter()
                mc = monte_carlo(model, x, samples=int(config["samples"]), **kw)
                t_mc = time.perf_counter() - t0
                runs.append(
                    {
                        "placement": placement,
                        "noise": kind,
                        "arm": arm,
                        "t_predict_s": t_pred,
                        "t_monte_carlo_s": t_mc,
                        "speedup": t_mc / t_pred,
                        "taps": _tap_rows(pred, mc),
                    }
                )
    w_stats = {
        name: {
            "mean_sq": w.pow(2).mean(1).tolist(),
            "sq_mean": w.mean(1).pow(2).tolist(),
        }
        for name, w in weights.items()
    }
    return {"train_accuracy": acc, "energy": energy, "runs": runs, "weights": w_stats}


def _depth(config: dict[str, Any], data: Any) -> dict[str, Any]:
    seed = int(config["seed"])
    torch.manual_seed(seed)
    x_train = data.x_train.flatten(1)
    depth = int(config["max_depth"])
    mods = _mlp([x_train.shape[1]] + [DEPTH_WIDTH] * depth, data.num_classes)
    _he_init(mods)
    plain = Pipeline(*mods)
    acc = _train(plain, x_train, data.y_train, steps=DEPTH_STEPS, lr=DEPTH_LR)
    test_acc = _accuracy(plain, data.x_test.flatten(1), data.y_test)
    energy = _mean_energy(plain, x_train)
    x = data.x_test.flatten(1)[: max(2, int(config["inputs"]) // 4)]
    out: dict[str, Any] = {
        "train_accuracy": acc,
        "test_accuracy": test_acc,
        "energy": energy,
        "arms": {},
    }
    for arm, model in (("plain", plain), ("conserved", Conserved(*mods, energy=energy).eval())):
        inj = GaussianNoise(float(config["depth_sigma"]), seed=seed)
        pred = predict(model, x, boundary_noise=inj, linearity_threshold=LINEARITY_THRESHOLD)
        mc = monte_carlo(model, x, boundary_noise=inj, samples=min(2000, int(config["samples"])))
        keep = [i for i, p in enumerate(pred) if p.name.startswith("boundary")]
        out["arms"][arm] = {
            "depth": list(range(1, len(keep) + 1)),
            "linearity": [pred[i].max_linearity for i in keep],
            "outside_share": [pred[i].outside_share for i in keep],
            "noise_predicted": [pred[i].noise_variance for i in keep],
            "noise_measured": [mc[i].noise_variance for i in keep],
            "snr_predicted": [pred[i].snr for i in keep],
            "snr_measured": [mc[i].snr for i in keep],
        }
    return out


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    data = load(ctx.data, ctx.data_dir)
    if config["part"] == "validation":
        return _validation(config, data)
    return _depth(config, data)


# --------------------------------------------------------------------------- report


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "–" if v is None else format(v, spec)


def _validation_section(recs: list[Record], out_dir: pathlib.Path) -> list[str]:
    lines: list[str] = []
    all_rel: list[float] = []
    flags: list[bool] = []
    speedups: list[float] = []
    table = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in recs:
        for run in r["metrics"]["runs"]:
            groups.setdefault((run["placement"], run["noise"], run["arm"]), []).append(run)
            speedups.append(run["speedup"])
    for (placement, noise, arm), runs in groups.items():
        for k, tap in enumerate(runs[0]["taps"]):
            preds = [run["taps"][k]["predicted"] for run in runs]
            meas = [run["taps"][k]["measured"] for run in runs]
            rels = [run["taps"][k]["rel_error"] for run in runs]
            if all(m == 0.0 and p == 0.0 for p, m in zip(preds, meas, strict=True)):
                continue  # before the first noise source
            ses = [run["taps"][k].get("mc_rel_se") for run in runs]
            known_se = [v for v in ses if v is not None]
            se = f"{100 * max(known_se):.2f}%" if known_se else "–"
            flags += [f for f in (run["taps"][k].get("resolved") for run in runs) if f is not None]
            if all(e is None for e in rels):
                err = "exact 0 (both ≤ 1e-9 · signal)"
            else:
                worst = max(e for e in rels if e is not None)
                all_rel.append(worst)
                err = f"{100 * worst:.2f}%"
            table.append(
                [
                    placement,
                    noise,
                    arm,
                    tap["tap"],
                    _fmt(sum(preds) / len(preds)),
                    _fmt(sum(meas) / len(meas)),
                    se,
                    err,
                ]
            )
    n_seeds = len(recs)
    samples = recs[0]["config"]["samples"]
    inputs = recs[0]["config"]["inputs"]
    worst = max(all_rel) if all_rel else math.nan
    lines += [
        f"Validation: σ = {recs[0]['config']['sigma']}, {inputs} test digits × {samples} "
        f"noise samples each, {n_seeds} trained networks (seeds); training accuracy "
        + ", ".join(f"{r['metrics']['train_accuracy']:.3f}" for r in recs)
        + ".  Predicted and measured: mean over seeds of the per-layer noise variance "
        "(mean over inputs and units); MC rel. SE: the largest over seeds of the Monte "
        "Carlo estimate's own relative standard error; relative error: the worst over seeds.",
        "",
        markdown_table(
            [
                "placement",
                "noise",
                "arm",
                "tap",
                "predicted",
                "measured",
                "MC rel. SE",
                "rel. error",
            ],
            table,
        ),
        "",
        f"Worst relative error over all {len(all_rel)} noisy taps: **{100 * worst:.2f}%** "
        f"(bound {100 * MAX_REL_ERROR:.0f}%): "
        f"**{'PASS' if worst <= MAX_REL_ERROR else 'FAIL'}**.",
        "",
        _resolution_line(flags),
        "",
        "Speed ratio (Monte Carlo time / predictor time, measured in the same run for each "
        f"configuration; predictor: median of {PREDICT_REPEATS} runs; n = {len(speedups)}): "
        f"min {min(speedups):.0f}×, median "
        f"{sorted(speedups)[len(speedups) // 2]:.0f}×, mean {fmt_ci(speedups, 0)}; bound "
        f"{MIN_SPEEDUP:.0f}×: **{'PASS' if min(speedups) >= MIN_SPEEDUP else 'FAIL'}** "
        "(on the minimum).",
        "",
    ]
    lines += _findings(recs, groups)
    _plot_validation(groups, out_dir / "propagation_predicted_vs_measured.png")
    lines += ["", "![predicted vs measured](propagation_predicted_vs_measured.png)", ""]
    return lines


def _resolution_line(flags: list[bool]) -> str:
    """How many tap errors (over seeds) the Monte Carlo estimate resolves."""
    if not flags:
        return "Monte Carlo standard errors: not recorded."
    return (
        f"Resolved: {sum(flags)} of {len(flags)} tap errors (taps × seeds) exceed "
        f"{RESOLVED_SE:g} Monte Carlo standard errors; the others are within the "
        "estimate's own sampling error, which then bounds the predictor's error "
        "rather than measuring it."
    )


def _findings(recs: list[Record], groups: dict[tuple[str, str, str], list[Any]]) -> list[str]:
    rows = []
    tap = "stages.1.0:Linear"
    for noise in ("additive", "additive-correlated"):
        runs = groups.get(("boundary", noise, "plain"), [])
        r_sq, r_mean = [], []
        for rec, run in zip(recs, runs, strict=False):
            t = next(t for t in run["taps"] if t["tap"] == tap)
            w = rec["metrics"]["weights"][tap]
            r_sq.append(float(stats.pearsonr(t["per_unit_measured"], w["mean_sq"]).statistic))
            r_mean.append(float(stats.pearsonr(t["per_unit_measured"], w["sq_mean"]).statistic))
        rows.append([noise, fmt_ci(r_sq, 3), fmt_ci(r_mean, 3)])
    relu = []
    for (placement, noise, arm), runs in groups.items():
        ratios = []
        for run in runs:
            taps = run["taps"]
            for i, t in enumerate(taps):
                if t["tap"].endswith("ReLU") and taps[i - 1]["measured"] > 0:
                    ratios.append(t["measured"] / taps[i - 1]["measured"])
        if ratios and placement == "boundary":
            relu.append([placement, noise, arm, fmt_ci(ratios, 3)])
    return [
        "Finding 1 — which weight statistic governs the noise behind a linear layer "
        f"(boundary noise, plain, tap `{tap}`): Pearson r between the measured per-unit "
        "variance and each unit's mean of squared weights / squared mean weight "
        "(mean [95% CI] over seeds):",
        "",
        markdown_table(["noise", "r with mean(W²)", "r with mean(W)²"], rows),
        "",
        "Finding 2 — suppression where the slope < 1: measured variance after / before "
        "each ReLU (ReLU slope is 0 or 1; inactive units remove their noise):",
        "",
        markdown_table(["placement", "noise", "arm", "Var after / before ReLU"], relu),
        "",
    ]


def _plot_validation(groups: dict[tuple[str, str, str], list[Any]], path: pathlib.Path) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), squeeze=False)
    for col, noise in enumerate(_NOISE_TYPES):
        for row, placement in enumerate(("neuron", "boundary")):
            ax = axes[row][col]
            for arm, marker in (("plain", "o"), ("conserved", "s")):
                runs = groups.get((placement, noise, arm), [])
                if not runs:
                    continue
                taps = runs[0]["taps"]
                xs = list(range(len(taps)))
                ax.plot(xs, [t["predicted"] for t in taps], "-", label=f"{arm} predicted")
                ax.plot(
                    xs, [t["measured"] for t in taps], marker, fillstyle="none", label=f"{arm} MC"
                )
                ax.set_xticks(xs, [t["tap"].split(":")[-1] for t in taps], rotation=60, fontsize=7)
            ax.set_yscale("symlog", linthresh=1e-8)
            ax.set_title(f"{noise}, {placement}", fontsize=9)
            if col == 0:
                ax.set_ylabel("noise variance")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1–3, 7"`` (``"none"`` when empty)."""
    if not values:
        return "none"
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def _depth_section(recs: list[Record], out_dir: pathlib.Path) -> list[str]:
    rows = []
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for arm in ("plain", "conserved"):
        for rec in recs:
            d = rec["metrics"]["arms"][arm]
            depth = d["depth"]
            snr_db = [10 * math.log10(s) for s in d["snr_predicted"]]
            snr_mc = [10 * math.log10(s) for s in d["snr_measured"]]
            style = "-" if arm == "plain" else "--"
            ax[0].plot(depth, snr_db, style, label=f"{arm} seed {rec['config']['seed']}")
            ax[0].plot(depth, snr_mc, "o" if arm == "plain" else "s", ms=3, fillstyle="none")
            ax[1].plot(depth, d["noise_predicted"], style)
            half = len(depth) // 2
            rel = [
                abs(p / m - 1)
                for p, m in zip(d["noise_predicted"], d["noise_measured"], strict=True)
            ]
            shares = d.get("outside_share") or [None] * len(depth)
            out = [k for k, sh in enumerate(shares) if sh is not None and sh > OUTSIDE_SHARE]
            inside = [e for k, e in enumerate(rel) if k not in out]
            lin = [v for v in d.get("linearity") or [] if v is not None]
            test_acc = rec["metrics"].get("test_accuracy")
            rows.append(
                [
                    arm,
                    rec["config"]["seed"],
                    f"{rec['metrics']['train_accuracy']:.3f}",
                    "–" if test_acc is None else f"{test_acc:.3f}",
                    f"{snr_db[0]:.1f}",
                    f"{snr_db[half - 1]:.1f}",
                    f"{snr_db[-1]:.1f}",
                    f"{snr_db[-1] - snr_db[half - 1]:+.1f}",
                    f"{100 * max(rel):.1f}%",
                    f"{100 * max(inside):.1f}%" if inside else "–",
                    f"{max(lin):.3f}" if lin else "–",
                    _ranges([depth[k] for k in out]),
                ]
            )
    ax[0].set_xlabel("boundary (depth)")
    ax[0].set_ylabel("SNR (dB), lines predicted, markers MC")
    ax[1].set_xlabel("boundary (depth)")
    ax[1].set_ylabel("noise variance (predicted)")
    ax[1].set_yscale("log")
    ax[0].legend(fontsize=6)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "propagation_depth.png", dpi=110)
    plt.close(fig)
    n = recs[0]["metrics"]["arms"]["plain"]["depth"][-1]
    return [
        f"Finding 3 — accumulation over depth (ReLU MLPs with {n} boundaries, width "
        f"{DEPTH_WIDTH}, He-initialised, full-batch Adam, {DEPTH_STEPS} steps at lr {DEPTH_LR}; "
        f"additive noise σ = {recs[0]['config']['depth_sigma']} at every boundary; predicted SNR "
        "checked against a Monte Carlo of min(2,000, samples) draws per input).  Validity of "
        "the first-order C_E step: the linearity ratio noise std / ρ where C_E is linearised "
        f"(max over boundaries and inputs); a boundary is *outside the small-noise regime* when "
        f"more than {100 * OUTSIDE_SHARE:.0f}% of its predicted noise variance passed a C_E "
        f"step with ratio > {LINEARITY_THRESHOLD} (`LINEARITY_THRESHOLD`; "
        "`predict(linearity_threshold=...)`); its prediction is first-order only and the "
        "error there is not covered by the small-noise validation above.",
        "",
        markdown_table(
            [
                "arm",
                "seed",
                "train acc.",
                "test acc.",
                "SNR dB @1",
                f"SNR dB @{n // 2}",
                f"SNR dB @{n}",
                "change, 2nd half",
                "max rel. err. (MC)",
                "max rel. err., in regime",
                "max ratio",
                "boundaries outside regime",
            ],
            rows,
        ),
        "",
        "![SNR over depth](propagation_depth.png)",
        "",
    ]


#: Claim S, "accumulation is bounded": over the second half of the depth study the plain
#: network's SNR changes by less than this many dB (a claimed non-effect with this margin).
BOUNDED_MARGIN_DB = 3.0


def _pearson_gap(rec: Record, noise: str) -> float | None:
    """r(measured per-unit variance, mean(W²)) − r(…, mean(W)²) behind the first hidden Linear."""
    tap = "stages.1.0:Linear"
    for run in rec["metrics"]["runs"]:
        if (run["placement"], run["noise"], run["arm"]) == ("boundary", noise, "plain"):
            t = next(t for t in run["taps"] if t["tap"] == tap)
            w = rec["metrics"]["weights"][tap]
            r_sq = float(stats.pearsonr(t["per_unit_measured"], w["mean_sq"]).statistic)
            r_mean = float(stats.pearsonr(t["per_unit_measured"], w["sq_mean"]).statistic)
            return r_sq - r_mean
    return None


def _relu_suppression(rec: Record) -> float | None:
    """Mean over ReLUs of −log10(Var after / Var before), boundary additive noise, plain arm."""
    vals = []
    for run in rec["metrics"]["runs"]:
        if (run["placement"], run["noise"], run["arm"]) != ("boundary", "additive", "plain"):
            continue
        taps = run["taps"]
        for i, t in enumerate(taps):
            before = taps[i - 1]["measured"] if i > 0 else 0.0
            if t["tap"].endswith("ReLU") and before > 0 and t["measured"] > 0:
                vals.append(-math.log10(t["measured"] / before))
    return sum(vals) / len(vals) if vals else None


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """Claim S rows, one value per trained network (seed), t CI over seeds.

    * predictor validity: worst relative error (%) of the analytic predictor against
      Monte Carlo over every noisy tap, a claimed non-effect with margin
      ``100 * MAX_REL_ERROR``; speed ratio as ``log10(ratio / MIN_SPEEDUP)`` of the
      slowest configuration (positive = faster than the bound);
    * "uncorrelated noise is governed by the mean of the squared weights, correlated
      noise by the mean of the weights": the gap between the Pearson correlations of the
      per-unit variance with mean(W²) and with mean(W)² (additive noise; positive for
      uncorrelated, negative for correlated, so the correlated row uses the mirrored gap);
    * "suppressed where the slope < 1": −log10 of the variance ratio across each ReLU;
    * "accumulation is bounded": the plain network's SNR change (dB) over the second
      half of the depth study, a non-effect with margin :data:`BOUNDED_MARGIN_DB`.

    The paper gives no sizes (``paper=None`` rows are unsized positive effects).
    """
    from conserve_verified.runner.verdict import effect_row, estimate_mean

    val = sorted(
        (r for r in records if r["config"]["part"] == "validation"),
        key=lambda r: r["config"]["seed"],
    )
    depth = sorted(
        (r for r in records if r["config"]["part"] == "depth"), key=lambda r: r["config"]["seed"]
    )
    rows = []
    if val:
        worst = []
        slow = []
        for r in val:
            errs = [
                t["rel_error"]
                for run in r["metrics"]["runs"]
                for t in run["taps"]
                if t["rel_error"] is not None
            ]
            worst.append(100.0 * max(errs) if errs else 0.0)
            slow.append(
                math.log10(min(run["speedup"] for run in r["metrics"]["runs"]) / MIN_SPEEDUP)
            )
        rows.append(
            effect_row(
                "S",
                "predictor vs Monte Carlo: worst relative error over noisy taps (%)",
                0.0,
                estimate_mean(worst, method="t over networks"),
                margin=100 * MAX_REL_ERROR,
                note=f"margin ±{100 * MAX_REL_ERROR:.0f}%; "
                f"σ = {val[0]['config']['sigma']}, {val[0]['config']['samples']} MC samples",
            )
        )
        ratio = 10 ** (sum(slow) / len(slow)) * MIN_SPEEDUP
        rows.append(
            effect_row(
                "S",
                f"speed: log10(MC time / predictor time / {MIN_SPEEDUP:.0f}), slowest config",
                None,
                estimate_mean(slow, method="t over networks"),
                note=f"geometric-mean minimum speed ratio {ratio:.0f}×",
            )
        )
        for noise, sign, what in (
            ("additive", 1.0, "uncorrelated noise follows mean(W²)"),
            ("additive-correlated", -1.0, "correlated noise follows mean(W)²"),
        ):
            gaps = [g for r in val if (g := _pearson_gap(r, noise)) is not None]
            rows.append(
                effect_row(
                    "S",
                    f"{what}: Pearson r gap ({noise}, boundary noise)",
                    None,
                    estimate_mean([sign * g for g in gaps], method="t over networks"),
                    note="r(per-unit variance, mean(W²)) − r(…, mean(W)²)"
                    + (", sign flipped" if sign < 0 else ""),
                )
            )
        sup = [v for r in val if (v := _relu_suppression(r)) is not None]
        rows.append(
            effect_row(
                "S",
                "suppression where slope < 1: −log10(Var after / before ReLU)",
                None,
                estimate_mean(sup, method="t over networks"),
                note="additive boundary noise, plain network",
            )
        )
    if depth:
        change = []
        for r in depth:
            snr = r["metrics"]["arms"]["plain"]["snr_measured"]
            half = len(snr) // 2
            change.append(10 * math.log10(snr[-1]) - 10 * math.log10(snr[half - 1]))
        n_b = len(depth[0]["metrics"]["arms"]["plain"]["snr_measured"])
        rows.append(
            effect_row(
                "S",
                f"bounded accumulation: SNR change (dB), boundaries {n_b // 2}→{n_b}, plain",
                0.0,
                estimate_mean(change, method="t over networks"),
                margin=BOUNDED_MARGIN_DB,
                note=f"margin ±{BOUNDED_MARGIN_DB:g} dB; additive σ = "
                f"{depth[0]['config']['depth_sigma']} at every boundary (Monte Carlo SNR)",
            )
        )
    return rows


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = group_by(records, lambda r: r["config"]["part"])
    lines = [f"## {TITLE}", ""]
    if "validation" in parts:
        lines += _validation_section(parts["validation"], out_dir)
    if "depth" in parts:
        lines += _depth_section(parts["depth"], out_dir)
    return "\n".join(lines)
