"""Hypothesis settings profiles, chosen by ``$CONSERVE_HYPOTHESIS_PROFILE``.

``dev`` (default, 50 examples), ``ci`` (>= 200 examples per property, used by
``bash dev.sh test``) and ``thorough`` (10,000 examples, for scheduled runs).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("dev", max_examples=50, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("CONSERVE_HYPOTHESIS_PROFILE", "dev"))


def pytest_report_header() -> str:
    return (
        f"hypothesis profile: {settings._current_profile} (max_examples={settings().max_examples})"
    )
