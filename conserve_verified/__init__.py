"""conserve_verified: energy-conserved neural pipelines, proved, fuzzed and measured.

Public API (the operator and its errors)::

    energy(x, dim=-1)                         per-sample ||x||^2
    conserve(x, energy=1.0, dim=-1, zero="raise")   C_E(x) = sqrt(E) x / ||x||
    ConserveEnergy(energy, dim)               the nn.Module form
    Conserved(*modules, energy=..., dim=...)  C_E at every boundary of a pipeline
    Pipeline(*modules)                        the same pipeline without conservation
    conserve_boundaries(model, names, ...)    C_E on named submodules of a model

Subpackages and modules with their own public API: :mod:`.contracts`,
:mod:`.testing`, :mod:`.tolerances`, :mod:`.errors`.
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
