"""Window obligations of the reference platform: level ≥ 3 alarm windows and the 2025 post-HV-off report.

Both need data that may arrive later (pre-fault seconds as reissue, a backlog after an outage), so they
are recorded as ``open`` rows of the ``windows`` table and **decided** once the window can no longer be
completed by an honest terminal:

* as soon as the data is there (a report in the HV-off window: ``complete``);
* at the VIN's logout (0x04) for every window that ended (collection time) before the logout's time;
* while the VIN is logged in, ``Limits.window_timeout`` seconds (server clock) after the later of the
  window's end and the VIN's login — a terminal offline meanwhile is not judged until it had that long
  online to reissue.

A server stop decides nothing: open rows stay in the database and the next run (or ``check``) goes on
from them. A decided window is ``complete``, ``gap`` (the violation is stored with the fault-point /
first "off" frame) or ``cancelled`` (HV back on before the HV-off window). docs/platform.md has the rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.protocol.model import Edition
from sim.platform.checks import Limits, Violation, alarm_windows, hv_off_window
from sim.platform.db import PlatformDB

log = logging.getLogger(__name__)

ALARM = "alarm"
HV_OFF = "hv_off"


@dataclass
class HvOff:
    """An open 2025 post-HV-off window."""

    row: int
    frame_id: int | None
    off: datetime  # first "off" report
    start: datetime
    end: datetime


@dataclass
class VinWindows:
    """Per-VIN window state (lives in ``checks.VinState``-like registries of the server)."""

    edition: Edition = Edition.E2016
    alarm_row: int | None = None  # the open alarm row: undecided level ≥ 3 data since ``alarm_since``
    alarm_since: datetime | None = None  # earliest undecided level ≥ 3 collection time
    alarm_last: datetime | None = None  # latest level ≥ 3 collection time seen
    hv_off: list[HvOff] = field(default_factory=list)
    power: tuple[datetime, bool] | None = None  # latest report (collection time, HV on) this run
    login_at: datetime | None = None  # server time of the VIN's current login

    @property
    def open(self) -> bool:
        return self.alarm_row is not None or bool(self.hv_off)


class WindowTracker:
    """Opens, fills and decides the windows of every VIN; stores rows and violations in ``db``."""

    def __init__(self, db: PlatformDB, limits: Limits) -> None:
        self.db = db
        self.limits = limits
        self.vins: dict[str, VinWindows] = {}

    def state(self, vin: str) -> VinWindows:
        """The VIN's state; open rows of an earlier run are loaded on first sight."""
        st = self.vins.get(vin)
        if st is None:
            st = VinWindows()
            for row in self.db.windows(vin, status="open"):
                at = datetime.fromisoformat(row.at)
                if row.kind == ALARM:
                    st.alarm_row, st.alarm_since, st.alarm_last = row.id, at, at
                elif row.kind == HV_OFF:
                    st.hv_off.append(HvOff(row.id, row.frame_id, at, datetime.fromisoformat(row.start_at),
                                           datetime.fromisoformat(row.end_at)))
            self.vins[vin] = st
        return st

    def logged_in(self, vin: str, now: datetime) -> None:
        self.state(vin).login_at = now

    # ---- data

    def on_report(self, vin: str, frame_id: int, edition: Edition, t: datetime, power: bool | None,
                  level: int | None, now: datetime) -> None:
        """A decodable realtime/reissue report collected at ``t`` was stored as ``frame_id``; ``power``
        and ``level`` as ``checks.power_on`` and ``checks.alarm_level`` give them for it."""
        st = self.vins.get(vin)
        if st is None:
            if (level is None or level < 3) and edition != Edition.E2025:
                return  # nothing to track: no state for 2016 VINs without alarms (fleet hot path)
            st = self.state(vin)
        st.edition = edition
        if level is not None and level >= 3:
            self._alarm_seen(vin, st, frame_id, t)
        if edition == Edition.E2025:
            self._power(vin, st, frame_id, t, power, now)

    def _alarm_seen(self, vin: str, st: VinWindows, frame_id: int, t: datetime) -> None:
        st.alarm_last = t if st.alarm_last is None else max(st.alarm_last, t)
        if st.alarm_row is None:
            start = t - timedelta(seconds=self.limits.alarm_pre_seconds)
            end = t + timedelta(seconds=self.limits.alarm_post_seconds)
            st.alarm_row = self.db.add_window(vin, ALARM, frame_id, t, start, end)
            st.alarm_since = t
        elif st.alarm_since is not None and t < st.alarm_since:
            st.alarm_since = t
            self.db.update_window(st.alarm_row, at=t, frame_id=frame_id,
                                  start=t - timedelta(seconds=self.limits.alarm_pre_seconds))

    def _power(self, vin: str, st: VinWindows, frame_id: int, t: datetime, on: bool | None,
               now: datetime) -> None:
        for w in list(st.hv_off):
            if w.start <= t <= w.end:
                self._decide_hv(vin, st, w, "complete", f"report collected {t.isoformat()}", now)
            elif on and w.off < t < w.start:
                self._decide_hv(vin, st, w, "cancelled", f"HV on again at {t.isoformat()}", now)
        if on is None or (st.power is not None and t <= st.power[0]):
            return
        if st.power is not None and st.power[1] and not on:
            start, end = hv_off_window(st.power[0], t, self.limits)
            row = self.db.add_window(vin, HV_OFF, frame_id, t, start, end)
            st.hv_off.append(HvOff(row, frame_id, t, start, end))
        st.power = (t, on)

    # ---- decisions

    def on_logout(self, vin: str, logout_time: datetime, now: datetime) -> None:
        """Decide the VIN's windows that ended before its logout."""
        st = self.vins.get(vin)
        if st is None or not st.open:
            return
        why = f"decided at the logout of {logout_time.isoformat()}"
        for w in list(st.hv_off):
            if w.end <= logout_time:
                self._decide_hv(vin, st, w, "gap", why, now)
        if st.alarm_row is not None:
            self._decide_alarm(vin, st, logout_time, why, now)

    def on_tick(self, online: set[str], now: datetime) -> None:
        """Decide windows of logged-in VINs past ``window_timeout`` (cheap when nothing is open)."""
        timeout = timedelta(seconds=self.limits.window_timeout)
        post = timedelta(seconds=self.limits.alarm_post_seconds)
        for vin, st in self.vins.items():
            if not st.open or vin not in online:
                continue
            since = st.login_at or now
            reason = f"decided {self.limits.window_timeout:g} s after the window's end while logged in"
            for w in list(st.hv_off):
                if now - max(w.end, since) >= timeout:
                    self._decide_hv(vin, st, w, "gap", reason, now)
            if st.alarm_row is not None and st.alarm_last is not None \
                    and now - max(st.alarm_last + post, since) >= timeout:
                self._decide_alarm(vin, st, now - timeout, reason, now)

    def _decide_hv(self, vin: str, st: VinWindows, w: HvOff, status: str, why: str, now: datetime) -> None:
        st.hv_off.remove(w)
        if status == "gap" and self.db.has_report_between(vin, w.start, w.end):
            status, why = "complete", "report in the window"
        reason = why
        if status == "gap":
            v = Violation("hv_off_window",
                          f"HV off at {w.off.isoformat()}: no report collected in 59:30–60:00 after it "
                          f"({w.start.isoformat()} … {w.end.isoformat()}); {why}")
            reason = v.reason
            self.db.add_violation(w.frame_id, vin, v.kind, v.reason, now)
        self.db.update_window(w.row, status=status, reason=reason, decided_at=now)

    def _decide_alarm(self, vin: str, st: VinWindows, bound: datetime, why: str, now: datetime) -> None:
        """Compute the alarm windows from the stored data; decide those that end by ``bound``."""
        assert st.alarm_row is not None and st.alarm_since is not None
        lo = st.alarm_since - timedelta(seconds=self.limits.alarm_pre_seconds + 1)
        samples = self.db.report_samples(vin, lo)
        ids: dict[datetime, int] = {}
        for t, level, fid in samples:
            if level is not None and level >= 3:
                ids.setdefault(t, fid)
        decided = {row.at for row in self.db.windows(vin, ALARM) if row.status != "open"}
        remaining: datetime | None = None
        for w in alarm_windows([(t, lv) for t, lv, _ in samples], st.edition, self.limits):
            if w.fault < st.alarm_since - timedelta(seconds=1) or w.fault.isoformat() in decided:
                continue
            if w.end > bound:
                remaining = w.fault if remaining is None else min(remaining, w.fault)
                continue
            v = w.violation()
            frame_id = ids.get(w.fault)
            if v is not None:
                self.db.add_violation(frame_id, vin, v.kind, f"{v.reason}; {why}", now)
            self.db.add_window(vin, ALARM, frame_id, w.fault, w.start, w.end,
                               "gap" if v is not None else "complete",
                               f"{v.reason}; {why}" if v is not None else why, now)
        if remaining is None:
            self.db.delete_window(st.alarm_row)
            st.alarm_row = st.alarm_since = None
        else:
            st.alarm_since = remaining
            self.db.update_window(st.alarm_row, at=remaining,
                                  start=remaining - timedelta(seconds=self.limits.alarm_pre_seconds))


__all__ = ["ALARM", "HV_OFF", "HvOff", "VinWindows", "WindowTracker"]
