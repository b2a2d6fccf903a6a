r"""Damped-least-squares (DLS) Cartesian reaching controller for the Panda's position servos.

Every control step the controller moves the end-effector a bounded step
towards the goal ``g``:

.. math::  \Delta q = J^\top (J J^\top + \lambda^2 I)^{-1}\, e
           + (I - J^+ J)\, k_n (q_{home} - q),
           \qquad e = \mathrm{clip}_{\le s}(g - x_{ee}),

where ``J`` is the 3x7 translational Jacobian of the end-effector site, the
second term pulls the redundant (null-space) motion towards the home posture,
and the servo target is ``q + Δq`` plus the gravity/Coriolis feed-forward
``qfrc_bias / kp`` (the Panda's position actuators have no integral action).

Identity: with ``e = 0`` and ``q = q_home`` the commanded step is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from ..errors import InvalidArgument
from .scene import HOME_QPOS, PandaScene

__all__ = ["DLSController"]


@dataclass(frozen=True)
class DLSController:
    """Damped-least-squares reaching controller (see module docstring).

    Attributes:
        damping: ``λ`` of the damped pseudo-inverse (m).
        max_step: ``s``, largest Cartesian step per control tick (m).
        nullspace_gain: ``k_n``, pull towards the home posture per tick.
    """

    damping: float = 0.1
    max_step: float = 0.05
    nullspace_gain: float = 0.05

    def __post_init__(self) -> None:
        for name in ("damping", "max_step", "nullspace_gain"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise InvalidArgument(name, v, "must be a real number >= 0")
        if self.max_step == 0:
            raise InvalidArgument("max_step", self.max_step, "must be > 0")

    def joint_step(self, jac: np.ndarray, error: np.ndarray, q: np.ndarray) -> np.ndarray:
        """The joint step ``Δq`` (7,) for Jacobian ``jac`` (3, 7), Cartesian ``error`` (3,)."""
        norm = float(np.linalg.norm(error))
        e = error * min(1.0, self.max_step / norm) if norm > 0 else error
        jjt = jac @ jac.T + (self.damping**2) * np.eye(3)
        dq = jac.T @ np.linalg.solve(jjt, e)
        null = np.eye(jac.shape[1]) - np.linalg.pinv(jac) @ jac
        return dq + null @ (self.nullspace_gain * (HOME_QPOS[: jac.shape[1]] - q))

    def command(
        self, scene: PandaScene, data: mujoco.MjData, goal: np.ndarray, jac: np.ndarray
    ) -> None:
        """Write the servo targets for reaching ``goal`` into ``data.ctrl`` (arm joints).

        ``jac`` is a (3, nv) work buffer for the site Jacobian.
        """
        model = scene.model
        n = scene.arm_dofs
        mujoco.mj_jacSite(model, data, jac, None, scene.ee_site)
        q = data.qpos[:n]
        dq = self.joint_step(jac[:, :n], goal - data.site_xpos[scene.ee_site], q)
        data.ctrl[:n] = q + dq + data.qfrc_bias[:n] / model.actuator_gainprm[:n, 0]
