"""Hypothesis examples per second of the operator's property tests.

Each ``@given`` test of ``property_tests/test_conserve.py`` is run directly
(outside pytest) with ``max_examples = profile.hypothesis_examples``,
``derandomize=True`` and no example database; its inner test function is
wrapped to count the examples actually executed (Hypothesis may stop early
when a strategy's space is exhausted), and examples / wall-clock second is
reported.
"""

from __future__ import annotations

import importlib.util
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["PROPERTY_FILE", "run", "time_property"]

#: The property-test file whose tests are timed.
PROPERTY_FILE = Path(__file__).resolve().parent.parent / "property_tests" / "test_conserve.py"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_property(test: Callable[..., Any], examples: int) -> dict[str, float]:
    """Run one ``@given`` test for ``examples`` examples; count and time them."""
    inner = test.hypothesis.inner_test  # type: ignore[attr-defined]
    count = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        return inner(*args, **kwargs)

    test.hypothesis.inner_test = counted  # type: ignore[attr-defined]
    configured = settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )(test)
    start = time.perf_counter()
    try:
        configured()
    finally:
        test.hypothesis.inner_test = inner  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    return {
        "examples": count,
        "seconds": seconds,
        "examples_per_s": count / seconds if seconds > 0 else 0.0,
    }


def run(profile: Profile) -> dict[str, Any]:
    """One row per property test of :data:`PROPERTY_FILE`."""
    module = _load(PROPERTY_FILE)
    rows = []
    for name, fn in inspect.getmembers(module, inspect.isfunction):
        if name.startswith("test_") and hasattr(fn, "hypothesis"):
            rows.append({"test": name, **time_property(fn, profile.hypothesis_examples)})
    return {"file": "property_tests/test_conserve.py", "rows": rows}
