"""Time budgets for work that has no timeout of its own (SymPy, enumeration).

:func:`time_budget` interrupts the body with :class:`BudgetExceeded` after
``seconds`` (``SIGALRM`` timer, main thread on POSIX).  Where a timer cannot be
installed (another thread, no ``SIGALRM``), the body runs to completion and
:class:`BudgetExceeded` is raised afterwards if it took longer than the
budget, so an over-budget result is never used.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["BudgetExceeded", "time_budget"]


class BudgetExceeded(Exception):
    """The time budget of a check ran out."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"time budget of {seconds:g} s exceeded")


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Run the body within ``seconds`` of wall-clock time or raise :class:`BudgetExceeded`."""
    start = time.perf_counter()
    if not _can_alarm() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        if time.perf_counter() - start > seconds:
            raise BudgetExceeded(seconds)
        return

    def _on_alarm(signum: int, frame: FrameType | None) -> None:
        raise BudgetExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
