"""Collect every theorem and mutant of every theory file in this directory.

See :mod:`conserve_verified.proof.pytest_plugin`.
"""

from conserve_verified.commands.verify import single_thread
from conserve_verified.proof.pytest_plugin import pytest_collect_file

__all__ = ["pytest_collect_file"]

single_thread()  # verdicts must not depend on machine load (see single_thread)
