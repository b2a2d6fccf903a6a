"""The conservation experiments' shared steps: build an arm, train it clean, evaluate it noisy.

Arms and where the noise ``n`` enters relative to ``C_E`` (see :mod:`..models`):

``baseline`` / ``energy_penalized``
    ``stage_k -> n -> stage_{k+1}`` (the penalty lives in the loss);
``conserved`` (trained model)
    ``stage_k -> C_E -> n -> C_E -> stage_{k+1}``; one trained conserved model
    is evaluated twice, as *two evaluation arms*:

    * ``conserved`` -- as built (noise, then the re-projection ``C_E``);
    * ``normalized`` -- the normalisation-only control
      (:func:`~conserve_verified.models.without_reprojection`): the same
      weights and in-stage ``C_E``, the noise *after* the last ``C_E`` (no
      re-projection).  Trained clean, a separately trained control would be
      the same network (T2), so this *is* the control arm, with the best
      possible pairing.

    ``conserved - normalized`` is the **conservation effect** (what the
    re-projection after the noise does), ``normalized - baseline`` the
    **normalisation effect** (what the parameter-free in-stage normalisation
    does), and their sum the total advantage the papers report.

The conserved arm's energy per feature ``E`` is a configuration axis, spelt in
the arm's name (:func:`split_arm`): ``"conserved"`` (``E = 1``),
``"conserved:E=4"``, or ``"conserved:E=baseline"`` = the RMS² of the same-seed
baseline at each boundary, measured on clean training data.

Noise conventions (:func:`make_injector`):

``absolute``
    noise of scale ``level`` per feature, as the papers state it -- the result
    depends on the arbitrary ``E`` of the conserved arm and on the baseline's
    own activation scale (verdicts under it are *E-dependent*);
``relative`` (SNR-matched, the headline)
    noise of scale ``level · r_k`` per sample, ``r_k`` the RMS of the CLEAN
    activation of that sample at boundary ``k`` (the clean forward pass of the
    same batch, :class:`~conserve_verified.noise.ReferenceScaled`), so noise
    injected at earlier boundaries does not inflate the level.

Noise kinds: ``gaussian`` (additive, uncorrelated), ``bias`` (a fixed random
offset of RMS ``level``), ``dropout`` (``p = level``; multiplicative, so both
conventions coincide) and ``adversarial`` (PGD at the input within an energy
budget ``level``, ``||delta||² <= level · ||x||²``; relative by construction).

Every noisy accuracy is the mean over ``draws`` (default
:data:`~.paired.MIN_DRAWS`) independent noise draws of one trained model; the
draw seeds depend on (seed, condition, draw), never on the arm, so arms face the
same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data import Dataset, load
from ..errors import InvalidArgument
from ..models import (
    build_pipeline,
    cnn_stages,
    mlp_stages,
    resnet18_stages,
    without_reprojection,
)
from ..noise import BiasNoise, DropoutNoise, GaussianNoise, ReferenceScaled, pgd
from ..operators import Pipeline
from .paired import MIN_DRAWS, average_draws, pair_by_seed, paired_difference
from .protocol import Record
from .tables import fmt_num, fmt_p, markdown_table
from .verdict import Estimate, effect_row
from .workloads import boundary_stats, retention_pct, train_classifier

__all__ = [
    "CONVENTIONS",
    "EVAL_ARMS",
    "NOISE_KINDS",
    "NON_EFFECT_MARGIN",
    "QUANTITIES",
    "attribution",
    "attribution_of",
    "attribution_rows",
    "attribution_table",
    "build_model",
    "ci_band_plot",
    "energy_label",
    "eval_pipelines",
    "evaluate_noise",
    "gaussian_sweep",
    "make_injector",
    "noisy_accuracies",
    "per_seed",
    "split_arm",
    "stored",
    "stored_retention",
    "train_and_sweep",
    "train_arm",
]

CONVENTIONS: tuple[str, ...] = ("absolute", "relative")
NOISE_KINDS: tuple[str, ...] = ("gaussian", "bias", "dropout", "adversarial")
#: Evaluation arms of a trained conserved model (see module docstring).
EVAL_ARMS: tuple[str, ...] = ("conserved", "normalized")
#: Margin (pp) within which a claimed non-effect counts as reproduced.
NON_EFFECT_MARGIN = 2.0

Hook = Callable[[torch.Tensor, int], torch.Tensor]


def split_arm(name: str) -> tuple[str, float | str]:
    """``(arm, energy per feature)`` of an arm name: ``"conserved:E=4" -> ("conserved", 4.0)``.

    ``"conserved"`` has ``E = 1``; ``"conserved:E=baseline"`` gives ``"baseline"``;
    other arms have ``E = 1`` (unused).
    """
    if not isinstance(name, str):
        raise InvalidArgument("arm", name, "must be a string")
    if not name.startswith("conserved:E="):
        return name, 1.0
    value = name.split("=", 1)[1]
    if value == "baseline":
        return "conserved", "baseline"
    try:
        e = float(value)
    except ValueError:
        raise InvalidArgument("arm", name, "E must be a number or 'baseline'") from None
    if not (math.isfinite(e) and e > 0):
        raise InvalidArgument("arm", name, "E must be > 0")
    return "conserved", e


def make_injector(kind: str, level: float, convention: str, seed: int) -> Hook:
    """The boundary hook for a stochastic noise ``kind`` at ``level`` under ``convention``.

    ``relative`` returns a :class:`~conserve_verified.noise.ReferenceScaled`
    whose reference (the clean activations of the batch) the caller sets.
    """
    if convention not in CONVENTIONS:
        raise InvalidArgument("convention", convention, f"valid: {list(CONVENTIONS)}")
    if kind == "dropout":
        return DropoutNoise(level, seed=seed)
    if kind == "gaussian":
        inner: Hook = GaussianNoise(level, seed=seed)
    elif kind == "bias":
        inner = BiasNoise(level, mode="random", seed=seed)
    else:
        raise InvalidArgument("kind", kind, f"not a boundary injector; valid: {list(NOISE_KINDS)}")
    return ReferenceScaled(inner) if convention == "relative" else inner


def build_model(
    config: dict[str, Any], data: Dataset, energy_per_feature: float | Sequence[float] = 1.0
) -> Pipeline:
    """The pipeline of ``config["arm"]`` for ``config["model"]`` (mlp, cnn or resnet18)."""
    model = config.get("model", "mlp")
    shape, k = data.input_shape, data.num_classes
    if model == "mlp":
        stages = mlp_stages(shape, k, int(config["width"]), int(config["depth"]))
    elif model == "cnn":
        stages = cnn_stages(shape, k, int(config["width"]), int(config["depth"]))
    elif model == "resnet18":
        stages = resnet18_stages(shape, k, int(config["width"]), bool(config["batchnorm"]))
    else:
        raise InvalidArgument("model", model, "valid: ['mlp', 'cnn', 'resnet18']")
    return build_pipeline(stages, str(config["arm"]), shape, energy_per_feature)


def _train(
    config: dict[str, Any],
    data: Dataset,
    device: torch.device,
    energy: float | Sequence[float],
) -> tuple[Pipeline, Any]:
    seed = int(config["seed"])
    torch.manual_seed(seed)
    model = build_model(config, data, energy)
    penalty = float(config.get("penalty", 0.0)) if config["arm"] == "energy_penalized" else 0.0
    res = train_classifier(
        model,
        data,
        epochs=int(config["epochs"]),
        seed=seed,
        lr=float(config.get("lr", 1e-3)),
        penalty=penalty,
        max_train=config.get("max_train"),
        device=device,
    )
    return model, res


def _energy_of(
    e: float | str, config: dict[str, Any], data: Dataset, device: torch.device
) -> list[float] | float:
    """``e`` per feature; ``"baseline"``: the same-seed baseline's RMS² per boundary."""
    if e == "baseline":
        base, _ = _train({**config, "arm": "baseline"}, data, device, 1.0)
        stats = boundary_stats(base, data.x_train[:512], device=device)
        return [max(float(v), 1e-6) for v in stats["energy_per_feature"]]
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not (math.isfinite(e) and e > 0):
        raise InvalidArgument("energy", e, "must be a number > 0 or 'baseline'")
    return float(e)


