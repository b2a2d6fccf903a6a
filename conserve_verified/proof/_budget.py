"""Time budgets for work that has no timeout of its own (SymPy, enumeration).

:func:`time_budget` interrupts the body with :class:`BudgetExceeded` after
``seconds`` (``SIGALRM`` timer, main thread on POSIX).  Where a timer cannot be
installed (another thread, no ``SIGALRM``), the body runs to completion and
:class:`BudgetExceeded` is raised afterwards if it took longer than the
budget, so an over-budget result is never used.

Identity: ``time_budget(s)`` exits normally only if its body finished within
``s`` seconds; otherwise it raises :class:`BudgetExceeded`, even when the body
(or C code calling back into Python, such as a ``gc`` callback or ``__del__``)
swallowed the exception raised by the timer.  Third-party ``gc.callbacks`` are
suspended while the timer is armed, so the timer does not fire inside them.
"""

from __future__ import annotations

import gc
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

    fired = False

    def _on_alarm(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        fired = True
        raise BudgetExceeded(seconds)

    callbacks = list(gc.callbacks)
    gc.callbacks.clear()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        gc.callbacks[:0] = callbacks
    if fired or time.perf_counter() - start > seconds:
        raise BudgetExceeded(seconds)
