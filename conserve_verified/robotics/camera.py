"""A pinhole depth camera by MuJoCo ray casting (``mj_multiRay``; no GL, no renderer).

Each pixel casts one ray from the camera position through the pixel centre.
The ray direction is scaled so that its component along the optical axis is 1,
hence the distance MuJoCo returns *is* the pixel's depth along the optical axis
(z-depth), with no further arithmetic.

Identity: for a plane perpendicular to the optical axis at distance ``d`` that
fills the view, every pixel of :meth:`DepthCamera.depth` equals ``d``; rays that
hit nothing read :attr:`DepthCamera.far`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mujoco
import numpy as np

from ..errors import InvalidArgument, check_int

__all__ = ["VISIBLE_GROUPS", "DepthCamera", "overhead_camera"]

#: Geom groups the camera sees: 0-2 (visual meshes and scene geoms), not the
#: Panda's collision meshes (group 3), which duplicate the visual ones.
VISIBLE_GROUPS = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)


def _unit(v: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise InvalidArgument(name, v, "must be a finite vector of shape (3,)")
    n = float(np.linalg.norm(a))
    if n == 0.0:
        raise InvalidArgument(name, v, "must be non-zero")
    return a / n


@dataclass(frozen=True)
class DepthCamera:
    """Pinhole depth camera at ``position`` looking along ``forward``.

    Attributes:
        position: camera centre in world coordinates (m).
        forward: optical axis (normalised on construction).
        up_hint: world direction that appears as "up" in the image.
        fovy_deg: vertical field of view in degrees (0, 180).
        width, height: image size in pixels.
        far: depth written for rays that hit nothing, and the ray cutoff (m).
    """

    position: tuple[float, float, float]
    forward: tuple[float, float, float]
    up_hint: tuple[float, float, float]
    fovy_deg: float = 40.0
    width: int = 32
    height: int = 32
    far: float = 3.0
    _rays: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            check_int(name, getattr(self, name))
        if not 0.0 < float(self.fovy_deg) < 180.0:
            raise InvalidArgument("fovy_deg", self.fovy_deg, "must lie in (0, 180)")
        if not (math.isfinite(self.far) and self.far > 0):
            raise InvalidArgument("far", self.far, "must be a finite number > 0")
        pos = np.asarray(self.position, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise InvalidArgument("position", self.position, "must be 3 finite numbers")
        f = _unit(np.asarray(self.forward), "forward")
        up = _unit(np.asarray(self.up_hint), "up_hint")
        right = np.cross(f, up)
        if np.linalg.norm(right) < 1e-9:
            raise InvalidArgument("up_hint", self.up_hint, "must not be parallel to forward")
        right /= np.linalg.norm(right)
        up = np.cross(right, f)
        ty = math.tan(math.radians(self.fovy_deg) / 2)
        tx = ty * self.width / self.height
        u = (2 * (np.arange(self.width) + 0.5) / self.width - 1) * tx
        v = (1 - 2 * (np.arange(self.height) + 0.5) / self.height) * ty
        vv, uu = np.meshgrid(v, u, indexing="ij")
        rays = f + uu[..., None] * right + vv[..., None] * up
        object.__setattr__(self, "_rays", np.ascontiguousarray(rays.reshape(-1, 3)))

    @property
    def rays(self) -> np.ndarray:
        """Ray directions, shape ``(height * width, 3)``, each with unit axial component."""
        return self._rays

    def depth(
        self, model: mujoco.MjModel, data: mujoco.MjData, body_exclude: int = -1
    ) -> np.ndarray:
        """Z-depth image ``(height, width)`` in metres (float32) of the current kinematics.

        ``data`` must have had ``mj_forward`` (or ``mj_kinematics``) run for its
        state.  ``body_exclude`` names a body whose geoms the rays pass through.
        """
        n = self.width * self.height
        geomid = np.empty(n, dtype=np.int32)
        dist = np.empty(n, dtype=np.float64)
        mujoco.mj_multiRay(
            model,
            data,
            np.asarray(self.position, dtype=np.float64),
            self._rays.reshape(-1),
            VISIBLE_GROUPS,
            1,
            int(body_exclude),
            geomid,
            dist,
            None,
            n,
            float(self.far),
        )
        dist[geomid < 0] = self.far
        return np.minimum(dist, self.far).astype(np.float32).reshape(self.height, self.width)


def overhead_camera(width: int = 32, height: int = 32) -> DepthCamera:
    """The E5 camera: 1.25 m above the floor over the table, looking straight down."""
    return DepthCamera(
        position=(0.55, 0.0, 1.25),
        forward=(0.0, 0.0, -1.0),
        up_hint=(1.0, 0.0, 0.0),
        fovy_deg=40.0,
        width=width,
        height=height,
    )
