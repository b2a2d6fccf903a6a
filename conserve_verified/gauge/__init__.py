"""Gauge symmetry of positively homogeneous networks: rescaling actions and orbit selection.

A network built from linear/conv layers and positively homogeneous activations
(ReLU, leaky ReLU) computes the same function after any hidden neuron's
incoming weights and bias are multiplied by ``alpha > 0`` and its outgoing
weights by ``1/alpha`` (G1).  This package finds those neurons by tracing the
model graph (:func:`gauge_structure`), acts on parameters
(:func:`gauge_transform`), measures the orbit (:func:`orbit_norms`,
:func:`imbalance`, :func:`log_imbalance`), selects an orbit point
(:func:`balance`, G2; :func:`balance_penalty`, G4;
:func:`log_scale_penalty_step`) and splits parameters into gauge-adapted
coordinates (:func:`gauge_coordinates`).

>>> import torch
>>> from torch import nn
>>> m = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
>>> s = gauge_structure(m, torch.zeros(1, 3))
>>> s.num_scales
5
"""

from ._action import (
    balance_penalty,
    gauge_transform,
    imbalance,
    log_imbalance,
    log_scale_penalty_step,
    orbit_norms,
    orbit_tangent,
    random_log_scales,
    transformed_parameters,
)
from ._balance import (
    BalanceReport,
    GaugeCoordinates,
    ImbalanceMonitor,
    balance,
    balanceable,
    from_gauge_coordinates,
    gauge_coordinates,
)
from ._structure import GaugeStructure, ParamAction, gauge_structure

__all__ = [
    "BalanceReport",
    "GaugeCoordinates",
    "GaugeStructure",
    "ImbalanceMonitor",
    "ParamAction",
    "balance",
    "balance_penalty",
    "balanceable",
    "from_gauge_coordinates",
    "gauge_coordinates",
    "gauge_structure",
    "gauge_transform",
    "imbalance",
    "log_imbalance",
    "log_scale_penalty_step",
    "orbit_norms",
    "orbit_tangent",
    "random_log_scales",
    "transformed_parameters",
]
