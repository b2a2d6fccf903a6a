"""Tests of conserve_verified.robotics: scene, ray-cast camera, controller, success, trials."""

from __future__ import annotations

import importlib.util
import pathlib

import mujoco
import numpy as np
import pytest
import torch

from conserve_verified.errors import InvalidArgument
from conserve_verified.robotics import (
    HOME_QPOS,
    DepthCamera,
    DLSController,
    TrialSpec,
    build_pipeline,
    estimate_goals,
    franka_asset_dir,
    in_self_contact,
    judge,
    load_scene,
    overhead_camera,
    place_target,
    plot_trials,
    render_dataset,
    run_trial,
    run_trials,
    sample_targets,
)
from conserve_verified.robotics.scene import WORKSPACE_HIGH, WORKSPACE_LOW
from conserve_verified.testing import assert_energy_equals

# --------------------------------------------------------------------------- scene


def test_scene_loads_nine_joints_nine_actuators() -> None:
    scene = load_scene()
    assert scene.model.njnt == 9
    assert scene.model.nu == 9
    assert len(scene.robot_bodies) == 10  # link0..link7 and two fingers
    data = scene.new_data()
    np.testing.assert_array_equal(data.qpos, HOME_QPOS)
    assert not in_self_contact(scene, data)


def test_scene_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InvalidArgument, match=r"gymnasium_robotics.*not installed"):
        franka_asset_dir()


def test_place_target_moves_marker_to_position() -> None:
    scene = load_scene()
    data = scene.new_data()
    p = np.array([0.5, -0.1, 0.33])
    place_target(scene, data, p)
    mujoco.mj_forward(scene.model, data)
    np.testing.assert_array_equal(data.geom_xpos[scene.target_geom], p)
    with pytest.raises(InvalidArgument, match="position"):
        place_target(scene, data, np.array([0.0, np.nan, 0.0]))


def test_sample_targets_inside_workspace_and_seeded() -> None:
    a = sample_targets(np.random.default_rng(3), 50)
    b = sample_targets(np.random.default_rng(3), 50)
    np.testing.assert_array_equal(a, b)
    assert np.all(a >= WORKSPACE_LOW) and np.all(a <= WORKSPACE_HIGH)


# --------------------------------------------------------------------------- camera

_TEST_SCENE = """<mujoco>
  <worldbody>
    <geom type="plane" size="5 5 0.1"/>
    <geom type="box" pos="0 0 0.25" size="0.2 0.2 0.25"/>
  </worldbody>
</mujoco>"""


def test_depth_camera_matches_plane_and_box_geometry() -> None:
    model = mujoco.MjModel.from_xml_string(_TEST_SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    cam = DepthCamera(
        position=(0.0, 0.0, 2.0),
        forward=(0.0, 0.0, -1.0),
        up_hint=(1.0, 0.0, 0.0),
        fovy_deg=60.0,
        width=16,
        height=16,
    )
    depth = cam.depth(model, data)
    assert depth.shape == (16, 16) and depth.dtype == np.float32
    # A ray meets the box top plane (z = 0.5, depth 1.5) at position + 1.5 * ray; with
    # the box centred below the camera, it hits the top iff that point lies inside the
    # box's footprint, and the floor otherwise (its xy only moves outwards with depth).
    hit = cam.rays.reshape(16, 16, 3) * 1.5 + np.array([0.0, 0.0, 2.0])
    on_box = (np.abs(hit[..., 0]) < 0.2) & (np.abs(hit[..., 1]) < 0.2)
    assert on_box.any() and (~on_box).any()
    # z-depth: exactly 2 m to the floor, exactly 1.5 m to the box top (0.5 m high).
    assert np.all(depth[~on_box] == np.float32(2.0))
    assert np.all(depth[on_box] == np.float32(1.5))


def test_depth_camera_misses_read_far() -> None:
    model = mujoco.MjModel.from_xml_string(_TEST_SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    up = DepthCamera(position=(0, 0, 2.0), forward=(0, 0, 1.0), up_hint=(1, 0, 0), far=3.0)
    assert np.all(up.depth(model, data) == np.float32(3.0))


def test_depth_camera_rays_have_unit_axial_component() -> None:
    cam = overhead_camera(8, 8)
    np.testing.assert_array_equal(cam.rays @ np.array([0.0, 0.0, -1.0]), np.ones(64))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"width": 0}, "width"),
        ({"fovy_deg": 180.0}, "fovy_deg"),
        ({"up_hint": (0.0, 0.0, 1.0)}, "up_hint"),
        ({"forward": (0.0, 0.0, 0.0)}, "forward"),
        ({"position": (0.0, float("nan"), 0.0)}, "position"),
    ],
)
def test_depth_camera_rejects_bad_arguments(kwargs: dict[str, object], argument: str) -> None:
    base: dict[str, object] = {
        "position": (0.0, 0.0, 1.0),
        "forward": (0.0, 0.0, -1.0),
        "up_hint": (1.0, 0.0, 0.0),
    }
    with pytest.raises(InvalidArgument) as info:
        DepthCamera(**{**base, **kwargs})  # type: ignore[arg-type]
    assert info.value.argument == argument


