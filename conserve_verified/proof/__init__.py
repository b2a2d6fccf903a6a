r"""The proof engine: theorems with typed verdicts, mutants, registry and certificates.

Writing a theory
----------------
A theory is a file ``proofs/<theory>.py``.  At import time it builds
:class:`Theorem` objects and passes each to :func:`register`.  ``pytest
proofs/`` then collects every theorem (passes iff ``PROVED``, or ``REFUTED``
for a refutation theorem) and every mutant (passes iff ``REFUTED``) as its own
test item, and ``conserve-verified verify`` checks them all and writes a JSON
certificate.  A complete example::

    # proofs/example.py
    import sympy as sp
    import z3

    from conserve_verified.proof import Mutant, Theorem, register, sympy_identity, z3_implies

    a, b = sp.symbols("a b", positive=True)

    register(Theorem(
        id="X1",
        name="AM-GM for two numbers",
        statement="The mean of two positive numbers is at least their geometric mean.",
        assumptions=("a > 0", "b > 0"),
        claim=z3_implies(
            [z3.Real("a") > 0, z3.Real("b") > 0],
            (z3.Real("a") + z3.Real("b")) ** 2 >= 4 * z3.Real("a") * z3.Real("b"),
        ),
        mutants=(
            Mutant(
                id="strict",
                description="strict inequality fails at a = b",
                claim=z3_implies(
                    [z3.Real("a") > 0, z3.Real("b") > 0],
                    (z3.Real("a") + z3.Real("b")) ** 2 > 4 * z3.Real("a") * z3.Real("b"),
                ),
            ),
        ),
        property_test="property_tests/test_example.py::test_example_am_gm",
        theory="example",
    ))

    register(Theorem(
        id="X2",
        name="difference of squares",
        statement="a^2 - b^2 factors as (a - b)(a + b).",
        assumptions=("a, b real",),
        claim=sympy_identity(a**2 - b**2, (a - b) * (a + b)),
        mutants=(Mutant("plus", "sign slip", sympy_identity(a**2 - b**2, (a + b) ** 2)),),
        property_test="property_tests/test_example.py::test_example_difference_of_squares",
        theory="example",
    ))

Claims (:mod:`.claims`): :func:`sympy_identity` (SymPy simplification, checked
again exactly at random rational points), :func:`z3_implies` (Z3 over
Reals/Ints with a timeout; counterexamples re-checked exactly in SymPy),
:func:`custom` (any procedure returning a :class:`Verdict`, with a ``recheck``
for counterexamples), :func:`all_of` (conjunction, e.g. a dimension-free
statement plus its instance in dimension 3) and :func:`induction` (base case
plus step, for statements about every depth).  Put assumptions into the claim
(Z3 hypotheses; SymPy symbol assumptions such as ``positive=True`` or
``conditions=[sp.Abs(c) <= 1]``) -- the engine proves exactly what the claim says.

A *refutation theorem* states a false claim (e.g. from a paper) with
``expect=Status.REFUTED`` and ``refutes=Refutes("B", "<paper text>")``: it passes
only if the engine finds a counterexample itself and the counterexample passes
its exact re-check.

Twin links
----------
``property_test="property_tests/<file>.py::<test>"`` names the Hypothesis test
that checks the same statement on the torch implementation.  The link must go
both ways: that test's docstring starts with (or contains) the theorem id
followed by a colon, e.g. ``"T4: ||n||^2 - ..."``.  ``tests/test_proof_twins.py``
fails if a registered theorem's test does not exist or does not name the theorem.

Verdicts
--------
:class:`Verdict` with :class:`Status` ``PROVED`` / ``REFUTED`` (with a
counterexample in exact rationals, re-checked) / ``UNKNOWN`` (with the reason,
e.g. timeout; never counts as proved) / ``ERROR``.  :func:`check_theorem`
(``timeout_s`` per claim; default ``$CONSERVE_PROOF_TIMEOUT`` or 20 s),
:func:`check_all` -> :class:`TheoremResult` list, :func:`certificate` /
:func:`write_certificate` for the JSON certificate.
"""

from ._verdict import Status, Verdict
from .certificate import certificate, versions, write_certificate
from .check import (
    DEFAULT_TIMEOUT_S,
    TheoremResult,
    check_all,
    check_claim,
    check_mutant,
    check_theorem,
    select,
)
from .claims import (
    AllOf,
    Claim,
    Custom,
    Induction,
    SympyIdentity,
    Z3Implies,
    all_of,
    custom,
    induction,
    recurrence_induction,
    source_hash,
    sympy_identity,
    z3_implies,
)
from .gram import InnerProductSpace, Vec, cauchy_schwarz, gram_identity
from .registry import PROOFS_DIR, REGISTRY, load_theories, load_theory_file, register
from .scope import Scope, general, instance
from .sums import canonical_dummies, sum_identity
from .theorem import Mutant, Refutes, Theorem

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PROOFS_DIR",
    "REGISTRY",
    "AllOf",
    "Claim",
    "Custom",
    "Induction",
    "InnerProductSpace",
    "Mutant",
    "Refutes",
    "Scope",
    "Status",
    "SympyIdentity",
    "Theorem",
    "TheoremResult",
    "Vec",
    "Verdict",
    "Z3Implies",
    "all_of",
    "canonical_dummies",
    "cauchy_schwarz",
    "certificate",
    "check_all",
    "check_claim",
    "check_mutant",
    "check_theorem",
    "custom",
    "general",
    "gram_identity",
    "induction",
    "instance",
    "load_theories",
    "load_theory_file",
    "recurrence_induction",
    "register",
    "select",
    "source_hash",
    "sum_identity",
    "sympy_identity",
    "versions",
    "write_certificate",
    "z3_implies",
]
