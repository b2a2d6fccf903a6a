"""ACE: three ways to impose a constraint -- penalty, hard projection, adaptive constrained.

Two constraints, each imposed by four strategies of :mod:`conserve_verified.constraints`
(``none``, ``penalty``, ``hard``, ``ace``) on the same model, data and budget:

``energy``
    ``| ||h||^2 - E | <= eps`` at every boundary of a modular MLP (``E`` = width, unit
    RMS per feature).  ``hard`` is ``C_E`` after the boundary hook (the conserved
    pipeline); ``penalty`` adds ``lam / E * violation``; ``ace`` runs primal-dual with a
    tolerance homotopy from ``E`` down to ``eps_end * E``.  Metrics: clean accuracy,
    retention (``100 * noisy / clean``, the mean of 20 noise draws) under Gaussian noise
    at every boundary (E1's setting) of absolute ``sigma`` (E-dependent) or ``sigma`` times
    the RMS of the CLEAN activation where the noise is added (SNR-matched), final
    relative violation ``mean | ||h||^2 / E - 1 |`` on the clean test set (worst boundary).
    Where the noise ``n`` enters relative to ``C_E``: ``hard`` evaluates ``C_E(n(h))``
    (re-projection after the noise); its normalisation-only control ``hard [normalized]``
    evaluates the same weights as ``n(C_E(h))`` (noise after the projection, none after
    it); ``none``/``penalty``/``ace`` have no projection (``n(h)``).  hard − control is the
    conservation effect, control − none the normalisation effect (paired by seed).
``equivariance``
    invariance of the logits to D4 (rotations by 90 degrees and flips of the 8x8 digit
    images).  ``hard`` trains the group-averaged model; ``penalty``/``ace`` penalise the
    measured equivariance violation.  Metrics per epoch: clean accuracy, accuracy on
    D4-transformed test images, relative equivariance error; final values in the table.
"""

from __future__ import annotations

import math
import pathlib
from functools import partial
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

from conserve_verified.atomic import atomic_savefig
from conserve_verified.constraints import (
    ACE,
    EnergyConstraint,
    EquivarianceConstraint,
    Hard,
    Penalty,
    Strategy,
    ToleranceSchedule,
)
from conserve_verified.data import Dataset, load
from conserve_verified.equivariance import (
    GroupAveraged,
    dihedral_images,
    equivariance_error,
    trivial,
)
from conserve_verified.models import mlp_stages
from conserve_verified.noise import GaussianNoise, ReferenceScaled
from conserve_verified.operators import Pipeline
from conserve_verified.runner.conservation import (
    attribution_of,
    attribution_rows,
    attribution_table,
    ci_band_plot,
    per_seed,
)
from conserve_verified.runner.paired import pair_by_seed, paired_difference
from conserve_verified.runner.protocol import Record, RunContext
from conserve_verified.runner.tables import fmt_ci, fmt_p, group_by, markdown_table, values
from conserve_verified.runner.verdict import effect_row, holm_adjust

NAME = "ace"
TITLE = "ACE: penalty vs hard projection vs adaptive constrained learning (energy, equivariance)"
CLAIMS = ("A",)

_STRATEGIES = ["none", "penalty", "hard", "ace"]
_SIGMAS = [0.2, 0.5, 1.0]
_COMMON: dict[str, list[Any]] = {
    "part": ["energy", "equivariance"],
    "strategy": _STRATEGIES,
    "width": [64],
    "depth": [3],
    "lam": [1.0],
    # final tolerance of ACE per part (energy: relative to E; equivariance: absolute)
    "eps_end": [{"energy": 0.2, "equivariance": 0.05}],
    "sigmas": [_SIGMAS],
    "draws": [20],
}
GRIDS: dict[str, dict[str, list[Any]]] = {
    "smoke": {**_COMMON, "epochs": [1], "max_train": [256], "seed": [0]},
    "quick": {**_COMMON, "epochs": [20], "max_train": [None], "seed": list(range(5))},
    "paper": {**_COMMON, "epochs": [60], "max_train": [None], "seed": list(range(10))},
}

_CONVENTIONS = ("absolute", "relative")
_BATCH = 64
_LR = 1e-3


def _strategy(config: dict[str, Any], constraint: Any, scale: float, total: int) -> Strategy | None:
    kind = config["strategy"]
    if kind == "none":
        return None
    if kind == "penalty":
        return Penalty(constraint, float(config["lam"]) / scale)
    if kind == "hard":
        return Hard(constraint)
    steps = max(1, int(0.6 * total))
    schedule = ToleranceSchedule(scale, float(config["eps_end"][config["part"]]) * scale, steps)
    return ACE(constraint, dual_lr=1.0 / scale, schedule=schedule)


