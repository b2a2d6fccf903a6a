"""Collect every theorem and mutant of every theory file in this directory.

See :mod:`conserve_verified.proof.pytest_plugin`.
"""

from conserve_verified.proof.pytest_plugin import pytest_collect_file

__all__ = ["pytest_collect_file"]
