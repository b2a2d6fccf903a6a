"""One E5 cell: train (or load) the perception -> control pipeline, perceive, reach.

For a configuration ``(seed, arm, noise, sigma, trials, n_train, epochs, image_size)``:

1. the pipeline of ``arm`` (plain or conserved boundary) is trained on
   ``n_train`` ray-cast depth images of random targets (targets drawn from
   ``seed``; weights initialised from ``seed``), or loaded from the cache under
   ``ctx.out_dir`` that an earlier cell with the same training keys wrote;
2. ``trials`` test targets are drawn from ``seed`` (the same for every arm,
   noise and sigma of a run: the comparison is paired), their depth images are
   ray-cast, corrupted by the condition's image injector, and pushed through
   the pipeline with the condition's boundary injector as boundary hook;
3. every estimate goes to a MuJoCo trial (parallel processes) that is judged
   against the TRUE target.
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
    overhead_camera,
    render_dataset,
    run_trials,
    sample_targets,
    train_pipeline,
)

from .noise_models import injectors

__all__ = ["TIME_LIMIT", "TOLERANCE", "run", "trained_pipeline"]

#: Success radius around the TRUE target (m) and time limit (s).
TOLERANCE = 0.03
TIME_LIMIT = 2.0
#: Worker processes for the trials of one cell.
WORKERS = max(1, min(2, os.cpu_count() or 1))

_TRAIN_STREAM, _TEST_STREAM = 0, 1
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


def _int(config: dict[str, Any], name: str, low: int) -> int:
    v = config.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise InvalidArgument(f"config[{name!r}]", v, f"must be an int >= {low}")
    return v


def run(config: dict[str, Any], out_dir: pathlib.Path | None) -> dict[str, Any]:
    """Run one cell (see module docstring) and return its metrics."""
    seed = _int(config, "seed", 0)
    trials = _int(config, "trials", 1)
    n_train = _int(config, "n_train", 1)
    epochs = _int(config, "epochs", 1)
    image_size = _int(config, "image_size", 8)
    arm, noise, sigma = config.get("arm"), config.get("noise"), config.get("sigma")
    if arm not in ("plain", "conserved"):
        raise InvalidArgument("config['arm']", arm, "must be 'plain' or 'conserved'")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise InvalidArgument("config['sigma']", sigma, "must be a real number >= 0")
    image_noise, boundary_noise = injectors(str(noise), float(sigma), seed)
    pipeline, train_loss = trained_pipeline(arm, seed, n_train, epochs, image_size, out_dir)

    scene = load_scene()
    camera = overhead_camera(image_size, image_size)
    targets = sample_targets(np.random.default_rng([seed, _TEST_STREAM]), trials)
    images = torch.as_tensor(render_dataset(scene, camera, targets))
    with torch.no_grad():
        seen = image_noise(images, 0) if image_noise is not None else images
        with pipeline.boundary_hook(boundary_noise):
            goals = estimate_goals(pipeline, seen)
    specs = [
        TrialSpec(
            target=tuple(map(float, t)),
            goal=tuple(map(float, g)),
            tolerance=TOLERANCE,
            time_limit=TIME_LIMIT,
            keep_trajectory=(i == 0),
        )
        for i, (t, g) in enumerate(zip(targets, goals, strict=True))
    ]
    results = run_trials(specs, workers=WORKERS)
    success = [r.success for r in results]
    reasons = [r.reason for r in results]
    goal_errors = [r.goal_error for r in results]
    first = results[0]
    return {
        "successes": int(sum(success)),
        "trials": trials,
        "success_rate": float(np.mean(success)),
        "reasons": {k: reasons.count(k) for k in _REASONS},
        "goal_error_mean": float(np.mean(goal_errors)),
        "goal_error_median": float(np.median(goal_errors)),
        "train_loss": train_loss,
        "per_trial": {
            "success": success,
            "reason": reasons,
            "goal_error": [round(e, 5) for e in goal_errors],
            "time": [r.time for r in results],
        },
        "example": {
            "target": [float(v) for v in targets[0]],
            "goal": [float(v) for v in goals[0]],
            "depth": np.round(seen[0].numpy().astype(np.float64), 4).tolist(),
            "trajectory": first.trajectory,
            "success": first.success,
            "reason": first.reason,
        },
    }