def test_overhead_camera_sees_the_target() -> None:
    scene = load_scene()
    cam = overhead_camera(32, 32)
    t = np.array([[0.5, 0.0, 0.35]])
    with_target = render_dataset(scene, cam, t)[0]
    far = render_dataset(scene, cam, np.array([[0.5, 0.0, -1.0]]))[0]  # under the floor
    changed = with_target != far
    assert changed.any()
    # The marker's top face is 1.25 - (0.35 + 0.03) = 0.87 m from the camera.
    np.testing.assert_allclose(with_target[changed].min(), 0.87, rtol=1e-6)


# --------------------------------------------------------------------------- controller


def test_controller_step_is_zero_at_home_with_zero_error() -> None:
    jac = np.random.default_rng(0).normal(size=(3, 7))
    dq = DLSController().joint_step(jac, np.zeros(3), HOME_QPOS[:7].copy())
    np.testing.assert_allclose(dq, np.zeros(7), atol=1e-12)


def test_controller_step_moves_towards_error() -> None:
    jac = np.random.default_rng(1).normal(size=(3, 7))
    err = np.array([0.01, -0.02, 0.005])
    dq = DLSController(nullspace_gain=0.0).joint_step(jac, err, HOME_QPOS[:7].copy())
    assert float((jac @ dq) @ err) > 0


def test_controller_rejects_bad_parameters() -> None:
    with pytest.raises(InvalidArgument, match="max_step"):
        DLSController(max_step=0.0)
    with pytest.raises(InvalidArgument, match="damping"):
        DLSController(damping=-1.0)


# --------------------------------------------------------------------------- success