def _batches(n: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + _BATCH] for i in range(0, n, _BATCH)]


def _train_set(data: Dataset, config: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    m = config.get("max_train")
    x, y = data.x_train, data.y_train
    return (x, y) if m is None else (x[: int(m)], y[: int(m)])


# --------------------------------------------------------------------------- energy part


def _noisy_accuracy(
    model: Pipeline,
    xt: torch.Tensor,
    yt: torch.Tensor,
    project: Any,
    order: str,
    sigma: float,
    convention: str,
    seed: int,
) -> float:
    """Accuracy under one draw of Gaussian noise at every boundary.

    ``order``: ``"post"`` = ``project(n(h))`` (re-projection after the noise),
    ``"pre"`` = ``n(project(h))`` (the normalisation-only control), ``"none"`` =
    ``n(h)``.  ``relative``: the noise is ``sigma`` times the per-sample RMS of the
    CLEAN activation at the point where it is added (:class:`ReferenceScaled`).
    """
    inner = GaussianNoise(sigma, seed=seed)
    noise: Any = ReferenceScaled(inner) if convention == "relative" else inner
    if isinstance(noise, ReferenceScaled):
        ref: list[torch.Tensor] = []

        def capture(h: torch.Tensor, i: int) -> torch.Tensor:
            ref.append(project(h, i) if order == "pre" else h)
            return project(h, i)

        with model.boundary_hook(capture):
            model(xt)
        noise.set_reference(ref)

    def hook(h: torch.Tensor, i: int) -> torch.Tensor:
        if order == "post":
            return project(noise(h, i), i)
        if order == "pre":
            return noise(project(h, i), i)
        return noise(h, i)

    with model.boundary_hook(hook):
        return float((model(xt).argmax(1) == yt).float().mean())


def _energy_cell(config: dict[str, Any], data: Dataset) -> dict[str, Any]:
    seed = int(config["seed"])
    torch.manual_seed(seed)
    width = int(config["width"])
    e = float(width)
    model = Pipeline(*mlp_stages(data.input_shape, data.num_classes, width, int(config["depth"])))
    x, y = _train_set(data, config)
    epochs = int(config["epochs"])
    gen = torch.Generator().manual_seed(seed)
    total = epochs * math.ceil(x.shape[0] / _BATCH)
    constraint = EnergyConstraint(e)
    strategy = _strategy(config, constraint, e, total)
    opt = torch.optim.Adam(model.parameters(), lr=_LR)
    recorded: list[torch.Tensor] = []

    def train_hook(h: torch.Tensor, _i: int) -> torch.Tensor:
        h = strategy.project(h) if strategy is not None else h
        recorded.append(h)
        return h

    model.train()
    model.set_boundary_hook(train_hook)
    for _ in range(epochs):
        for idx in _batches(x.shape[0], gen):
            recorded.clear()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            if strategy is not None:
                loss = loss + strategy(*recorded)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if strategy is not None:
                strategy.step()
    model.set_boundary_hook(None)
    model.eval()
    xt, yt = data.x_test, data.y_test

    def project(h: torch.Tensor, _i: int) -> torch.Tensor:
        return strategy.project(h) if strategy is not None else h

    with torch.no_grad():
        with model.boundary_hook(project):
            clean = float((model(xt).argmax(1) == yt).float().mean())
            acts = model.boundary_activations(xt)
        viol = max(float(constraint.violation(h)) / e for h in acts)
        orders = {"": "post"} if isinstance(strategy, Hard) else {"": "none"}
        if isinstance(strategy, Hard):
            orders["normalized"] = "pre"
        evals = []
        draws = int(config.get("draws", 20))
        for c_i, convention in enumerate(_CONVENTIONS):
            for s_i, sigma in enumerate(config["sigmas"]):
                seeds = [1_000_003 * seed + 1_009 * c_i + 37 * s_i + d for d in range(draws)]
                for ev, order in orders.items():
                    accs = [
                        _noisy_accuracy(model, xt, yt, project, order, float(sigma), convention, q)
                        for q in seeds
                    ]
                    acc = float(sum(accs) / len(accs))
                    evals.append(
                        {
                            "sigma": float(sigma),
                            "convention": convention,
                            "eval_arm": ev or config["strategy"],
                            "accuracy": acc,
                            "draws": len(accs),
                            "retention_pct": 100 * acc / clean,
                        }
                    )
    out: dict[str, Any] = {"clean_accuracy": clean, "final_violation": viol, "noise": evals}
    if isinstance(strategy, ACE):
        out["dual"] = strategy.state()["dual"]
        out["final_tolerance"] = strategy.schedule.end / e
        out["satisfied"] = viol <= strategy.schedule.end / e
    return out


# --------------------------------------------------------------------------- equivariance part


def _equivariance_cell(config: dict[str, Any], data: Dataset) -> dict[str, Any]:
    seed = int(config["seed"])
    torch.manual_seed(seed)
    side = data.input_shape[-1]
    rep = dihedral_images(side)
    rep_out = trivial(rep, (data.num_classes,))
    width = int(config["width"])
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(side * side, 2 * width),
        nn.ReLU(),
        nn.Linear(2 * width, 2 * width),
        nn.ReLU(),
        nn.Linear(2 * width, data.num_classes),
    )
    x, y = _train_set(data, config)
    x = x.reshape(-1, side, side)
    xt = data.x_test.reshape(-1, side, side)
    yt = data.y_test
    epochs = int(config["epochs"])
    gen = torch.Generator().manual_seed(seed)
    total = epochs * math.ceil(x.shape[0] / _BATCH)
    constraint = EquivarianceConstraint(rep, rep_out)
    strategy = _strategy(config, constraint, 1.0, total)
    model: nn.Module = GroupAveraged(net, rep, rep_out) if isinstance(strategy, Hard) else net
    opt = torch.optim.Adam(net.parameters(), lr=_LR)
    g_test = torch.randint(0, rep.order, (xt.shape[0],), generator=torch.Generator().manual_seed(7))
    xt_g = torch.stack([rep.act(xt[i], int(g_test[i])) for i in range(xt.shape[0])])

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            err = equivariance_error(model, xt, rep, rep_out)
            return {
                "clean_accuracy": float((model(xt).argmax(1) == yt).float().mean()),
                "transformed_accuracy": float((model(xt_g).argmax(1) == yt).float().mean()),
                "equivariance_error": float(err.mean()),
                "violation": float(constraint.violation(model, xt)),
            }

    curve = []
    for epoch in range(epochs):
        model.train()
        for idx in _batches(x.shape[0], gen):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            if strategy is not None and not isinstance(strategy, Hard):
                loss = loss + strategy(model, x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if strategy is not None:
                strategy.step()
        curve.append({"epoch": epoch + 1, **evaluate()})
    out: dict[str, Any] = {**curve[-1], "curve": curve}
    out["final_violation"] = out.pop("violation")
    if isinstance(strategy, ACE):
        out["dual"] = strategy.state()["dual"]
        out["final_tolerance"] = strategy.schedule.end
        out["satisfied"] = out["final_violation"] <= strategy.schedule.end
    return out


def run_cell(config: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    torch.set_num_threads(1)
    data = load(ctx.data, ctx.data_dir)
    if config["part"] == "energy":
        return _energy_cell(config, data)
    if tuple(data.input_shape[-2:]) != (data.input_shape[-1],) * 2:
        raise ValueError(f"equivariance part needs square images, got {data.input_shape}")
    return _equivariance_cell(config, data)


# --------------------------------------------------------------------------- report


def _retention(
    r: Record, sigma: float, convention: str = "absolute", eval_arm: str | None = None
) -> float | None:
    want = eval_arm or r["config"]["strategy"]
    for e in r["metrics"].get("noise", []):
        if (
            e["sigma"] == sigma
            and e.get("convention", "absolute") == convention
            and e.get("eval_arm", r["config"]["strategy"]) == want
        ):
            return float(e["retention_pct"])
    return None


def _welch_rows(by: dict[str, list[Record]], get: Any, label: str) -> list[list[str]]:
    """Paired-by-seed comparisons of ACE with each other strategy (mean diff, p, d_z)."""
    rows = []
    a = per_seed(by.get("ace", []), get)
    for other in ("none", "penalty", "hard"):
        xa, xo, _ = pair_by_seed(a, per_seed(by.get(other, []), get))
        if len(xa) >= 2:
            est = paired_difference(xa, xo, zero_variance="sign-test")
            dz = "–" if est.effect_size is None else f"{est.effect_size:.2f}"
            rows.append([label, f"ace − {other}", f"{est.mean:+.2f}", fmt_p(est.p_value), dz])
    return rows


def _attribution(energy: dict[str, list[Record]], q: float, conv: str) -> dict[str, Any]:
    # the hard arm's own evaluation is the conserved one (projection after the noise)
    return attribution_of(
        energy.get("none", []),
        energy.get("hard", []),
        lambda r, ev: _retention(r, q, conv, ev),
        conserved_eval=None,
    )


def _paired_row(
    by: dict[str, list[Record]], a: str, b: str, get: Any, quantity: str, note: str = ""
) -> dict[str, Any] | None:
    xa, xb, _ = pair_by_seed(per_seed(by.get(a, []), get), per_seed(by.get(b, []), get))
    if not xa:
        return None
    return effect_row(
        "A", quantity, None, paired_difference(xa, xb, zero_variance="sign-test"), note=note
    )


def claim_rows(records: list[Record]) -> list[dict[str, Any]]:
    """Claim A rows (no paper values: the claim states effects of unstated size), paired by
    seed and Holm-adjusted: ACE vs the strictly equivariant (hard) model on clean and
    transformed accuracy; ACE vs hard and vs none on noise retention (σ = 0.5); the hard
    projection's conservation / normalisation attribution at σ = 0.5 (both conventions)."""
    parts = group_by(records, lambda r: r["config"]["part"])
    energy = group_by(parts.get("energy", []), lambda r: r["config"]["strategy"])
    equiv = group_by(parts.get("equivariance", []), lambda r: r["config"]["strategy"])
    rows: list[dict[str, Any]] = []
    for key, what in (("clean_accuracy", "performance"), ("transformed_accuracy", "robustness")):
        row = _paired_row(
            equiv,
            "ace",
            "hard",
            lambda r, k=key: 100 * r["metrics"][k],
            f"equivariance: {key.replace('_', ' ')} ACE − strictly equivariant (pp)",
            f"claim: ACE improves {what} vs strictly equivariant models",
        )
        if row is not None:
            rows.append(row)
    q = 0.5
    for conv in _CONVENTIONS:
        tag = "SNR-matched (clean RMS)" if conv == "relative" else "absolute σ, E-dependent"
        for other in ("hard", "none"):
            row = _paired_row(
                energy,
                "ace",
                other,
                lambda r, c=conv: _retention(r, q, c),
                f"energy: retention ACE − {other} (pp), σ={q}, {tag}",
                "claim: ACE improves robustness",
            )
            if row is not None:
                rows.append(row)
        if energy.get("hard") and energy.get("none"):
            rows += attribution_rows(
                "A",
                f"energy: hard projection, retention σ={q}, {tag}",
                None,
                _attribution(energy, q, conv),
                "no paper value; hard = C_E after the noise",
            )
    return holm_adjust(rows)


def report(records: list[Record], out_dir: pathlib.Path) -> str:
    out = [f"## {TITLE}", ""]
    parts = group_by(records, lambda r: r["config"]["part"])
    energy = group_by(parts.get("energy", []), lambda r: r["config"]["strategy"])
    equiv = group_by(parts.get("equivariance", []), lambda r: r["config"]["strategy"])
    sigmas = records[0]["config"]["sigmas"] if records else _SIGMAS
    tests: list[list[str]] = []
    if energy:
        out += [
            "**Energy constraint** `| ||h||² − E | ≤ ε` at every boundary (E = width). "
            "Mean [95% CI] (n seeds). Retention = 100 · noisy / clean accuracy under "
            "Gaussian noise at every boundary (mean of 20 draws per model), σ absolute (per "
            "feature, the paper's convention; E-dependent) or relative (σ · RMS of the CLEAN "
            "activation where the noise is added: the same SNR for every strategy); "
            "final violation = "
            "mean |‖h‖²/E − 1| on the clean test set, worst boundary.",
            "",
        ]
        for conv in _CONVENTIONS:
            rows = []
            for s, ev in [*((s, None) for s in _STRATEGIES), ("hard", "normalized")]:
                rs = energy.get(s, [])
                if ev is not None and not any(_retention(r, sigmas[0], conv, ev) for r in rs):
                    continue
                rows.append(
                    [
                        s if ev is None else f"{s} [{ev}: noise after C_E]",
                        fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"])),
                    ]
                    + [
                        fmt_ci(
                            values(rs, partial(_retention, sigma=q, convention=conv, eval_arm=ev))
                        )
                        for q in sigmas
                    ]
                    + [fmt_ci(values(rs, lambda r: r["metrics"]["final_violation"]), 4)]
                )
            head = ["strategy", "clean acc %"] + [f"retention σ={q}" for q in sigmas]
            out += [f"*{conv} σ*", "", markdown_table([*head, "final violation"], rows), ""]
            for q in sigmas:
                tests += _welch_rows(
                    energy,
                    lambda r, q=q, c=conv: _retention(r, q, c),
                    f"energy retention {conv} σ={q}",
                )
        tests += _welch_rows(
            energy, lambda r: 100 * r["metrics"]["clean_accuracy"], "energy clean acc"
        )
        ace_rs = energy.get("ace", [])
        if ace_rs:
            ok = sum(bool(r["metrics"].get("satisfied")) for r in ace_rs)
            tol = ace_rs[0]["metrics"].get("final_tolerance")
            out += [
                f"ACE within its final tolerance ε_end = {tol} · E: {ok}/{len(ace_rs)} seeds.",
                "",
            ]
        table = []
        for conv in _CONVENTIONS:
            for q in sigmas:
                table.append((f"retention σ={q}, {conv}", _attribution(energy, q, conv)))
        out += [
            "**Attribution of the hard projection** (retention, pp; paired by seed; "
            "raw p / Holm p over claim A's rows (verdict)): total = hard − none, "
            "conservation = hard − hard [normalized], normalisation = hard [normalized] − none.",
            "",
            attribution_table(table, claim_rows(records)),
            "",
        ]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
        for ax, conv in zip(axes, _CONVENTIONS, strict=True):
            series = {
                (s if ev is None else f"{s} [{ev}]"): [
                    values(
                        energy.get(s, []),
                        partial(_retention, sigma=q, convention=conv, eval_arm=ev),
                    )
                    for q in sigmas
                ]
                for s, ev in [*((s, None) for s in _STRATEGIES), ("hard", "normalized")]
            }
            ci_band_plot(ax, sigmas, series)
            ax.set_xlabel(f"σ ({conv}, every boundary)")
            ax.set_title(f"{conv} σ (95% CI bands)")
        axes[0].set_ylabel("retention %")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        atomic_savefig(fig, out_dir / "ace_energy_retention.png", dpi=100)
        plt.close(fig)
        out += ["![retention vs σ](ace_energy_retention.png)", ""]
    if equiv:
        out += [
            "**Equivariance constraint**: logits invariant to D4 (rotations by 90° and flips). "
            "Transformed acc = accuracy on test images each under a random D4 element; "
            "equivariance error = mean ‖f(gx) − f(x)‖/‖f(x)‖ over the test set and all g; "
            "final violation = mean squared logit difference.",
            "",
        ]
        rows = []
        for s in _STRATEGIES:
            rs = equiv.get(s, [])
            rows.append(
                [
                    s,
                    fmt_ci(values(rs, lambda r: 100 * r["metrics"]["clean_accuracy"])),
                    fmt_ci(values(rs, lambda r: 100 * r["metrics"]["transformed_accuracy"])),
                    fmt_ci(values(rs, lambda r: r["metrics"]["equivariance_error"]), 4),
                    fmt_ci(values(rs, lambda r: r["metrics"]["final_violation"]), 4),
                ]
            )
        head = ["strategy", "clean acc %", "transformed acc %", "equiv. error", "final violation"]
        out += [markdown_table(head, rows), ""]
        for key in ("clean_accuracy", "transformed_accuracy"):
            tests += _welch_rows(
                equiv, lambda r, k=key: 100 * r["metrics"][k], f"equivariance {key}"
            )
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
        for s in _STRATEGIES:
            rs = equiv.get(s, [])
            if not rs:
                continue
            n_ep = min(len(r["metrics"]["curve"]) for r in rs)
            ep = list(range(1, n_ep + 1))
            for ax, key in zip(
                axes, ("clean_accuracy", "transformed_accuracy", "equivariance_error"), strict=True
            ):
                m = [sum(r["metrics"]["curve"][i][key] for r in rs) / len(rs) for i in range(n_ep)]
                ax.plot(ep, m, label=s)
                ax.set_title(key.replace("_", " "))
                ax.set_xlabel("epoch")
        axes[2].set_yscale("log")
        axes[0].legend()
        fig.tight_layout()
        atomic_savefig(fig, out_dir / "ace_equivariance_curves.png", dpi=100)
        plt.close(fig)
        out += ["![equivariance over training](ace_equivariance_curves.png)", ""]
    if tests:
        out += ["Paired t-tests by seed (ACE vs each other strategy; raw p, no correction):", ""]
        head = ["metric", "comparison", "mean diff", "paired p", "Cohen's d_z"]
        out += [markdown_table(head, tests), ""]
    return "\n".join(out)