def train_arm(
    config: dict[str, Any], data: Dataset, device: torch.device
) -> tuple[Pipeline, dict[str, Any]]:
    """Seed, build and train (clean) the arm of ``config``; return it and its clean metrics.

    The ``energy_penalized`` arm trains with ``CE + config["penalty"] · E``; a
    conserved arm uses the energy per feature of its name (:func:`split_arm`).
    """
    arm, e = split_arm(str(config["arm"]))
    config = {**config, "arm": arm}
    energy = _energy_of(e, config, data, device) if arm == "conserved" else 1.0
    model, res = _train(config, data, device, energy)
    x, y = _test_split(config, data)
    clean = _accuracy_of(model, x, y, device)
    stats = boundary_stats(model, x[:512], device=device)
    return model, {
        "clean_accuracy": clean,
        "boundary_rms": stats["rms"],
        "mean_boundary_rms": sum(stats["rms"]) / max(1, len(stats["rms"])),
        "energy_per_feature": energy,
        "train_seconds": round(res.seconds, 3),
        "train_loss": res.final_loss,
    }


def _test_split(config: dict[str, Any], data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    m = config.get("max_test")
    if m is None:
        return data.x_test, data.y_test
    return data.x_test[: int(m)], data.y_test[: int(m)]


@torch.no_grad()
def _accuracy_of(model: Pipeline, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    model.eval()
    correct = 0
    for s in range(0, x.shape[0], 1024):
        xb, yb = x[s : s + 1024].to(device), y[s : s + 1024].to(device)
        correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(1, x.shape[0])


def eval_pipelines(model: Pipeline, arm: str) -> dict[str, Pipeline]:
    """The evaluation arms of a trained ``arm``: ``{arm: model}``, or for ``conserved``
    ``{"conserved": model, "normalized": without_reprojection(model)}``."""
    if arm == "conserved":
        return {"conserved": model, "normalized": without_reprojection(model)}
    return {arm: model}


def _clean_boundaries(model: Pipeline, xb: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []

    def capture(h: torch.Tensor, _i: int) -> torch.Tensor:
        seen.append(h.detach())
        return h

    with model.boundary_hook(capture):
        model(xb)
    return seen


def noisy_accuracies(
    model: Pipeline,
    x: torch.Tensor,
    y: torch.Tensor,
    kind: str,
    level: float,
    convention: str,
    seeds: Sequence[int],
    device: torch.device,
    batch_size: int = 1024,
) -> list[float]:
    """Accuracy of ``model`` under each of ``len(seeds)`` noise draws (one per seed).

    Identity: entry ``d`` is the accuracy with the injector
    ``make_injector(kind, level, convention, seeds[d])`` at every boundary (its
    reference, under ``relative``, the clean activations of the same batch);
    ``adversarial`` is PGD at the input with random start ``seeds[d]``.
    """
    model.eval()
    if kind == "adversarial":
        out = []
        for s in seeds:
            adv = pgd(model, x.to(device), y.to(device), budget=level, norm="l2", steps=10, seed=s)
            out.append(_accuracy_of(model, adv.x, y, device))
        return out
    hooks = [make_injector(kind, level, convention, int(s)) for s in seeds]
    correct = [0] * len(hooks)
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            ref = _clean_boundaries(model, xb) if convention == "relative" else None
            for d, hook in enumerate(hooks):
                if isinstance(hook, ReferenceScaled) and ref is not None:
                    hook.set_reference(ref)
                with model.boundary_hook(hook):
                    correct[d] += int((model(xb).argmax(1) == yb).sum())
    return [c / max(1, x.shape[0]) for c in correct]


def evaluate_noise(
    model: Pipeline,
    data: Dataset,
    kind: str,
    level: float,
    convention: str,
    seeds: Sequence[int],
    clean: float,
    device: torch.device,
    eval_arm: str = "",
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean accuracy over the noise draws ``seeds`` and retention ``100 · mean / clean``."""
    x, y = _test_split(config or {}, data)
    accs = noisy_accuracies(model, x, y, kind, level, convention, seeds, device)
    if not all(math.isfinite(a) for a in accs):
        raise InvalidArgument("accuracy", accs, "is not finite")
    summary = average_draws(accs, min_draws=min(len(accs), MIN_DRAWS))
    return {
        "kind": kind,
        "level": level,
        "convention": convention,
        "eval_arm": eval_arm,
        "accuracy": summary.mean,
        "accuracy_sd": summary.sd,
        "draws": summary.n,
        "retention_pct": retention_pct(summary.mean, clean),
    }


def gaussian_sweep(
    model: Pipeline,
    arm: str,
    data: Dataset,
    sigmas: list[float],
    clean: float,
    device: torch.device,
    seed_of: Callable[[int, int, int], int],
    draws: int = MIN_DRAWS,
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """:func:`evaluate_noise` under Gaussian noise for every eval arm, convention and ``sigma``.

    Identity: the draws of condition ``(c, s)`` have seeds ``seed_of(c, s, d)``,
    ``d < draws``, the same for every evaluation arm.
    """
    out = []
    for eval_arm, pipe in eval_pipelines(model, arm).items():
        for c, conv in enumerate(CONVENTIONS):
            for s, sigma in enumerate(sigmas):
                seeds = [seed_of(c, s, d) for d in range(draws)]
                out.append(
                    evaluate_noise(
                        pipe, data, "gaussian", sigma, conv, seeds, clean, device, eval_arm, config
                    )
                )
    return out


def stored(
    record: Record,
    *,
    level: float,
    convention: str,
    eval_arm: str | None = None,
    kind: str = "gaussian",
    field: str = "retention_pct",
) -> float | None:
    """``field`` of the evaluation a record stored for the condition, else ``None``.

    ``eval_arm=None`` means the record's own arm (``conserved`` for a conserved model).
    ``field`` may be ``"retention_pct"``, ``"accuracy"`` (in %) or ``"clean"`` (clean
    accuracy in %).
    """
    if field == "clean":
        return 100.0 * float(record["metrics"]["clean_accuracy"])
    own = split_arm(str(record["config"]["arm"]))[0]
    arm = eval_arm or own
    for e in record["metrics"]["evaluations"]:
        if (
            e.get("kind", "gaussian") == kind
            and e["level"] == level
            and (e["convention"] == convention or kind in ("dropout", "adversarial"))
            and (e.get("eval_arm") or own) == arm
        ):
            v = float(e[field])
            return 100.0 * v if field == "accuracy" else v
    return None


def stored_retention(record: Record, level: float, convention: str) -> float | None:
    """The retention (%) a record stored for noise ``level`` under ``convention``, else ``None``."""
    return stored(record, level=level, convention=convention)


def train_and_sweep(
    config: dict[str, Any],
    ctx: Any,
    sigmas: list[float],
    seed_of: Callable[[int, int, int], int],
) -> dict[str, Any]:
    """One Gaussian-noise cell: train ``config``'s arm on ``ctx``'s data, then sweep.

    Identity: the result is ``train_arm``'s metrics plus ``"evaluations"`` =
    :func:`gaussian_sweep` over ``sigmas`` with ``seed_of`` and
    ``config.get("draws", MIN_DRAWS)`` draws; ``ctx`` is the runner's
    :class:`~conserve_verified.runner.protocol.RunContext`.
    """
    torch.set_num_threads(1)
    data = load(ctx.data, ctx.data_dir)
    model, metrics = train_arm(config, data, ctx.device)
    draws = int(config.get("draws", MIN_DRAWS))
    evals = gaussian_sweep(
        model,
        split_arm(str(config["arm"]))[0],
        data,
        sigmas,
        metrics["clean_accuracy"],
        ctx.device,
        seed_of,
        draws,
        config,
    )
    return {**metrics, "evaluations": evals}


# --------------------------------------------------------------------------- attribution


def per_seed(records: Sequence[Record], get: Callable[[Record], float | None]) -> dict[int, float]:
    """``{seed: get(record)}`` over ``records`` where ``get`` gives a value."""
    out: dict[int, float] = {}
    for r in records:
        v = get(r)
        if v is not None:
            out[int(r["config"]["seed"])] = float(v)
    return out


def _paired(a: dict[int, float], b: dict[int, float]) -> Estimate:
    xa, xb, _ = pair_by_seed(a, b)
    if not xa:
        return Estimate(None, None, None, None, 0, method="paired t (by seed)")
    return paired_difference(xa, xb, zero_variance="sign-test")


def attribution(
    baseline: dict[int, float], normalized: dict[int, float], conserved: dict[int, float]
) -> dict[str, Estimate]:
    """Paired-by-seed estimates ``total = conserved - baseline``,
    ``conservation = conserved - normalized``, ``normalisation = normalized - baseline``.

    Identity: for the seeds all three have, ``total.mean == conservation.mean +
    normalisation.mean`` (means of paired differences add).
    """
    return {
        "total": _paired(conserved, baseline),
        "conservation": _paired(conserved, normalized),
        "normalisation": _paired(normalized, baseline),
    }


def attribution_of(
    baseline: Sequence[Record],
    conserved: Sequence[Record],
    get: Callable[[Record, str | None], float | None],
    *,
    conserved_eval: str | None = "conserved",
) -> dict[str, Estimate]:
    """:func:`attribution` of a condition from its records.

    ``get(record, eval_arm)`` reads the stored value of one evaluation of a
    record (``None``: the record's own arm).  The baseline records give the
    baseline; the conserved records give the normalised control
    (``eval_arm="normalized"``) and the conserved arm (``conserved_eval``).
    """
    return attribution(
        per_seed(baseline, lambda r: get(r, None)),
        per_seed(conserved, lambda r: get(r, "normalized")),
        per_seed(conserved, lambda r: get(r, conserved_eval)),
    )


def energy_label(arm: str) -> str:
    """``"E=1"`` for the plain ``conserved`` arm, else the ``E=...`` part of ``conserved:E=...``."""
    return "E=1" if arm == "conserved" else arm.split(":", 1)[1]


#: Quantity names of the three attribution rows of a condition ``label``.
QUANTITIES: dict[str, str] = {
    "total": "{label}: total advantage conserved − baseline (pp)",
    "conservation": "{label}: conservation effect conserved − normalised control (pp)",
    "normalisation": "{label}: normalisation effect normalised control − baseline (pp)",
}


def attribution_rows(
    claim: str,
    label: str,
    paper_total: float | None,
    est: dict[str, Estimate],
    note: str = "",
) -> list[dict[str, Any]]:
    """Three claim rows from :func:`attribution` for one condition ``label``.

    The paper attributes its whole advantage to conservation, so the total and
    the conservation effect are compared with ``paper_total`` and the
    normalisation effect with 0 (a claimed non-effect within
    :data:`NON_EFFECT_MARGIN`).  A paper value within the margin of 0 is a
    claimed non-effect for the first two rows as well.  Every row carries the
    margin (a practically-zero band), also where the verdict rules do not use it
    yet (a paper value outside the band).
    """
    margin = NON_EFFECT_MARGIN
    sep = "; " if note else ""
    return [
        effect_row(
            claim,
            QUANTITIES["total"].format(label=label),
            paper_total,
            est["total"],
            note=note,
            margin=margin,
        ),
        effect_row(
            claim,
            QUANTITIES["conservation"].format(label=label),
            paper_total,
            est["conservation"],
            note=note + sep + "the paper attributes the whole advantage to the re-projection",
            margin=margin,
        ),
        effect_row(
            claim,
            QUANTITIES["normalisation"].format(label=label),
            0.0,
            est["normalisation"],
            note=note + sep + "the paper's mechanism implies none (0 within ±2 pp)",
            margin=NON_EFFECT_MARGIN,
        ),
    ]


def _fmt_est(e: Estimate) -> str:
    if e.mean is None:
        return "–"
    if e.low is None or e.high is None:
        return f"{fmt_num(e.mean)} (n={e.n})"
    return f"{fmt_num(e.mean)} [{fmt_num(e.low)}, {fmt_num(e.high)}] (n={e.n})"


def attribution_table(
    rows: Sequence[tuple[str, dict[str, Estimate]]],
    claim_rows: Sequence[dict[str, Any]] = (),
) -> str:
    """Markdown table: condition, total, conservation effect, normalisation effect, each
    mean [95% paired CI] (n seeds) with its paired-t p and, where ``claim_rows`` has
    the row (same quantity name, :data:`QUANTITIES`), its Holm-adjusted p and verdict."""
    by_q = {str(r["quantity"]): r for r in claim_rows}
    out = []
    for label, est in rows:
        cells = [label]
        for key in ("total", "conservation", "normalisation"):
            e = est[key]
            p = fmt_p(e.p_value)
            row = by_q.get(QUANTITIES[key].format(label=label))
            if row is not None:
                p += f" / {fmt_p(row.get('p_holm'))} ({row['verdict']})"
            cells += [_fmt_est(e), p]
        out.append(cells)
    head = [
        "condition",
        "total (pp)",
        "p / Holm p (verdict)",
        "conservation effect (pp)",
        "p / Holm p (verdict)",
        "normalisation effect (pp)",
        "p / Holm p (verdict)",
    ]
    return markdown_table(head, out)


def ci_band_plot(
    ax: Any,
    xs: Sequence[float],
    series: dict[str, list[list[float]]],
    *,
    markers: str = "osd^v<>",
) -> None:
    """Plot each series' per-x means with a 95% t-CI band where a point has ``n >= 2`` values.

    ``series[label][i]`` holds the per-seed values at ``xs[i]``; points without
    values are skipped (no empty line), single values are plotted without a band.
    """
    from .stats import mean_ci

    for j, (label, per_x) in enumerate(series.items()):
        pts = [(x, v) for x, v in zip(xs, per_x, strict=True) if v]
        if not pts:
            continue
        px = [x for x, _ in pts]
        cis = [mean_ci(v) for _, v in pts]
        (line,) = ax.plot(px, [c.mean for c in cis], marker=markers[j % len(markers)], label=label)
        lo = [c.low if c.n >= 2 else c.mean for c in cis]
        hi = [c.high if c.n >= 2 else c.mean for c in cis]
        if any(c.n >= 2 for c in cis):
            ax.fill_between(px, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
