"""conserve_verified: energy-conserved neural pipelines, proved, fuzzed and measured.

Public API (the operator and its errors)::

    energy(x, dim=-1)                         per-sample ||x||^2
    conserve(x, energy=1.0, dim=-1, zero="raise")   C_E(x) = sqrt(E) x / ||x||
    ConserveEnergy(energy, dim)               the nn.Module form
    Conserved(*modules, energy=..., dim=...)  C_E at every boundary of a pipeline
    Pipeline(*modules)                        the same pipeline without conservation
    conserve_boundaries(model, names, ...)    C_E on named submodules of a model

Modules and subpackages with their own public API (each lists it in ``__all__``):

* :mod:`.errors`, :mod:`.tolerances`, :mod:`.contracts` -- typed errors, the
  per-dtype tolerance table, ``check_*``/``assert_*`` runtime contracts;
* :mod:`.testing` -- float64 oracles and Hypothesis strategies for users' models;
* :mod:`.proof` -- the proof engine (theorems, typed verdicts, certificates,
  the pytest plugin behind ``pytest proofs/``);
* :mod:`.gauge` -- rescaling (gauge) actions, gauge-adapted coordinates, norm balancing;
* :mod:`.noise` and :mod:`.propagation` -- seeded noise injectors and the
  analytic noise-propagation predictor;
* :mod:`.constraints` and :mod:`.equivariance` -- penalty / hard / adaptive
  constrained (ACE) training and group-equivariance tools;
* :mod:`.models`, :mod:`.data`, :mod:`.runner` -- experiment models, embedded
  and local-format data sets, the resumable experiment runner and report;
* :mod:`.robotics` -- the MuJoCo Franka Panda perception-to-control pipeline;
* :mod:`.docsgen` -- Sphinx pages generated from the theorem registry.
"""

from ._math import conserve, energy, safe_norm
from .errors import ConservationViolation, ConserveError, InvalidArgument, InvalidArgumentType
from .operators import Conserved, ConserveEnergy, Pipeline, conserve_boundaries

__version__ = "0.1.0"

__all__ = [
    "ConservationViolation",
    "ConserveEnergy",
    "ConserveError",
    "Conserved",
    "InvalidArgument",
    "InvalidArgumentType",
    "Pipeline",
    "__version__",
    "conserve",
    "conserve_boundaries",
    "energy",
    "safe_norm",
]
