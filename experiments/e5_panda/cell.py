"""One E5 cell: train (or load) one arm's perception -> control pipeline, then every condition.

For a configuration ``(seed, arm, conditions, sigmas, curve_sigmas, trials,
curve_targets, n_train, epochs, image_size)``:

1. the pipeline of ``arm`` (plain or conserved boundary) is trained on
   ``n_train`` ray-cast depth images of random targets (targets and weights
   drawn from ``seed``), or loaded from the cache under ``ctx.out_dir``;
2. its evaluation arms are ``plain``, or for the conserved pipeline
   ``conserved`` (encoder -> noise -> ``C_E`` -> head) and ``normalized``
   (encoder -> ``C_E`` -> noise -> head: the same weights, no re-projection;
   :func:`~conserve_verified.robotics.normalized_control`);
3. ``trials`` test targets are drawn from ``seed`` (the same for every arm and
   condition of a run: the comparison is paired), their depth images are
   ray-cast, corrupted by the condition's image term and pushed through the
   evaluation arm with the condition's boundary term as boundary hook, for the
   clean condition and every (condition, sigma);
4. every estimate goes to a MuJoCo trial (parallel processes) judged against
   the TRUE target.  Trials are deterministic functions of (target, goal), so a
   goal vector met before (e.g. the conserved arm under the scale-only
   condition, which by T3 reproduces its clean goals) reuses those results;
5. goal-error curves: median distance between goal and true target over
   ``curve_targets`` further targets, for every condition and ``curve_sigmas``
   (perception only, no simulation).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

import numpy as np
import torch

from conserve_verified.atomic import atomic_path
from conserve_verified.errors import InvalidArgument
from conserve_verified.operators import Pipeline
from conserve_verified.robotics import (
    TrialSpec,
    build_pipeline,
    estimate_goals,
    load_scene,
    normalized_control,
    overhead_camera,
    render_dataset,
    run_trials,
    sample_targets,
    train_pipeline,
)

from .noise_models import CONDITIONS, injectors

__all__ = ["TIME_LIMIT", "TOLERANCE", "eval_arms", "perceive", "run", "trained_pipeline"]

#: Success radius around the TRUE target (m) and time limit (s).
TOLERANCE = 0.03
TIME_LIMIT = 2.0
#: Worker processes for the trials of one cell.
WORKERS = max(1, min(2, os.cpu_count() or 1))

_TRAIN_STREAM, _TEST_STREAM, _CURVE_STREAM = 0, 1, 2
_REASONS = ("reached", "missed", "timeout", "self_collision")


def _cache_path(out_dir: pathlib.Path, keys: dict[str, Any]) -> pathlib.Path:
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]
    return out_dir / "e5_panda_cache" / f"{keys['arm']}-seed{keys['seed']}-{digest}.pt"


def _atomic_save(obj: Any, path: pathlib.Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def trained_pipeline(
    arm: str, seed: int, n_train: int, epochs: int, image_size: int, out_dir: pathlib.Path | None
) -> tuple[Pipeline, float]:
    """The trained pipeline of ``arm`` for run ``seed`` and its final training loss.

    Cached (atomically) under ``out_dir/e5_panda_cache`` when ``out_dir`` is given.
    """
    keys = {
        "arm": arm,
        "seed": seed,
        "n_train": n_train,
        "epochs": epochs,
        "image_size": image_size,
        "version": 1,
    }
    torch.manual_seed(seed)
    if arm not in ("plain", "conserved"):
        raise InvalidArgument("arm", arm, "must be 'plain' or 'conserved'")
    pipeline = build_pipeline("plain" if arm == "plain" else "conserved", image_size)
    path = _cache_path(out_dir, keys) if out_dir is not None else None
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        pipeline.load_state_dict(saved["state"])
        pipeline.eval()
        return pipeline, float(saved["loss"])
    scene = load_scene()
    camera = overhead_camera(image_size, image_size)
    targets = sample_targets(np.random.default_rng([seed, _TRAIN_STREAM]), n_train)
    images = render_dataset(scene, camera, targets)
    losses = train_pipeline(pipeline, images, targets, epochs=epochs, seed=seed)
    if path is not None:
        _atomic_save({"state": pipeline.state_dict(), "loss": losses[-1]}, path)
    return pipeline, losses[-1]


def eval_arms(pipeline: Pipeline, arm: str) -> dict[str, Pipeline]:
    """``{"plain": p}`` or ``{"conserved": p, "normalized": normalized_control(p)}``."""
    if arm == "plain":
        return {"plain": pipeline}
    return {"conserved": pipeline, "normalized": normalized_control(pipeline)}


def perceive(
    pipeline: Pipeline, images: torch.Tensor, condition: str, sigma: float, seed: int
) -> tuple[np.ndarray, torch.Tensor]:
    """Goals ``(n, 3)`` (rounded to 0.1 µm) and the images seen, under one condition."""
    image_noise, boundary_noise = injectors(condition, sigma, seed)
    with torch.no_grad():
        seen = image_noise(images, 0) if image_noise is not None else images
        with pipeline.boundary_hook(boundary_noise):
            goals = estimate_goals(pipeline, seen)
    return np.round(goals, 7), seen


def _int(config: dict[str, Any], name: str, low: int) -> int:
    v = config.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise InvalidArgument(f"config[{name!r}]", v, f"must be an int >= {low}")
    return v


def _sigmas(config: dict[str, Any], name: str) -> list[float]:
    v = config.get(name)
    if not isinstance(v, list) or not v:
        raise InvalidArgument(f"config[{name!r}]", v, "must be a non-empty list of sigmas > 0")
    for s in v:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0:
            raise InvalidArgument(f"config[{name!r}]", v, "must be a non-empty list of sigmas > 0")
    return [float(s) for s in v]


def run(config: dict[str, Any], out_dir: pathlib.Path | None) -> dict[str, Any]:
    """Run one cell (see module docstring) and return its metrics."""
    seed = _int(config, "seed", 0)
    trials = _int(config, "trials", 1)
    n_train = _int(config, "n_train", 1)
    epochs = _int(config, "epochs", 1)
    image_size = _int(config, "image_size", 8)
    curve_n = _int(config, "curve_targets", 1)
    arm = config.get("arm")
    if arm not in ("plain", "conserved"):
        raise InvalidArgument("config['arm']", arm, "must be 'plain' or 'conserved'")
    conditions = config.get("conditions")
    if not isinstance(conditions, list) or not conditions or set(conditions) - set(CONDITIONS):
        raise InvalidArgument("config['conditions']", conditions, f"a list from {CONDITIONS}")
    sigmas, curve_sigmas = _sigmas(config, "sigmas"), _sigmas(config, "curve_sigmas")
    pipeline, train_loss = trained_pipeline(arm, seed, n_train, epochs, image_size, out_dir)

    scene = load_scene()
    camera = overhead_camera(image_size, image_size)
    targets = sample_targets(np.random.default_rng([seed, _TEST_STREAM]), trials)
    images = torch.as_tensor(render_dataset(scene, camera, targets))
    memo: dict[bytes, list[Any]] = {}

    def simulate(goals: np.ndarray) -> list[Any]:
        key = goals.tobytes()
        if key not in memo:
            specs = [
                TrialSpec(
                    target=(float(t[0]), float(t[1]), float(t[2])),
                    goal=(float(g[0]), float(g[1]), float(g[2])),
                    tolerance=TOLERANCE,
                    time_limit=TIME_LIMIT,
                    keep_trajectory=(i == 0),
                )
                for i, (t, g) in enumerate(zip(targets, goals, strict=True))
            ]
            memo[key] = run_trials(specs, workers=WORKERS)
        return memo[key]

    evaluations = []
    example: dict[str, Any] = {}
    plan = [("clean", 0.0)] + [(c, s) for c in conditions for s in sigmas]
    for ev, pipe in eval_arms(pipeline, arm).items():
        for cond, sigma in plan:
            goals, seen = perceive(pipe, images, "all" if cond == "clean" else cond, sigma, seed)
            results = simulate(goals)
            success = [r.success for r in results]
            reasons = [r.reason for r in results]
            errors = [r.goal_error for r in results]
            evaluations.append(
                {
                    "condition": cond,
                    "sigma": sigma,
                    "eval_arm": ev,
                    "successes": int(sum(success)),
                    "trials": trials,
                    "success_rate": float(np.mean(success)),
                    "reasons": {k: reasons.count(k) for k in _REASONS},
                    "goal_error_median": float(np.median(errors)),
                    "goal_error_mean": float(np.mean(errors)),
                    "per_trial": {"success": success, "goal_error": [round(e, 5) for e in errors]},
                }
            )
            if ev == arm and (cond, sigma) == ("all" if "all" in conditions else cond, sigmas[-1]):
                first = results[0]
                example = {
                    "condition": cond,
                    "sigma": sigma,
                    "target": [float(v) for v in targets[0]],
                    "goal": [float(v) for v in goals[0]],
                    "depth": np.round(seen[0].numpy().astype(np.float64), 4).tolist(),
                    "trajectory": first.trajectory,
                    "success": first.success,
                    "reason": first.reason,
                }
    curve_targets = sample_targets(np.random.default_rng([seed, _CURVE_STREAM]), curve_n)
    curve_images = torch.as_tensor(render_dataset(scene, camera, curve_targets))
    curves = []
    for ev, pipe in eval_arms(pipeline, arm).items():
        for cond in conditions:
            for sigma in [0.0, *curve_sigmas]:
                goals, _ = perceive(pipe, curve_images, cond, sigma, seed + 7_919)
                err = np.linalg.norm(goals - curve_targets, axis=1)
                curves.append(
                    {
                        "condition": cond,
                        "sigma": sigma,
                        "eval_arm": ev,
                        "goal_error_median": float(np.median(err)),
                        "goal_error_mean": float(np.mean(err)),
                    }
                )
    return {
        "train_loss": train_loss,
        "eval_arms": list(eval_arms(pipeline, arm)),
        "simulated_goal_sets": len(memo),
        "evaluations": evaluations,
        "curves": curves,
        "example": example,
    }
