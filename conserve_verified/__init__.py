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

from typing import TYPE_CHECKING, Any

from .errors import ConservationViolation, ConserveError, InvalidArgument, InvalidArgumentType

if TYPE_CHECKING:
    from ._math import conserve, energy, safe_norm
    from .operators import Conserved, ConserveEnergy, Pipeline, conserve_boundaries

__version__ = "0.1.0"

# The operator API needs torch; it is imported on first use, so that torch-free
# subpackages (the proof engine, ``conserve_verified.proof``) do not pull it in.
_LAZY = {
    "conserve": "._math",
    "energy": "._math",
    "safe_norm": "._math",
    "Conserved": ".operators",
    "ConserveEnergy": ".operators",
    "Pipeline": ".operators",
    "conserve_boundaries": ".operators",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conserve_verified' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
