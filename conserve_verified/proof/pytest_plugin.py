"""pytest collector for theory files: ``pytest proofs/`` checks every theorem and mutant.

``proofs/conftest.py`` re-exports :func:`pytest_collect_file`.  Every theory
file (``proofs/*.py`` except ``conftest.py``, ``_*`` and ``test_*``) becomes a
:class:`TheoryFile`; each theorem becomes an item named by its id and scope
(``T4[general]``, ``G5[instance]``),
which passes only if the verdict equals ``theorem.expect`` (``PROVED``, or
``REFUTED`` for a refutation theorem), and each mutant an item
``T4[mutant=<id>]``, which passes only if ``REFUTED``.  A failure prints the
verdict with its reason and counterexample.  The per-claim timeout is
``$CONSERVE_PROOF_TIMEOUT`` (default :data:`~.check.DEFAULT_TIMEOUT_S`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._verdict import Status, Verdict
from .check import check_mutant, check_theorem
from .registry import load_theory_file, theory_files
from .theorem import Mutant, Theorem

__all__ = ["ClaimFailure", "ClaimItem", "TheoryFile", "pytest_collect_file"]


class ClaimFailure(Exception):
    """A theorem or mutant whose verdict is not the expected one."""

    def __init__(self, expected: Status, verdict: Verdict) -> None:
        self.expected = expected
        self.verdict = verdict
        super().__init__(f"expected {expected}, got {verdict.status}")


class ClaimItem(pytest.Item):
    """One theorem or one mutant; passes iff the verdict is the expected status."""

    def __init__(
        self,
        *,
        theorem: Theorem,
        mutant: Mutant | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.theorem = theorem
        self.mutant = mutant
        self.expected = theorem.expect if mutant is None else Status.REFUTED
        self.verdict: Verdict | None = None

    def runtest(self) -> None:
        if self.mutant is None:
            self.verdict = check_theorem(self.theorem)
        else:
            self.verdict = check_mutant(self.mutant)
        self.user_properties.append(("verdict", self.verdict.status.value))
        self.user_properties.append(("time_s", self.verdict.time_s))
        if self.verdict.status is not self.expected:
            raise ClaimFailure(self.expected, self.verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailure):
            what = (
                f"theorem {self.theorem.id} ({self.theorem.name})"
                if self.mutant is None
                else f"mutant {self.mutant.id} of {self.theorem.id}: {self.mutant.description}"
            )
            latex = self.theorem.latex if self.mutant is None else self.mutant.claim.latex()
            return (
                f"{what}\n  claim: {latex}\n  expected {excinfo.value.expected}, got:\n"
                + "\n".join("    " + line for line in excinfo.value.verdict.describe().splitlines())
            )
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        label = (
            f"{self.theorem.id} ({self.theorem.scope.label() if self.theorem.scope else ''})"
            if self.mutant is None
            else f"{self.theorem.id} mutant {self.mutant.id}"
        )
        return self.path, None, label


class TheoryFile(pytest.File):
    """A theory file: one item per theorem and per mutant it registers."""

    def collect(self) -> Iterator[ClaimItem]:
        for theorem in load_theory_file(self.path):
            kind = theorem.scope.kind if theorem.scope is not None else "unscoped"
            yield ClaimItem.from_parent(self, name=f"{theorem.id}[{kind}]", theorem=theorem)
            for m in theorem.mutants:
                yield ClaimItem.from_parent(
                    self, name=f"{theorem.id}[mutant={m.id}]", theorem=theorem, mutant=m
                )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TheoryFile | None:
    """Collect ``file_path`` as a theory file if it is one of its directory's theory files."""
    if file_path.suffix != ".py":
        return None
    if file_path.resolve() not in {p.resolve() for p in theory_files(file_path.parent)}:
        return None
    result: TheoryFile = TheoryFile.from_parent(parent, path=file_path)
    return result
