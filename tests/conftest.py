"""Shared pytest configuration.

Hypothesis runs without per-example deadlines: these machines are shared and noisy, and speed is
measured by `make bench`, never by unit tests. `HYPOTHESIS_PROFILE=thorough` runs more examples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from tests.peripherals.devices import PtyDevice

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def devices() -> Iterator[list[PtyDevice]]:
    """Emulated serial devices (``tests.peripherals.devices.PtyDevice``) a test appends; all unplugged
    at its end."""
    made: list[PtyDevice] = []
    yield made
    for d in made:
        d.disappear()
