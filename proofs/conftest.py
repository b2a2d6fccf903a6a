"""Collect every theorem and mutant of every theory file in this directory.

See :mod:`conserve_verified.proof.pytest_plugin`.
"""

from collections.abc import Iterator

import pytest

from conserve_verified.commands.verify import single_thread
from conserve_verified.proof.pytest_plugin import pytest_collect_file

__all__ = ["one_thread", "pytest_collect_file"]


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """Verdicts must not depend on machine load: torch on one thread (see ``single_thread``)."""
    with single_thread():
        yield
