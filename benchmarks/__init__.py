"""Performance benchmarks of conserve_verified: ratios against torch built-ins.

Run ``python -m benchmarks [--quick | --tiny] [--json PATH] [--markdown PATH]``
or ``conserve-verified bench``.  Every number is a ratio against a baseline
timed in the same run, on the same machine and thread count:

* ``operator``: :func:`conserve_verified.conserve` forward and forward+backward
  against :func:`torch.nn.functional.rms_norm`, :func:`torch.nn.functional.normalize`
  and a plain copy (the memory-bandwidth floor), fp32 and bf16, batch 4096 ×
  features 256…8192; also the library's reference (unfused) path;
* ``pipeline``: a :class:`~conserve_verified.Conserved` pipeline against the
  same :class:`~conserve_verified.Pipeline` unconserved (a 4-stage MLP and a
  ResNet-18 for small images), with ``CONSERVE_CHECKS`` off and on;
* ``proofs``: seconds per registered theorem (claim and mutants);
* ``propagation``: the analytic noise predictor against its Monte Carlo twin;
* ``hypothesis``: examples per second of the operator's property tests.

Timing uses :class:`torch.utils.benchmark.Timer` (``blocked_autorange``; the
median of the blocks is reported).  Benchmarks are not tests: the test suite
runs them at tiny sizes only, with no assertion on time.
"""

from __future__ import annotations

from ._suite import PROFILES, SECTIONS, Profile, run
from .report import to_markdown

__all__ = ["PROFILES", "SECTIONS", "Profile", "run", "to_markdown"]
