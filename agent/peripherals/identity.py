"""Which ICCID the GB/T 32960 login carries: the SIM's, read from the modem at start, or the configured one.

``[modem] iccid_from = "modem"`` (the default once ``[modem] enabled = true``): the modem is opened and
asked for the ICCID up to ``attempts`` times, ``retry_s`` apart. If every attempt fails, the agent falls
back to ``[vehicle] iccid`` with a warning; without one it refuses to start (``ModemError``), since the
standard wants the login ICCID read from the SIM, never invented. ``iccid_from = "config"``: the
configured ICCID is used; an enabled modem is still asked once, to log the signal and warn when the SIM's
ICCID differs. Logs show only the last 4 digits of an ICCID.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import ModemSettings
from agent.peripherals.modem import Modem, ModemError, login_iccid, mask_iccid

log = logging.getLogger(__name__)

Opener = Callable[[str, int, float], Modem]


@dataclass(frozen=True)
class LoginIdentity:
    """The login's ICCID field (20 characters, or empty when none is known) and where it came from:
    ``modem``, ``config``, ``config-fallback`` (the modem failed) or ``none``."""

    iccid: str
    source: str


def login_identity(
    modem: ModemSettings,
    configured: str | None,
    *,
    opener: Opener = Modem.open,
    sleep: Callable[[float], None] = time.sleep,
) -> LoginIdentity:
    """Decide the login ICCID at start (see the module docstring); ``ModemError`` when it must refuse."""
    fallback = LoginIdentity(configured, "config") if configured else LoginIdentity("", "none")
    if not modem.enabled:
        return fallback
    attempts = modem.attempts if modem.iccid_from == "modem" else 1
    last: ModemError | None = None
    for attempt in range(1, attempts + 1):
        try:
            sim = _ask(modem, opener)
        except ModemError as exc:
            last = exc
            log.warning("modem attempt %d/%d failed: %s", attempt, attempts, exc)
            if attempt < attempts:
                sleep(modem.retry_s)
            continue
        if configured and sim != configured:
            log.warning("the SIM's ICCID %s differs from [vehicle] iccid %s; the login uses the %s one",
                        mask_iccid(sim), mask_iccid(configured),
                        "SIM's" if modem.iccid_from == "modem" else "configured")
        if modem.iccid_from == "modem":
            return LoginIdentity(sim, "modem")
        return fallback
    if modem.iccid_from == "config":
        return fallback
    if configured:
        log.warning("no ICCID from the modem on %s after %d attempts: the login uses [vehicle] iccid %s",
                    modem.port, attempts, mask_iccid(configured))
        return LoginIdentity(configured, "config-fallback")
    raise ModemError(f"cannot read the SIM's ICCID from the modem on {modem.port} after {attempts} "
                     f"attempts ({last}) and [vehicle] iccid is not set: not starting without an ICCID")


def _ask(modem: ModemSettings, opener: Opener) -> str:
    """One attempt: open, log the signal, read the ICCID (login form), close."""
    with opener(modem.port, modem.baud, modem.timeout_s) as m:
        try:
            q = m.signal_quality()
            level = f"{q.dbm} dBm" if q.dbm is not None else "unknown"
            log.info("modem %s: signal %s (rssi %d, ber %d)", modem.port, level, q.rssi, q.ber)
        except ModemError as exc:
            log.info("modem %s: no signal quality (%s)", modem.port, exc)
        return login_iccid(m.read_iccid())


__all__ = ["LoginIdentity", "login_identity"]
