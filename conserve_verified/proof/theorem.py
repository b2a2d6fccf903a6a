"""Theorems and mutants: what a theory file registers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ..errors import InvalidArgument, InvalidArgumentType
from ._verdict import Status
from .claims import Claim
from .scope import Scope, check_statement_scope

__all__ = ["Mutant", "Refutes", "Theorem"]

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
_PROPERTY_TEST = re.compile(r"^property_tests/[A-Za-z0-9_/]+\.py::[A-Za-z_][A-Za-z0-9_]*$")


def _require_text(argument: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentType(argument, value, "a string")
    if not value.strip():
        raise InvalidArgument(argument, value, "must be a non-empty string")


def _require_id(argument: str, value: object) -> None:
    _require_text(argument, value)
    assert isinstance(value, str)
    if not _ID.match(value):
        raise InvalidArgument(argument, value, "must match [A-Za-z][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Mutant:
    """A plausible but wrong variant of a theorem; the engine must refute it.

    Attributes:
        id: short id, unique within its theorem (e.g. ``"no-denominator"``).
        description: what was changed and why it is a tempting mistake.
        claim: the wrong statement.
    """

    id: str
    description: str
    claim: Claim

    def __post_init__(self) -> None:
        _require_id("id", self.id)
        _require_text("description", self.description)
        if not isinstance(self.claim, Claim):
            raise InvalidArgumentType("claim", self.claim, "a Claim (see proof.claims)")


@dataclass(frozen=True)
class Refutes:
    """A claim from the literature (``shared/claims.json`` id) that a theorem refutes."""

    claim_id: str
    text: str

    def __post_init__(self) -> None:
        _require_text("claim_id", self.claim_id)
        _require_text("text", self.text)


@dataclass(frozen=True)
class Theorem:
    """A registered statement with its proof obligation, mutants and numeric twin.

    Attributes:
        id: catalogue id (``"T4"``), unique in the registry.
        name: short name (``"error identity"``).
        statement: the statement in plain language.
        assumptions: the assumptions in plain language.
        claim: the checkable statement (:mod:`.claims`); ``claim.latex()`` is its LaTeX.
        property_test: ``"property_tests/<file>.py::<test>"``, the test that checks the
            same statement numerically on the torch implementation.  Its docstring
            must start with ``"<id>:"`` or mention ``"<id>"`` (the link back).
        theory: the theory this theorem belongs to (``"conservation"``).
        mutants: wrong variants that must come out ``REFUTED`` (at least one for a
            theorem expected ``PROVED``).
        expect: ``Status.PROVED`` (default) or ``Status.REFUTED`` for a refutation
            theorem (a false statement, e.g. from a paper, that the engine must refute
            with a counterexample it finds).
        refutes: for a refutation theorem, the literature claim it refutes.
        corrects: the literature claim id whose false statement this theorem corrects
            (``"B"`` for T5), or ``""``.
        scope: what the proof covers (:func:`.scope.general` or :func:`.scope.instance`);
            required.  A statement that says "every"/"all" needs a general scope.
    """

    id: str
    name: str
    statement: str
    assumptions: tuple[str, ...]
    claim: Claim
    property_test: str
    theory: str
    mutants: tuple[Mutant, ...] = ()
    expect: Status = Status.PROVED
    refutes: Refutes | None = None
    scope: Scope | None = None
    corrects: str = ""
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _require_id("id", self.id)
        for arg in ("name", "statement", "theory"):
            _require_text(arg, getattr(self, arg))
        if not isinstance(self.assumptions, tuple) or not all(
            isinstance(a, str) for a in self.assumptions
        ):
            raise InvalidArgumentType("assumptions", self.assumptions, "a tuple of strings")
        if not isinstance(self.claim, Claim):
            raise InvalidArgumentType("claim", self.claim, "a Claim (see proof.claims)")
        if not isinstance(self.property_test, str) or not _PROPERTY_TEST.match(self.property_test):
            raise InvalidArgument(
                "property_test", self.property_test, "must look like 'property_tests/x.py::test_y'"
            )
        if not isinstance(self.mutants, tuple) or not all(
            isinstance(m, Mutant) for m in self.mutants
        ):
            raise InvalidArgumentType("mutants", self.mutants, "a tuple of Mutant")
        ids = [m.id for m in self.mutants]
        if len(set(ids)) != len(ids):
            raise InvalidArgument("mutants", ids, "mutant ids must be unique")
        if self.expect not in (Status.PROVED, Status.REFUTED):
            raise InvalidArgument("expect", self.expect, "must be Status.PROVED or Status.REFUTED")
        if self.expect is Status.PROVED and not self.mutants:
            raise InvalidArgument("mutants", self.mutants, "a PROVED theorem needs >= 1 mutant")
        if self.refutes is not None and not isinstance(self.refutes, Refutes):
            raise InvalidArgumentType("refutes", self.refutes, "a Refutes or None")
        if not isinstance(self.scope, Scope):
            raise InvalidArgumentType(
                "scope", self.scope, "a Scope: proof.general('...') or proof.instance('...')"
            )
        if self.expect is Status.PROVED:
            check_statement_scope(self.statement, self.scope)
        if not isinstance(self.corrects, str):
            raise InvalidArgumentType("corrects", self.corrects, "a claim id string or ''")

    @property
    def backend(self) -> str:
        """Backend of the claim (``"sympy"``, ``"z3"``, ``"sympy+z3"``, ...)."""
        return self.claim.backend

    @property
    def latex(self) -> str:
        """The claim in LaTeX."""
        return self.claim.latex()

    @property
    def statement_hash(self) -> str:
        """``sha256`` over the id, the expected outcome and the claim's canonical form."""
        scope = "" if self.scope is None else self.scope.label()
        text = f"{self.id}|{self.expect.value}|{scope}|{self.claim.canonical()}"
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def property_test_path(self) -> str:
        """File part of :attr:`property_test`."""
        return self.property_test.split("::")[0]

    @property
    def property_test_name(self) -> str:
        """Test-function part of :attr:`property_test`."""
        return self.property_test.split("::")[1]