def _line(start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    return start + np.linspace(0.0, 1.0, n)[:, None] * (end - start)


_T = np.linspace(0.0, 2.0, 21)  # 0.1 s samples
_GOAL = np.array([0.5, 0.0, 0.3])
_START = np.array([0.3, 0.0, 0.5])


def test_judge_reach() -> None:
    out = judge(_T, _line(_START, _GOAL, 21), np.zeros(21, bool), _GOAL, 0.03, 2.0)
    assert out.success and out.reason == "reached"
    assert out.time is not None and out.time <= 2.0
    assert out.min_distance == 0.0


def test_judge_miss() -> None:
    off = _GOAL + np.array([0.0, 0.05, 0.0])
    path = _line(_START, off, 21)
    out = judge(_T, path, np.zeros(21, bool), _GOAL, 0.03, 2.0)
    assert not out.success and out.reason == "missed" and out.time is None
    # the same norms, summed in another order (axis=1 vs per row): equal to rounding
    assert out.min_distance == pytest.approx(
        min(float(np.linalg.norm(p - _GOAL)) for p in path), rel=1e-12
    )
    assert out.min_distance > 0.03


def test_judge_timeout() -> None:
    out = judge(_T, _line(_START, _GOAL, 21), np.zeros(21, bool), _GOAL, 0.03, 1.0)
    assert not out.success and out.reason == "timeout"
    assert out.time is not None and out.time > 1.0


def test_judge_self_collision_before_reach() -> None:
    contact = np.zeros(21, bool)
    contact[5] = True
    out = judge(_T, _line(_START, _GOAL, 21), contact, _GOAL, 0.03, 2.0)
    assert not out.success and out.reason == "self_collision"
    assert out.time == pytest.approx(0.5)


def test_judge_contact_after_reach_still_succeeds() -> None:
    contact = np.zeros(21, bool)
    contact[-1] = True
    path = np.vstack([_line(_START, _GOAL, 11), np.repeat(_GOAL[None], 10, axis=0)])
    out = judge(_T, path, contact, _GOAL, 0.03, 2.0)
    assert out.success and out.reason == "reached"


def test_judge_rejects_bad_input() -> None:
    p = _line(_START, _GOAL, 21)
    with pytest.raises(InvalidArgument, match="tolerance"):
        judge(_T, p, np.zeros(21, bool), _GOAL, 0.0, 2.0)
    with pytest.raises(InvalidArgument, match="ee_positions"):
        judge(_T, p[:-1], np.zeros(21, bool), _GOAL, 0.03, 2.0)
    with pytest.raises(InvalidArgument, match="times"):
        judge(_T[::-1], p, np.zeros(21, bool), _GOAL, 0.03, 2.0)


# --------------------------------------------------------------------------- trials


def test_run_trial_reaches_an_exact_goal_and_misses_a_wrong_one() -> None:
    target = (0.5, 0.1, 0.32)
    hit = run_trial(TrialSpec(target=target, goal=target, keep_trajectory=True))
    assert hit.success and hit.reason == "reached" and hit.goal_error == 0.0
    assert hit.trajectory is not None and hit.final_distance <= 0.03
    wrong = (0.5, 0.2, 0.32)  # 10 cm away: the arm settles there and never arrives
    miss = run_trial(TrialSpec(target=target, goal=wrong))
    assert not miss.success and miss.reason == "missed"
    assert miss.min_distance > 0.03


def test_run_trials_deterministic_and_independent_of_workers() -> None:
    rng = np.random.default_rng(7)
    targets = sample_targets(rng, 4)
    specs = [TrialSpec(target=tuple(t), goal=tuple(t + rng.normal(0.0, 0.02, 3))) for t in targets]
    inline = run_trials(specs, workers=1)
    assert run_trials(specs, workers=1) == inline
    assert run_trials(specs, workers=2) == inline


def test_trial_spec_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="goal"):
        TrialSpec(target=(0.5, 0.0, 0.3), goal=(0.5, float("inf"), 0.3))
    with pytest.raises(InvalidArgument, match="workers"):
        run_trials([], workers=0)


# --------------------------------------------------------------------------- perception


def test_conserved_pipeline_boundary_has_energy_feature_dim() -> None:
    torch.manual_seed(0)
    p = build_pipeline("conserved", 16, feature_dim=8)
    (h,) = p.boundary_activations(torch.rand(3, 1, 16, 16))
    assert_energy_equals(h.detach(), 8.0)
    with pytest.raises(InvalidArgument, match="arm"):
        build_pipeline("other", 16)  # type: ignore[arg-type]


def test_estimate_goals_deterministic_per_seed() -> None:
    images = np.random.default_rng(0).uniform(0.8, 1.2, size=(2, 16, 16)).astype(np.float32)
    out = []
    for _ in range(2):
        torch.manual_seed(5)
        out.append(estimate_goals(build_pipeline("plain", 16, feature_dim=8), images))
    np.testing.assert_array_equal(out[0], out[1])
    assert out[0].shape == (2, 3)


def test_plot_trials_writes_png(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trial.png"
    path_pts = _line(_START, _GOAL, 5)
    plot_trials(path, np.ones((8, 8)), _GOAL, {"plain": path_pts}, {"plain": _GOAL}, 0.03)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
