"""Strict conformance checks of the reference platform: pure functions plus per-VIN state.

Every check returns ``Violation(kind, reason)`` values; the server stores them with the frame that caused
them. Kinds, references and default tolerances are listed in docs/platform.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from agent.protocol.codec import CodecOptions, encode_info_blocks
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    Alarm,
    Alarm2025,
    CellVoltages,
    ChargingState,
    Command,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Engine,
    Engine2025,
    GearPosition,
    Location,
    Location2025,
    ParallelUnitVoltages,
    RealtimeReport,
    RunningMode,
    Special,
    Temperatures,
    VehicleData,
    VehicleData2025,
    VehicleLogin,
    VehicleLogin2025,
    VehicleState,
)
from agent.protocol.session import beijing_date
from sim.platform.strict import block_ok

log = logging.getLogger(__name__)

_STRICT = CodecOptions(strict=True)
#: 2025 general-alarm bit 23: thermal event (2025 Table 24; §4.3 "level 4 without bit 23")
THERMAL_EVENT_BIT = 23


@dataclass(frozen=True)
class Violation:
    """One conformance violation: a short machine-readable ``kind`` and a human ``reason``."""

    kind: str
    reason: str


@dataclass(frozen=True)
class Limits:
    """Tolerances of the checks (seconds, km, V); defaults documented in docs/platform.md."""

    max_latency: float = 30.0  # realtime: server receipt − collection time (2025 §4.3: > 30 s flagged)
    max_future: float = 30.0  # any frame: collection time ahead of the server clock
    report_period: float = 30.0  # configured normal report period (param 0x02; ≤ 30 s while driving)
    period_tolerance: float = 5.0
    heartbeat_interval: float = 30.0  # param 0x09: the longest silence a logged-in terminal may keep
    heartbeat_tolerance: float = 10.0
    reissue_days_2016: float = 3.0  # Annex B 2016
    reissue_days_2025: float = 7.0  # Annex B 2025
    alarm_pre_seconds: int = 30  # level ≥ 3: every second from the fault point − 30 s
    alarm_post_seconds: int = 30  # 2016: … to the fault point + 30 s (2025: until it clears, at least this)
    voltage_sum_tolerance: float = 5.0  # 2025 §4.3
    mileage_jump_km: float = 4.0  # 2025 §4.3: > 4 km between frames 30 s apart
    mileage_jump_window: float = 30.0
    off_speed_kmh: float = 5.0  # 2025 §4.3: vehicle off with speed above 5 km/h
    duplicate_memory: float = 7200.0  # s of realtime collection times remembered per VIN for duplicates
    require_info_types: bool = False  # 2025 §4.3: vehicle, location, alarm, voltages, temperatures, motor
    hv_off_monitor: float = 3600.0  # 2025 §4.1: battery monitoring for 1 h after high voltage goes off
    hv_off_report: float = 30.0  # … of which the last 30 s (59:30–60:00) are reported, at least 1 frame
    hv_off_tolerance: float = 2.0  # s added on both sides of that window (sampling jitter)
    window_timeout: float = 600.0  # s a logged-in VIN has to complete a past window before it is decided


class SecondSet:
    """Whole-second collection times seen, remembered for ``memory`` seconds before the latest one: a
    bitmap ring (``memory`` / 8 bytes per VIN — 900 bytes for 2 h — instead of a set of datetimes that
    grows by ~70 bytes a report). Times are taken to the second (the wire's resolution)."""

    def __init__(self, memory: float = 7200.0) -> None:
        self.size = max(1, int(memory)) + 1
        self.bits = bytearray((self.size + 7) // 8)
        self.top: int | None = None  # the latest second added

    @staticmethod
    def _second(t: datetime) -> int:
        return int(t.timestamp() // 1)

    def __contains__(self, t: object) -> bool:
        if not isinstance(t, datetime) or self.top is None:
            return False
        s = self._second(t)
        if s > self.top or s <= self.top - self.size:
            return False
        pos = s % self.size
        return bool(self.bits[pos >> 3] & (1 << (pos & 7)))

    def add(self, t: datetime) -> None:
        s = self._second(t)
        if self.top is None:
            self.top = s
        elif s > self.top:
            if s - self.top >= self.size:
                self.bits[:] = bytes(len(self.bits))
            else:
                for old in range(self.top + 1, s + 1):  # positions reused by the new seconds
                    pos = old % self.size
                    self.bits[pos >> 3] &= ~(1 << (pos & 7)) & 0xFF
            self.top = s
        elif s <= self.top - self.size:
            return  # older than the memory: forgotten
        pos = s % self.size
        self.bits[pos >> 3] |= 1 << (pos & 7)

    def clear(self) -> None:
        self.bits[:] = bytes(len(self.bits))
        self.top = None

    def __len__(self) -> int:
        return sum(bin(b).count("1") for b in self.bits)


@dataclass
class VinState:
    """What the checks remember about one VIN across its connections."""

    login_day: date | None = None
    login_serial: int | None = None
    realtime_times: SecondSet = field(default_factory=SecondSet)
    last_realtime: datetime | None = None  # collection time of the previous 0x02 (this connection)
    last_running: bool = False
    last_mileage: tuple[datetime, float] | None = None
    unit_counts: tuple[int, ...] | None = None  # cells per subsystem/pack in the previous report


def _second(value: float) -> str:
    return f"{value:.0f} s"


# =========================================================================== frame-level checks


def bad_bcc(raw: bytes) -> Violation:
    """Classify a frame whose BCC does not match: ``bad_length`` when a shorter prefix is a whole frame
    with a correct BCC followed by the next start marker (the length field claimed bytes of the next
    frame), else ``bad_bcc`` (spec §1)."""
    declared = len(raw) - 25
    acc = 0
    for end in range(2, len(raw) - 1):
        if end >= 24 and acc == raw[end] and raw[end + 1 : end + 3] in (b"##", b"$$"):
            return Violation("bad_length", f"length field says {declared} bytes but a frame with a correct "
                                           f"BCC ends after {end - 24} (spec §1)")
        acc ^= raw[end]
    return Violation("bad_bcc", f"BCC 0x{raw[-1]:02X} does not match the computed 0x{acc:02X} (spec §1)")


# =========================================================================== session-level checks


def check_login(state: VinState, login_time: datetime, serial: int) -> list[Violation]:
    """Login serial: +1 per login within a Beijing day (spec §4.2; 2025 §4.3 "does not increase")."""
    out: list[Violation] = []
    day = beijing_date(login_time)
    if state.login_day == day and state.login_serial is not None and serial <= state.login_serial:
        out.append(Violation("login_serial", f"login serial {serial} does not increase (previous "
                                             f"{state.login_serial} on {day.isoformat()})"))
    if not 1 <= serial <= 65531:
        out.append(Violation("login_serial", f"login serial {serial} outside 1..65531"))
    state.login_day = day
    state.login_serial = serial
    state.last_realtime = None
    return out


def check_login_body(login: object) -> list[Violation]:
    """ICCID of 20 digits; 2025: pack-code count = sum of the per-BMS counts (2025 §4.3)."""
    out: list[Violation] = []
    iccid = getattr(login, "iccid", None)
    if isinstance(login, VehicleLogin | VehicleLogin2025) and isinstance(iccid, str) \
            and (len(iccid) != 20 or not iccid.isdigit()):
        out.append(Violation("login_content", f"ICCID {iccid[:6]}… is not 20 digits"))
    if isinstance(login, VehicleLogin2025) and len(login.pack_codes) != sum(login.packs_per_bms):
        out.append(Violation("login_content", f"{len(login.pack_codes)} pack codes for "
                                              f"{sum(login.packs_per_bms)} packs per the BMS counts"))
    return out


def check_logout(state: VinState, serial: int) -> list[Violation]:
    """Logout serial must equal the current login serial (spec §4.3)."""
    if state.login_serial is not None and serial != state.login_serial:
        return [Violation("logout_serial", f"logout serial {serial} ≠ login serial {state.login_serial}")]
    return []


def check_time(command: int, collected: datetime, received: datetime, edition: Edition,
               limits: Limits) -> list[Violation]:
    """Latency of realtime data, collection times in the future, reissue older than the window."""
    out: list[Violation] = []
    ahead = (collected - received).total_seconds()
    if ahead > limits.max_future:
        out.append(Violation("time_skew", f"collection time {_second(ahead)} ahead of the server clock"))
    late = (received - collected).total_seconds()
    if command == Command.REALTIME and late > limits.max_latency:
        out.append(Violation("time_skew", f"realtime collected {_second(late)} before receipt "
                                          f"(limit {_second(limits.max_latency)})"))
    if command == Command.REISSUE:
        days = limits.reissue_days_2025 if edition == Edition.E2025 else limits.reissue_days_2016
        if late > days * 86400:
            out.append(Violation("reissue_too_old", f"reissue of data {late / 86400:.1f} days old "
                                                    f"(window {days:g} days)"))
    return out


def check_silence(gap: float, limits: Limits) -> list[Violation]:
    """A logged-in terminal sent nothing (not even a heartbeat 0x07) for longer than its period."""
    limit = limits.heartbeat_interval + limits.heartbeat_tolerance
    if gap > limit:
        period = f"{_second(limits.heartbeat_interval)} + {_second(limits.heartbeat_tolerance)}"
        return [Violation("heartbeat", f"silent for {_second(gap)} (heartbeat period {period})")]
    return []


# =========================================================================== report checks


def vehicle_block(report: RealtimeReport) -> VehicleData | VehicleData2025 | None:
    """The whole-vehicle block (0x01) of a report, if any."""
    for b in report.blocks:
        if b.__class__ is VehicleData or b.__class__ is VehicleData2025:
            return b
    return None


def alarm_level(report: RealtimeReport) -> int | None:
    """The highest alarm level of a report (None: no alarm block or a sentinel)."""
    for b in report.blocks:
        if b.__class__ is Alarm or b.__class__ is Alarm2025:
            level = b.max_level
            if not isinstance(level, Special):
                return int(level)
    return None


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the stateful report checks and the window tracker need of one report (``report_facts``;
    the fast lane reads the same from the raw bytes, ``fastlane.scan``)."""

    time: datetime
    level: int | None  # ``alarm_level``
    running: bool  # a whole-vehicle block says "started"
    mileage: float | None  # km; None without a vehicle block or with a sentinel
    unit_counts: tuple[int, ...] | None  # ``unit_counts``
    power: bool | None  # ``power_on``


def report_facts(report: RealtimeReport) -> ReportFacts:
    """The ``ReportFacts`` of a decoded report."""
    vehicle = vehicle_block(report)
    mileage: float | None = None
    if vehicle is not None and not isinstance(vehicle.mileage, Special):
        mileage = float(vehicle.mileage)
    running = vehicle is not None and vehicle.vehicle_state == VehicleState.STARTED
    return ReportFacts(report.time, alarm_level(report), running, mileage, unit_counts(report),
                       power_on(report))


def check_report(state: VinState, command: int, edition: Edition, report: RealtimeReport,
                 limits: Limits) -> list[Violation]:
    """Every per-report check: values and the 2025 §4.3 consistency rules of this report, then the
    checks against the VIN's earlier reports (``check_report_state``)."""
    out = check_values(edition, report)
    out += check_consistency(edition, report, limits)
    if limits.require_info_types:
        out += check_info_types(report)
    return out + check_report_state(state, command, report_facts(report), limits)


def check_report_state(state: VinState, command: int, facts: ReportFacts,
                       limits: Limits) -> list[Violation]:
    """The checks against the VIN's earlier reports: duplicates, period, cells per pack, mileage jumps
    (and the state they keep)."""
    out: list[Violation] = []
    t = facts.time
    if command == Command.REALTIME:
        if state.realtime_times.size != max(1, int(limits.duplicate_memory)) + 1:
            state.realtime_times = SecondSet(limits.duplicate_memory)  # first use with these limits
        if t in state.realtime_times:
            out.append(Violation("duplicate_realtime", f"{t.isoformat()} received twice as realtime 0x02"))
        state.realtime_times.add(t)  # bounded: the last duplicate_memory seconds
        if state.last_realtime is not None and state.last_running:
            gap = (t - state.last_realtime).total_seconds()
            limit = limits.report_period + limits.period_tolerance
            if gap > limit:
                out.append(Violation("report_period", f"{_second(gap)} between realtime reports while "
                                                      f"running (period {_second(limits.report_period)})"))
        if state.last_realtime is None or t > state.last_realtime:
            state.last_realtime = t
            state.last_running = facts.running
    counts = facts.unit_counts
    if counts is not None:
        if command == Command.REALTIME and state.unit_counts is not None and counts != state.unit_counts:
            out.append(Violation("unit_count", f"cells per pack changed from {list(state.unit_counts)} "
                                               f"to {list(counts)}"))
        if command == Command.REALTIME:
            state.unit_counts = counts
    if facts.mileage is not None:
        last = state.last_mileage
        if last is not None and 0 < abs((t - last[0]).total_seconds()) <= limits.mileage_jump_window:
            jump = abs(facts.mileage - last[1])
            if jump > limits.mileage_jump_km:
                out.append(Violation("mileage_jump", f"mileage changed {jump:.1f} km within "
                                                     f"{_second(abs((t - last[0]).total_seconds()))}"))
        if last is None or t >= last[0]:
            state.last_mileage = (t, facts.mileage)
    return out


def unit_counts(report: RealtimeReport) -> tuple[int, ...] | None:
    """Cells per subsystem (2016 0x08) / units per pack (2025 0x07), None without such a block."""
    for b in report.blocks:
        cls = b.__class__
        if cls is CellVoltages:
            subs: Any = b.subsystems  # type: ignore[union-attr]
            if not isinstance(subs, Special):
                return tuple([r.cell_count if isinstance(r.cell_count, int) else -1 for r in subs])
        elif cls is ParallelUnitVoltages:
            packs = b.packs  # type: ignore[union-attr]
            if not isinstance(packs, Special):
                return tuple([len(p.cell_voltages) for p in packs])
    return None


def check_info_types(report: RealtimeReport) -> list[Violation]:
    """Required info types (2025 §4.3): vehicle, location, alarm, voltages, temperatures, and the drive
    motor unless parked and charging (spec §6 "Assembly")."""
    need: list[tuple[str, tuple[type, ...]]] = [
        ("vehicle", (VehicleData, VehicleData2025)), ("location", (Location, Location2025)),
        ("alarm", (Alarm, Alarm2025)), ("voltages", (CellVoltages, ParallelUnitVoltages)),
        ("temperatures", (Temperatures,)),
    ]
    vehicle = vehicle_block(report)
    if vehicle is not None and vehicle.charging_state != ChargingState.PARKED_CHARGING:
        need.append(("drive motor", (DriveMotors, DriveMotors2025)))
    missing = [name for name, kinds in need if not any(isinstance(b, kinds) for b in report.blocks)]
    if missing:
        return [Violation("info_types", f"missing info types: {', '.join(missing)}")]
    return []


_NARROW_WORD = {0xFE: "0x00FE", 0xFF: "0x00FF"}  # a BYTE sentinel written into a WORD field
_NARROW_DWORD = {0xFE: "0x000000FE", 0xFF: "0x000000FF", 0xFFFE: "0x0000FFFE", 0xFFFF: "0x0000FFFF"}


def check_sentinel_widths(edition: Edition, report: RealtimeReport) -> list[Violation]:
    """Sentinels of the wrong width (spec §3.3: FE/FF sized to the field, "use the sentinels of the
    field's width"), flagged where the raw value cannot be a real reading:

    * offset-coded fields (physical = raw × scale − offset), where a narrow sentinel lands on the far
      negative end of the range: currents (raw 0x00FE = −974.6 A with the 1000 A offset, −2974.6 A with
      2025's 3000 A), drive-motor speed (−19,746 r/min; 2025 −31,746 r/min), 2016 motor torque
      (−1,974.6 N·m), 2016 motor controller current, 2025 DWORD motor torque (raw 0x0000FFFF = −13,446.5
      N·m);
    * coordinates (DWORD: raw 0x0000FFFF = 0.065535°, a point in the Gulf of Guinea, not in China).

    Narrow sentinels in plain unsigned fields (speed 0x00FF = 25.5 km/h, mileage, voltages) are real
    readings and are not flagged."""
    out: list[Violation] = []
    blocks = report.blocks
    for b in blocks:
        if b.__class__ is Location or b.__class__ is Location2025:
            for name, value in (("longitude", b.longitude), ("latitude", b.latitude)):
                # a narrow sentinel is a raw magnitude ≤ 0xFFFF: |value| ≤ 0.065535°
                if not isinstance(value, Special) and abs(value) < 0.07 \
                        and round(abs(value) * 1e6) in _NARROW_DWORD:
                    wire_value = _NARROW_DWORD[round(abs(value) * 1e6)]
                    out.append(Violation("sentinel_width", f"location.{name} is {wire_value}: a narrower "
                                                           "sentinel in a DWORD (want 0xFFFFFFFE/F)"))
    table = _OFFSET_FIELDS[edition == Edition.E2025]
    for b in blocks:
        entry = table.get(b.__class__)
        if entry is None:
            continue
        block, listed, fields = entry
        items: Sequence[object]
        index: int | None = None
        if listed is None:  # the block carries the readings itself (vehicle)
            items = (b,)
        else:  # a list of records
            value = getattr(b, listed)
            if isinstance(value, Special):
                continue
            items = value
            index = 0
        for i, item in enumerate(items):
            for attr, offset, scale, dword, threshold in fields:
                reading = getattr(item, attr)
                # narrow sentinels are raw ≤ 0xFFFF: only readings that low need the exact test
                if reading.__class__ is float or reading.__class__ is int:
                    if reading > threshold:
                        continue
                elif not isinstance(reading, int | float) or reading > threshold:
                    continue
                try:
                    raw = round((reading + offset) / scale)
                except (ValueError, OverflowError):  # NaN, -inf: not a sentinel (out_of_range names it)
                    continue
                narrow = _NARROW_DWORD if dword else _NARROW_WORD
                if raw in narrow:
                    name = f"{block}.{attr}" if index is None else f"{block}[{i}].{attr}"
                    want = "0xFFFFFFFE/F" if dword else "0xFFFE/0xFFFF"
                    kind = "narrower sentinel in a DWORD" if dword else "BYTE sentinel in a WORD"
                    reason = f"{name} is {narrow[raw]}: a {kind} (want {want})"
                    out.append(Violation("sentinel_width", reason))
    return out


_Reading = tuple[str, float, float, bool, float]  # attribute, offset, scale, DWORD, highest narrow reading


def _readings(edition_current: float) -> dict[type, tuple[str, str | None, tuple[_Reading, ...]]]:
    """Offset-coded readings (physical = raw × scale − offset) per block class: (name in messages, list
    attribute or None, readings); the threshold 0x10000 × scale − offset bounds the narrow sentinels."""
    def r(attr: str, offset: float, scale: float, dword: bool = False) -> _Reading:
        return attr, offset, scale, dword, 0x10000 * scale - offset
    c = edition_current
    return {
        VehicleData: ("vehicle", None, (r("total_current", c, 0.1),)),
        VehicleData2025: ("vehicle", None, (r("total_current", c, 0.1),)),
        CellVoltages: ("voltages", "subsystems", (r("current", c, 0.1),)),
        ParallelUnitVoltages: ("packs", "packs", (r("current", c, 0.1),)),
        DriveMotors: ("motors", "motors", (r("speed", 20000.0, 1.0), r("torque", 2000.0, 0.1),
                                           r("controller_current", 1000.0, 0.1))),
        DriveMotors2025: ("motors", "motors", (r("speed", 32000.0, 1.0), r("torque", 20000.0, 0.1, True))),
    }


#: [is 2025] -> block class -> readings (the current offset is 1000 A in 2016, 3000 A in 2025)
_OFFSET_FIELDS = (_readings(1000.0), _readings(3000.0))


def check_values(edition: Edition, report: RealtimeReport) -> list[Violation]:
    """Out-of-range values and undefined codes — what the strict encoder refuses, block by block — and
    sentinels of the wrong width. Blocks the fast value test (``strict.block_ok``) passes are not
    encoded; the others are, with the strict encoder, which names the field."""
    return check_sentinel_widths(edition, report) + strict_violations(edition, report)


def strict_violations(edition: Edition, report: RealtimeReport) -> list[Violation]:
    """What the strict encoder refuses in each block, named by field (blocks the fast value test passes
    are not encoded)."""
    out: list[Violation] = []
    for block in report.blocks:
        if block_ok(edition, block):
            continue
        try:
            encode_info_blocks(edition, [block], options=_STRICT)
        except ProtocolError as exc:
            where = exc.field or type(block).__name__
            out.append(Violation("out_of_range", f"{where}: {exc.reason}"))
        except (ValueError, TypeError, OverflowError) as exc:  # a model the encoder cannot take at all
            out.append(Violation("out_of_range", f"{type(block).__name__}: {exc}"))
    return out


def check_consistency(edition: Edition, report: RealtimeReport, limits: Limits) -> list[Violation]:
    """2025 §4.3 data-governance rules that apply to one frame (also run on 2016 data where meaningful)."""
    out: list[Violation] = []
    vehicle = vehicle_block(report)
    if vehicle is not None and not isinstance(vehicle.speed, Special):
        gear = vehicle.gear
        if gear.gear == GearPosition.PARK and not gear.invalid and vehicle.speed > 0:
            out.append(Violation("speed_in_park", f"speed {vehicle.speed:g} km/h in P"))
        if vehicle.vehicle_state == VehicleState.STOPPED and vehicle.speed > limits.off_speed_kmh:
            out.append(Violation("off_with_speed", f"vehicle off at {vehicle.speed:g} km/h"))
    if vehicle is not None and vehicle.running_mode == RunningMode.ELECTRIC:
        for b in report.blocks:
            if isinstance(b, Engine | Engine2025) and isinstance(b.crankshaft_speed, int) \
                    and b.crankshaft_speed > 0:
                reason = f"crankshaft at {b.crankshaft_speed} r/min in EV mode"
                out.append(Violation("crankshaft_in_ev", reason))
    for block in report.blocks:
        cls = block.__class__
        if cls is not Alarm2025 and cls is not Alarm and cls is not CellVoltages \
                and cls is not ParallelUnitVoltages:
            continue  # none of the rules below
        if isinstance(block, Alarm2025):
            out += _alarm_2025(block)
        elif isinstance(block, Alarm) and not isinstance(block.max_level, Special):
            if 1 <= int(block.max_level) <= 4 and int(block.general_flags) == 0:
                out.append(Violation("alarm_flags", f"alarm level {int(block.max_level)} with no flag set"))
        elif isinstance(block, CellVoltages) and not isinstance(block.subsystems, Special):
            for rec in block.subsystems:
                cells = rec.cell_voltages
                if rec.start_index != 1 or rec.cell_count != len(cells):
                    continue  # a split record: the sum is not the whole pack
                out += _voltage_sum(f"subsystem {rec.number}", rec.voltage, cells, limits)
        elif isinstance(block, ParallelUnitVoltages) and not isinstance(block.packs, Special):
            for pack in block.packs:
                out += _voltage_sum(f"pack {pack.number}", pack.voltage, pack.cell_voltages, limits)
    return out


def _voltage_sum(name: str, total: float | Special, cells: Sequence[float | Special],
                 limits: Limits) -> list[Violation]:
    if isinstance(total, Special) or not cells:
        return []
    try:
        s = sum(cells)  # type: ignore[arg-type]  # a Special among them: TypeError, no sum to compare
    except TypeError:
        return []
    if abs(s - total) > limits.voltage_sum_tolerance:
        return [Violation("voltage_sum", f"{name}: total {total:g} V vs sum of units {s:.3f} V "
                                         f"(tolerance {limits.voltage_sum_tolerance:g} V)")]
    return []


def _alarm_2025(block: Alarm2025) -> list[Violation]:
    out: list[Violation] = []
    if isinstance(block.max_level, Special):
        return out
    level = int(block.max_level)
    if 1 <= level <= 4 and int(block.general_flags) == 0:
        out.append(Violation("alarm_flags", f"alarm level {level} with no flag set"))
    if isinstance(block.flag_levels, Special):
        return out
    listed = [int(f.level) for f in block.flag_levels]
    highest = max(listed, default=0)
    if listed and highest != level:
        out.append(Violation("alarm_level", f"max alarm level {level} ≠ highest level {highest} in N5"))
    if level == 4 and not any(f.bit == THERMAL_EVENT_BIT for f in block.flag_levels):
        out.append(Violation("alarm_level", "level 4 without bit 23 (thermal event) in the N5 list"))
    return out


# =========================================================================== alarm window


@dataclass(frozen=True)
class AlarmWindow:
    """The data required around one level ≥ 3 fault point and what of it is missing."""

    fault: datetime  # collection time of the fault point
    level: int
    start: datetime  # fault point − alarm_pre_seconds
    end: datetime  # last required second (fault + post; 2025: until the alarm clears), capped at the data
    missing: tuple[datetime, ...]

    @property
    def span(self) -> int:
        return int((self.end - self.start).total_seconds()) + 1

    def violation(self) -> Violation | None:
        """``alarm_window_gap`` when seconds are missing, else None."""
        if not self.missing:
            return None
        return Violation("alarm_window_gap",
                         f"level {self.level} alarm at {self.fault.isoformat()}: {len(self.missing)} of "
                         f"{self.span} seconds missing (first {self.missing[0].isoformat()})")


def alarm_windows(samples: Iterable[tuple[datetime, int | None]], edition: Edition,
                  limits: Limits) -> list[AlarmWindow]:
    """Every level ≥ 3 alarm window of one VIN (spec §6 / 2025 §4.1), complete or not.

    ``samples``: (collection time, alarm level) of every realtime and reissue report. A fault point is a
    report with level ≥ 3 whose previous report (in collection time) had a lower level, or the first
    one. Required: every second from the fault point − ``alarm_pre_seconds`` to the fault point +
    ``alarm_post_seconds`` (2025: to the last second of the alarm if later), limited to the last second
    the VIN has data for.
    """
    levels: dict[datetime, int] = {}
    for t, level in samples:
        levels[t] = max(levels.get(t, 0), level or 0)
    if not levels:
        return []
    times = sorted(levels)
    last = times[-1]
    out: list[AlarmWindow] = []
    one = timedelta(seconds=1)
    covered_until: datetime | None = None
    for i, t in enumerate(times):
        # a fault point: level ≥ 3 after a lower level (a missing second inside an alarm is no new fault)
        onset = levels[t] >= 3 and (i == 0 or levels[times[i - 1]] < 3)
        if not onset or (covered_until is not None and t <= covered_until):
            continue
        end = t + timedelta(seconds=limits.alarm_post_seconds)
        if edition == Edition.E2025:
            j = i
            while j + 1 < len(times) and levels[times[j + 1]] >= 3:
                j += 1
            end = max(end, times[j])
        end = min(end, last)
        covered_until = end
        start = t - timedelta(seconds=limits.alarm_pre_seconds)
        missing = []
        cur = start
        while cur <= end:
            if cur not in levels:
                missing.append(cur)
            cur += one
        out.append(AlarmWindow(t, levels[t], start, end, tuple(missing)))
    return out


def alarm_window_gaps(samples: Iterable[tuple[datetime, int | None]], edition: Edition,
                      limits: Limits) -> list[tuple[datetime, Violation]]:
    """(fault point, violation) of every incomplete alarm window (see ``alarm_windows``)."""
    out: list[tuple[datetime, Violation]] = []
    for w in alarm_windows(samples, edition, limits):
        v = w.violation()
        if v is not None:
            out.append((w.fault, v))
    return out


# =========================================================================== 2025 post-HV-off window


def power_on(report: RealtimeReport) -> bool | None:
    """Whether a report shows high voltage on (vehicle started, or charging), off (stopped and not
    charging), or None (no vehicle block, sentinels, other states: hold the previous state)."""
    vehicle = vehicle_block(report)
    if vehicle is None:
        return None
    return power_state(vehicle.vehicle_state, vehicle.charging_state)


_ON_CHARGING = frozenset((int(ChargingState.PARKED_CHARGING), int(ChargingState.DRIVING_CHARGING)))
_OFF_CHARGING = frozenset((int(ChargingState.NOT_CHARGING), int(ChargingState.CHARGING_COMPLETE)))


def power_state(vehicle_state: object, charging_state: object) -> bool | None:
    """``power_on`` from the two codes (enum members, raw ints or sentinels)."""
    if vehicle_state == VehicleState.STARTED or charging_state in _ON_CHARGING:
        return True
    if vehicle_state == VehicleState.STOPPED and charging_state in _OFF_CHARGING:
        return False
    return None


def hv_off_window(last_on: datetime, first_off: datetime, limits: Limits) -> tuple[datetime, datetime]:
    """The collection times a 2025 post-HV-off report may carry (2025 §4.1: the 59:30–60:00 window after
    high voltage went off). The platform only knows HV went off between the last "on" report and the
    first "off" one, so the window spans both readings, widened by ``hv_off_tolerance``."""
    tol = timedelta(seconds=limits.hv_off_tolerance)
    start = last_on + timedelta(seconds=limits.hv_off_monitor - limits.hv_off_report) - tol
    end = first_off + timedelta(seconds=limits.hv_off_monitor) + tol
    return start, end


__all__ = [
    "AlarmWindow",
    "Limits",
    "ReportFacts",
    "SecondSet",
    "VinState",
    "Violation",
    "alarm_level",
    "alarm_window_gaps",
    "alarm_windows",
    "bad_bcc",
    "check_consistency",
    "check_info_types",
    "check_login",
    "check_login_body",
    "check_logout",
    "check_report",
    "check_report_state",
    "check_sentinel_widths",
    "check_silence",
    "check_time",
    "check_values",
    "hv_off_window",
    "power_on",
    "power_state",
    "report_facts",
    "strict_violations",
    "unit_counts",
    "vehicle_block",
]
