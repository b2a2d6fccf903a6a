"""The E5 scene: a Franka Emika Panda, a table and a target marker, in MuJoCo.

The Panda model (kinematic chain, actuators, Apache-2.0 meshes) is the one that
ships inside the ``gymnasium-robotics`` wheel under
``envs/assets/kitchen_franka/franka_assets/``; nothing is downloaded.  The scene
file is generated at load time in a temporary directory that links to the
installed assets, compiled, and removed again.

The target is a small box on a mocap body (no collisions), so one compiled
model serves every trial: :func:`place_target` moves it.

Identities:

* ``load_scene().model`` has 9 joints (7 arm + 2 finger) and 9 position actuators.
* after ``place_target(scene, data, p)`` and ``mujoco.mj_forward``,
  ``data.geom_xpos[scene.target_geom] == p``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import tempfile
from dataclasses import dataclass

import mujoco
import numpy as np

from ..errors import InvalidArgument

__all__ = [
    "HOME_QPOS",
    "TABLE_TOP_Z",
    "TARGET_HALF_SIZE",
    "WORKSPACE_HIGH",
    "WORKSPACE_LOW",
    "PandaScene",
    "franka_asset_dir",
    "load_scene",
    "place_target",
    "sample_targets",
    "scene_xml",
]

#: Arm joints 1..7 then the two finger joints: hand pointing down, clear of the table.
HOME_QPOS = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 0.0, 0.785, 0.04, 0.04])
#: Height of the table top (m); the table spans x in [0.2, 0.8], y in [-0.4, 0.4].
TABLE_TOP_Z = 0.2
#: Half edge of the target marker box (m).
TARGET_HALF_SIZE = 0.03
#: Box from which target centres are drawn (m): above the table, inside the reach.
WORKSPACE_LOW = np.array([0.40, -0.25, 0.26])
WORKSPACE_HIGH = np.array([0.65, 0.25, 0.42])

_ASSET_SUBDIR = ("envs", "assets", "kitchen_franka", "franka_assets")
_ASSET_FILES = ("assets.xml", "chain.xml", "actuator.xml")


def franka_asset_dir() -> pathlib.Path:
    """Directory of the Panda MJCF shipped in ``gymnasium-robotics``.

    Raises:
        InvalidArgument: the package is not installed or lacks the assets.
    """
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidArgument(
            "gymnasium_robotics",
            None,
            "package not installed; the Franka Panda model ships in it "
            "(pip install 'conserve_verified[robotics]')",
        )
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    path = root.joinpath(*_ASSET_SUBDIR)
    missing = [f for f in _ASSET_FILES if not (path / f).is_file()]
    if missing:
        raise InvalidArgument(
            "gymnasium_robotics", str(root), f"Franka Panda assets missing under {path}: {missing}"
        )
    return path


def scene_xml(asset_link: str = "franka_assets") -> str:
    """MJCF text of the scene; ``asset_link`` is the folder holding the Panda files."""
    lo, hi = WORKSPACE_LOW, WORKSPACE_HIGH
    h = TARGET_HALF_SIZE
    start = (lo + hi) / 2
    return f"""<mujoco model="e5_panda">
  <include file="{asset_link}/assets.xml"/>
  <include file="{asset_link}/actuator.xml"/>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1" rgba="0.3 0.3 0.3 1"/>
    <geom name="table" type="box" pos="0.5 0 {TABLE_TOP_Z / 2}"
          size="0.3 0.4 {TABLE_TOP_Z / 2}" rgba="0.6 0.5 0.4 1"/>
    <body name="target" mocap="true" pos="{start[0]} {start[1]} {start[2]}">
      <geom name="target" type="box" size="{h} {h} {h}" contype="0" conaffinity="0"
            rgba="0.9 0.1 0.1 1"/>
    </body>
    <body name="panda_base" pos="0 0 0">
      <include file="{asset_link}/chain.xml"/>
    </body>
  </worldbody>
</mujoco>
"""


@dataclass(frozen=True)
class PandaScene:
    """A compiled scene and the ids the rest of the package needs.

    Attributes:
        model: the compiled ``mujoco.MjModel``.
        ee_site: id of the end-effector site (between the fingertips).
        target_geom: id of the target marker geom.
        target_mocap: mocap index of the target body.
        robot_bodies: ids of the Panda's bodies (for self-collision tests).
        arm_dofs: number of arm joints (7); their qpos/qvel/ctrl come first.
    """

    model: mujoco.MjModel
    ee_site: int
    target_geom: int
    target_mocap: int
    robot_bodies: frozenset[int]
    arm_dofs: int = 7

    def new_data(self) -> mujoco.MjData:
        """Fresh ``MjData`` at :data:`HOME_QPOS` with servo targets at home, kinematics done."""
        data = mujoco.MjData(self.model)
        data.qpos[:] = HOME_QPOS
        data.ctrl[:] = HOME_QPOS
        mujoco.mj_forward(self.model, data)
        return data


@functools.lru_cache(maxsize=1)
def _compiled() -> mujoco.MjModel:
    assets = franka_asset_dir()
    with tempfile.TemporaryDirectory(prefix="e5_scene_") as tmp:
        os.symlink(assets, os.path.join(tmp, "franka_assets"), target_is_directory=True)
        path = os.path.join(tmp, "scene.xml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(scene_xml())
        try:
            return mujoco.MjModel.from_xml_path(path)
        except ValueError as exc:  # MuJoCo reports compile errors as ValueError
            raise InvalidArgument(
                "gymnasium_robotics", str(assets), f"the Panda scene does not compile: {exc}"
            ) from exc


def load_scene() -> PandaScene:
    """Compile (once per process) and return the E5 scene."""
    model = _compiled()
    base = model.body("panda0_link0").id
    robot = frozenset(b for b in range(model.nbody) if b == base or _has_ancestor(model, b, base))
    return PandaScene(
        model=model,
        ee_site=model.site("end_effector").id,
        target_geom=model.geom("target").id,
        target_mocap=int(model.body("target").mocapid[0]),
        robot_bodies=robot,
    )


def _has_ancestor(model: mujoco.MjModel, body: int, ancestor: int) -> bool:
    while body > 0:
        body = int(model.body_parentid[body])
        if body == ancestor:
            return True
    return False


def place_target(scene: PandaScene, data: mujoco.MjData, position: np.ndarray) -> None:
    """Move the target marker's centre to ``position`` (3,) (call ``mj_forward`` after)."""
    p = np.asarray(position, dtype=np.float64)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InvalidArgument("position", position, "must be a finite vector of shape (3,)")
    data.mocap_pos[scene.target_mocap] = p


def sample_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` target centres drawn uniformly from the workspace box, shape ``(n, 3)``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidArgument("n", n, "must be an int >= 0")
    return rng.uniform(WORKSPACE_LOW, WORKSPACE_HIGH, size=(n, 3))
