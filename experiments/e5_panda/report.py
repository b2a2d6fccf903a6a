"""Markdown report of E5: tables, statistics, verdict against the paper, pictures."""

from __future__ import annotations

import pathlib
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from conserve_verified.robotics.picture import plot_trials, save_figure
from conserve_verified.runner.stats import mean_ci

from .cell import TIME_LIMIT, TOLERANCE
from .proportions import mcnemar, newcombe, wilson

__all__ = ["PAPER_PP", "make_report"]

#: The paper's conserved - plain success advantage under monocular-depth-style noise (pp).
PAPER_PP = 18.9

_Key = tuple[str, float]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _group(records: list[dict[str, Any]]) -> dict[_Key, dict[str, dict[int, dict[str, Any]]]]:
    """(noise, sigma) -> arm -> seed -> metrics, for records that finished."""
    out: dict[_Key, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        m = rec.get("metrics") or {}
        if rec.get("status", "ok") != "ok" or "successes" not in m:
            continue
        c = rec["config"]
        out[(str(c["noise"]), float(c["sigma"]))][str(c["arm"])][int(c["seed"])] = m
    return out


def _verdict(diff_low: float, diff_high: float) -> str:
    if diff_low <= 0 <= diff_high and diff_high >= PAPER_PP:
        return f"inconclusive: the 95% CI contains both 0 and the paper's +{PAPER_PP} pp"
    if diff_low <= PAPER_PP <= diff_high:
        return f"consistent with the paper's +{PAPER_PP} pp (inside the 95% CI)"
    if diff_low > 0:
        side = "larger" if diff_low > PAPER_PP else "smaller"
        return f"a conserved advantage, but {side} than the paper's +{PAPER_PP} pp"
    if diff_high < 0:
        return f"not reproduced: the plain pipeline is better (paper: +{PAPER_PP} pp)"
    return f"not reproduced: no significant difference (paper: +{PAPER_PP} pp)"


def _pooled(
    arms: dict[str, dict[int, dict[str, Any]]],
) -> tuple[dict[str, tuple[int, int]], list[bool], list[bool], list[float]]:
    """Pooled (successes, trials) per arm; paired outcomes; per-run differences (pp)."""
    counts = {}
    for arm in ("plain", "conserved"):
        runs = arms.get(arm, {})
        counts[arm] = (
            sum(m["successes"] for m in runs.values()),
            sum(m["trials"] for m in runs.values()),
        )
    plain_paired: list[bool] = []
    cons_paired: list[bool] = []
    run_diffs: list[float] = []
    for seed in sorted(set(arms.get("plain", {})) & set(arms.get("conserved", {}))):
        p, c = arms["plain"][seed], arms["conserved"][seed]
        plain_paired += p["per_trial"]["success"]
        cons_paired += c["per_trial"]["success"]
        run_diffs.append(100 * (c["success_rate"] - p["success_rate"]))
    return counts, plain_paired, cons_paired, run_diffs


def _success_plot(groups: dict[_Key, Any], out_dir: pathlib.Path) -> str:
    noises = sorted({k[0] for k in groups})
    fig, axes = plt.subplots(1, len(noises), figsize=(5 * len(noises), 3.6), squeeze=False)
    for ax, noise in zip(axes[0], noises, strict=True):
        sigmas = sorted(s for n, s in groups if n == noise)
        for arm, marker in (("plain", "o"), ("conserved", "s")):
            ys, lo, hi = [], [], []
            for s in sigmas:
                runs = groups[(noise, s)].get(arm, {})
                k = sum(m["successes"] for m in runs.values())
                n = sum(m["trials"] for m in runs.values())
                ci = wilson(k, n) if n else None
                ys.append(100 * ci.estimate if ci else np.nan)
                lo.append(100 * (ci.estimate - ci.low) if ci else 0.0)
                hi.append(100 * (ci.high - ci.estimate) if ci else 0.0)
            ax.errorbar(sigmas, ys, yerr=[lo, hi], marker=marker, capsize=3, label=arm)
        ax.set_title(f"noise: {noise}")
        ax.set_xlabel("sigma")
        ax.set_ylabel("success rate (%)")
        ax.set_ylim(-2, 102)
        ax.legend()
    name = "e5_panda_success.png"
    save_figure(fig, out_dir / name)
    return name


def _trial_picture(groups: dict[_Key, Any], out_dir: pathlib.Path) -> str | None:
    noisy = sorted((k for k in groups if k[1] > 0), key=lambda k: (k[0] != "monodepth", -k[1]))
    for key in noisy + sorted(groups):
        arms = groups[key]
        seeds = sorted(set(arms.get("plain", {})) & set(arms.get("conserved", {})))
        if not seeds:
            continue
        ex = {arm: arms[arm][seeds[0]]["example"] for arm in ("plain", "conserved")}
        if any(e.get("trajectory") is None for e in ex.values()):
            continue
        name = "e5_panda_trial.png"
        outcome = ", ".join(f"{a}: {e['reason']}" for a, e in ex.items())
        plot_trials(
            out_dir / name,
            depth=np.asarray(ex["plain"]["depth"]),
            target=np.asarray(ex["plain"]["target"]),
            paths={a: np.asarray(e["trajectory"]) for a, e in ex.items()},
            goals={a: np.asarray(e["goal"]) for a, e in ex.items()},
            tolerance=TOLERANCE,
            title=f"trial 0, run {seeds[0]}, noise {key[0]}, sigma={key[1]} ({outcome})",
        )
        return name
    return None


def make_report(records: list[dict[str, Any]], out_dir: pathlib.Path, title: str) -> str:
    """The experiment's Markdown section (see :func:`experiments.e5_panda.report`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = _group(records)
    lines = [
        f"## {title}",
        "",
        f"Success: end-effector within {100 * TOLERANCE:.0f} cm of the true target within "
        f"{TIME_LIMIT:g} s, no self-collision. Success rates pooled over runs with Wilson 95% "
        "CIs; Δ = conserved − plain in percentage points with Newcombe's hybrid-score 95% CI; "
        "per-run Δ as mean ± t-based 95% CI over runs; McNemar's exact test on the paired "
        "trials (both arms see the same targets and the same noise draws). σ acts on the "
        "boundary features; the depth image gets a tenth of it (see `noise_models`). The "
        "σ = 0 rows are the same clean condition, listed under each noise.",
        "",
    ]
    if not groups:
        return "\n".join([*lines, "No finished cells."])
    lines += [
        "| noise | σ | runs × trials | plain % [95% CI] | conserved % [95% CI] "
        "| Δ pp [95% CI] | per-run Δ pp | McNemar p | median goal error plain / cons. (cm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    monodepth_counts = {"plain": [0, 0], "conserved": [0, 0]}
    for key in sorted(groups):
        noise, sigma = key
        counts, pp, cp, run_diffs = _pooled(groups[key])
        cells = []
        for arm in ("plain", "conserved"):
            k, n = counts[arm]
            ci = wilson(k, n) if n else None
            cells.append(f"{_pct(ci.estimate)} [{_pct(ci.low)}, {_pct(ci.high)}]" if ci else "—")
        (kp, np_), (kc, nc) = counts["plain"], counts["conserved"]
        if np_ and nc:
            d = newcombe(kc, nc, kp, np_)
            diff = f"{100 * d.estimate:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"
        else:
            diff = "—"
        per_run = str(mean_ci(run_diffs)) if run_diffs else "—"
        p_val = f"{mcnemar(cp, pp):.3g}" if pp else "—"
        med = []
        for arm in ("plain", "conserved"):
            runs_of_arm = groups[key].get(arm, {}).values()
            errs = [e for m in runs_of_arm for e in m["per_trial"]["goal_error"]]
            med.append(f"{100 * float(np.median(errs)):.1f}" if errs else "—")
        runs = len(groups[key].get("conserved", {}))
        trials = nc // runs if runs else 0
        lines.append(
            f"| {noise} | {sigma:g} | {runs} × {trials} | {cells[0]} | {cells[1]} | {diff} "
            f"| {per_run} | {p_val} | {med[0]} / {med[1]} |"
        )
        if noise == "monodepth" and sigma > 0:
            for arm in ("plain", "conserved"):
                monodepth_counts[arm][0] += counts[arm][0]
                monodepth_counts[arm][1] += counts[arm][1]
    lines.append("")
    (kp, np_), (kc, nc) = monodepth_counts["plain"], monodepth_counts["conserved"]
    if np_ and nc:
        d = newcombe(kc, nc, kp, np_)
        lo, hi = 100 * d.low, 100 * d.high
        lines += [
            f"**Verdict (monocular-depth-style noise, all σ > 0 pooled, {nc} paired trials "
            f"per arm):** Δ = {100 * d.estimate:+.1f} pp [95% CI {lo:+.1f}, {hi:+.1f}] — "
            f"{_verdict(lo, hi)}.",
            "",
        ]
    else:
        lines += ["**Verdict:** no monocular-depth-style cells with σ > 0 were run.", ""]
    plot = _success_plot(groups, out_dir)
    lines += [f"![success rate vs sigma]({plot})", ""]
    picture = _trial_picture(groups, out_dir)
    if picture is not None:
        lines += [
            f"![a trial: depth image, end-effector paths of both arms, true target]({picture})",
            "",
        ]
    return "\n".join(lines)
