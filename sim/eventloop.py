"""The event loop for the simulator's long-running processes (platform, fleet, stand-in platforms)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from agent.errors import ConfigError


def loop_factory(choice: str = "auto") -> Callable[[], Any] | None:
    """uvloop's loop factory when asked for (``auto``: when it is installed), else None (asyncio's loop),
    for ``asyncio.Runner(loop_factory=…)``. ``uvloop`` without uvloop installed is a ``ConfigError``."""
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")  # optional: aarch64 wheels exist, not a dependency
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("uvloop is not installed (pip install uvloop)", key="loop") from None
        return None
    factory: Callable[[], Any] = uvloop.new_event_loop
    return factory


__all__ = ["loop_factory"]
