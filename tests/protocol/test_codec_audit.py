"""Independent audit of the GB/T 32960 codec against the spec tables (both editions).

The reference decoder below is written straight from ../shared/spec/gbt32960.md (§4-§8, §10) and
gbt32960-2025.md (§3); it imports nothing from ``agent.protocol.codec`` beyond the public entry points
it checks. Every info type is compared field by field with the codec on

* random *byte layouts* built here from the tables (any raw value, sentinels favoured), and
* bytes produced by the codec's encoder from random models (``tests/protocol/strategies.py``).

Any disagreement is a bug in one of the two; the findings are in docs/conformance.md ("Audit findings").
Conventions shared with the codec (documented there): record/system *numbers* decode 0xFE/0xFF as
abnormal/invalid even where the 2016 tables give no sentinel (R3 asserts it; the wire is identical).
"""
# ruff: noqa: E501

from __future__ import annotations

import dataclasses
import enum
import math
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import wire
from agent.protocol.codec import (
    CodecOptions,
    decode_body,
    decode_frame,
    decode_info_blocks,
    encode_body,
    encode_frame,
    encode_info_blocks,
    info_type_ids,
    signed_range,
)
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    Activation,
    ActivationInfo,
    ActivationResult,
    Alarm,
    AlarmLevel,
    CellVoltages,
    CustomBlock,
    DriveMotor,
    DriveMotor2025,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Encryption,
    Frame,
    FuelCell,
    FuelCell2025,
    FuelCellStack,
    FuelCellStacks,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    KeyExchange,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    PackVoltages,
    ParallelUnitVoltages,
    ParameterSet,
    RealtimeReport,
    RemoteUpgrade,
    RemoteUpgradeText,
    ResponseFlag,
    Special,
    SubsystemTemperatures,
    Temperatures,
    VehicleData2025,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
    WarningParams,
)
from tests.protocol import strategies as S

E16, E25 = Edition.E2016, Edition.E2025
ABN, INV = "ABN", "INV"
SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "vectors.md"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# =========================================================================== reference decoder


class Trunc(Exception):
    """The reference decoder ran out of bytes."""


class Cur:
    """A read cursor over a data unit."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.d = data
        self.p = pos

    def take(self, n: int) -> bytes:
        if self.p + n > len(self.d):
            raise Trunc(self.p)
        out = self.d[self.p : self.p + n]
        self.p += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def done(self) -> bool:
        return self.p >= len(self.d)


def sent(raw: int, width: int) -> str | None:
    """§3.3 sentinels by width: 1 -> FE/FF, 2 -> FFFE/FFFF, 4 -> FFFFFFFE/FFFFFFFF."""
    top = (1 << (8 * width)) - 1
    if raw == top:
        return INV
    if raw == top - 1:
        return ABN
    return None


def B(c: Cur, conv: Any = None, sentinel: bool = True) -> Any:
    raw = c.u8()
    if sentinel and sent(raw, 1):
        return sent(raw, 1)
    return conv(raw) if conv else raw


def W(c: Cur, conv: Any = None, sentinel: bool = True) -> Any:
    raw = c.u16()
    if sentinel and sent(raw, 2):
        return sent(raw, 2)
    return conv(raw) if conv else raw


def D(c: Cur, conv: Any = None, sentinel: bool = True) -> Any:
    raw = c.u32()
    if sentinel and sent(raw, 4):
        return sent(raw, 4)
    return conv(raw) if conv else raw


def t40(raw: int) -> int:
    return raw - 40


def gear(raw: int, e25: bool) -> dict[str, Any]:
    """§5.2.1 / 2025 §3.13: bits 3-0 gear, 4 brake, 5 drive, 7 invalid (2025 only), rest reserved."""
    return {
        "gear": raw & 0x0F,
        "drive_force": bool(raw & 0x20),
        "brake_force": bool(raw & 0x10),
        "invalid": bool(raw & 0x80) if e25 else False,
        "reserved_bits": raw & (0x40 if e25 else 0xC0),
    }


def vehicle(c: Cur, e25: bool) -> dict[str, Any]:
    out = {
        "vehicle_state": B(c),
        "charging_state": B(c),
        "running_mode": B(c),
        "speed": W(c, lambda r: r / 10),
        "mileage": D(c, lambda r: r / 10),
        "total_voltage": W(c, lambda r: r / 10),
        # 2016: 0.1 A, offset 1000 A; 2025: offset 3000 A
        "total_current": W(c, (lambda r: r / 10 - 3000) if e25 else (lambda r: r / 10 - 1000)),
        "soc": B(c),
        "dcdc_state": B(c),
        "gear": gear(c.u8(), e25),
        "insulation_resistance": W(c, sentinel=e25),  # 2016 defines no sentinel
    }
    if not e25:
        out["accelerator_pedal"] = B(c)
        out["brake_pedal"] = B(c)
        out["reserved"] = None
    return out


def motors(c: Cur, e25: bool) -> dict[str, Any]:
    n = c.u8()
    if e25 and sent(n, 1):  # 2025: count FE/FF, no list; 2016: count 1-253, no sentinel
        return {"motors": sent(n, 1)}
    out = []
    for _ in range(n):
        m = {"number": B(c), "state": B(c), "controller_temperature": B(c, t40)}
        if e25:
            m["speed"] = W(c, lambda r: r - 32000)
            m["torque"] = D(c, lambda r: (r - 200000) / 10)  # DWORD, 0.1 N·m, raw offset 200000
            m["temperature"] = B(c, t40)
        else:
            m["speed"] = W(c, lambda r: r - 20000)
            m["torque"] = W(c, lambda r: (r - 20000) / 10)
            m["temperature"] = B(c, t40)
            m["controller_voltage"] = W(c, lambda r: r / 10)
            m["controller_current"] = W(c, lambda r: r / 10 - 1000)
        out.append(m)
    return {"motors": out}


def fuel_cell(c: Cur, e25: bool) -> dict[str, Any]:
    if e25:  # 2025 §3.6, 12 bytes
        return {
            "h2_max_temperature": W(c, t40),  # 1 °C, offset 40
            "h2_max_temperature_probe": B(c),
            "h2_max_concentration": W(c, lambda r: r / 10000),  # 0.0001 % by volume
            "h2_max_concentration_sensor": B(c),
            "h2_max_pressure": W(c, lambda r: r / 10),  # 0.1 MPa, FE/FF defined in 2025
            "h2_max_pressure_sensor": B(c),
            "dcdc_state": B(c),
            "h2_remaining": B(c),
            "dcdc_controller_temperature": B(c, t40),
        }
    out: dict[str, Any] = {
        "voltage": W(c, lambda r: r / 10),
        "current": W(c, lambda r: r / 10),
        "consumption_rate": W(c, lambda r: r / 100),
    }
    n = c.u16()
    if sent(n, 2):
        out["probe_temperatures"] = sent(n, 2)
    else:
        out["probe_temperatures"] = [B(c, t40, sentinel=False) for _ in range(n)]  # none stated
    out["h2_max_temperature"] = W(c, lambda r: r / 10 - 40)  # 0.1 °C, offset 40 °C
    out["h2_max_temperature_probe"] = B(c)
    out["h2_max_concentration"] = W(c)  # 1 mg/kg
    out["h2_max_concentration_sensor"] = B(c)
    out["h2_max_pressure"] = W(c, lambda r: r / 10, sentinel=False)  # none stated in 2016
    out["h2_max_pressure_sensor"] = B(c)
    out["dcdc_state"] = B(c)
    return out


def engine(c: Cur, e25: bool) -> dict[str, Any]:
    if e25:
        return {"crankshaft_speed": W(c)}
    return {"state": B(c), "crankshaft_speed": W(c), "fuel_consumption_rate": W(c, lambda r: r / 100)}


def location(c: Cur, e25: bool) -> dict[str, Any]:
    status = c.u8()
    out: dict[str, Any] = {"status": status}
    if e25:
        out["coordinate_system"] = B(c)
    # longitude first (sign from bit 2 = west), then latitude (bit 1 = south); magnitudes × 10^6
    out["longitude"] = D(c, lambda r: (-r if status & 4 else r) / 1e6)
    out["latitude"] = D(c, lambda r: (-r if status & 2 else r) / 1e6)
    return out


def extremes(c: Cur) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in ("max", "min"):
        out[f"{side}_voltage_subsystem"] = B(c)
        out[f"{side}_voltage_cell"] = B(c)
        out[f"{side}_cell_voltage"] = W(c, lambda r: r / 1000)
    for side in ("max", "min"):
        out[f"{side}_temperature_subsystem"] = B(c)
        out[f"{side}_temperature_probe"] = B(c)
        out[f"{side}_temperature"] = B(c, t40)
    return out


def alarm(c: Cur, e25: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"max_level": B(c), "general_flags": c.u32()}
    for group in ("ress_faults", "motor_faults", "engine_faults", "other_faults"):
        n = c.u8()
        out[group] = sent(n, 1) or [c.u32() for _ in range(n)]
    if e25:
        n = c.u8()
        out["flag_levels"] = sent(n, 1) or [{"bit": c.u8(), "level": c.u8()} for _ in range(n)]
    return out


def cells_2016(c: Cur) -> dict[str, Any]:
    n = c.u8()
    if sent(n, 1):
        return {"subsystems": sent(n, 1)}
    recs = []
    for _ in range(n):
        rec = {
            "number": B(c),
            "voltage": W(c, lambda r: r / 10),
            "current": W(c, lambda r: r / 10 - 1000),  # 2016: offset 1000 A (rtm_con's 3000 is a bug)
            "cell_count": W(c),
            "start_index": W(c, sentinel=False),
        }
        m = c.u8()
        rec["cell_voltages"] = [W(c, lambda r: r / 1000) for _ in range(m)]
        recs.append(rec)
    return {"subsystems": recs}


def packs_2025(c: Cur) -> dict[str, Any]:
    n = c.u8()
    if sent(n, 1):
        return {"packs": sent(n, 1)}
    packs = []
    for _ in range(n):
        pk = {"number": B(c), "voltage": W(c, lambda r: r / 10), "current": W(c, lambda r: r / 10 - 3000)}
        m = c.u16()
        pk["cell_voltages"] = [W(c, lambda r: r / 1000) for _ in range(m)]
        packs.append(pk)
    return {"packs": packs}


def temperatures(c: Cur) -> dict[str, Any]:
    n = c.u8()
    if sent(n, 1):
        return {"subsystems": sent(n, 1)}
    subs = []
    for _ in range(n):
        no = B(c)
        m = c.u16()
        temps: Any = sent(m, 2) or [B(c, t40) for _ in range(m)]
        subs.append({"number": no, "temperatures": temps})
    return {"subsystems": subs}


def stacks(c: Cur) -> dict[str, Any]:
    n = c.u8()  # 1-253, no sentinel in the table
    out = []
    for _ in range(n):
        s = {
            "number": B(c),
            "voltage": W(c, lambda r: r / 10),
            "current": W(c, lambda r: r / 10),
            "h2_inlet_pressure": W(c, lambda r: r / 10 - 100),  # 0.1 kPa, offset 100 kPa
            "air_inlet_pressure": W(c, lambda r: r / 10 - 100),
            "air_inlet_temperature": B(c, t40),
        }
        m = c.u16()
        s["coolant_temperatures"] = sent(m, 2) or [B(c, t40) for _ in range(m)]
        out.append(s)
    return {"stacks": out}


def supercap(c: Cur) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": B(c),
        "total_voltage": W(c, lambda r: r / 10),
        "total_current": W(c, lambda r: r / 10 - 3000),
    }
    m = c.u16()
    out["cell_voltages"] = sent(m, 2) or [W(c, lambda r: r / 1000) for _ in range(m)]
    n = c.u16()
    out["temperatures"] = sent(n, 2) or [B(c, t40) for _ in range(n)]
    return out


def supercap_extremes(c: Cur) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in ("max", "min"):
        out[f"{side}_voltage_system"] = B(c)
        out[f"{side}_voltage_cell"] = W(c)  # WORD in 2025
        out[f"{side}_voltage"] = W(c, lambda r: r / 1000)
    for side in ("max", "min"):
        out[f"{side}_temperature_system"] = B(c)
        out[f"{side}_temperature_probe"] = W(c)
        out[f"{side}_temperature"] = B(c, t40)
    return out


REF_2016 = {
    0x01: lambda c: vehicle(c, False),
    0x02: lambda c: motors(c, False),
    0x03: lambda c: fuel_cell(c, False),
    0x04: lambda c: engine(c, False),
    0x05: lambda c: location(c, False),
    0x06: extremes,
    0x07: lambda c: alarm(c, False),
    0x08: cells_2016,
    0x09: temperatures,
}
REF_2025 = {
    0x01: lambda c: vehicle(c, True),
    0x02: lambda c: motors(c, True),
    0x03: lambda c: fuel_cell(c, True),
    0x04: lambda c: engine(c, True),
    0x05: lambda c: location(c, True),
    0x06: lambda c: alarm(c, True),
    0x07: packs_2025,
    0x08: temperatures,
    0x30: stacks,
    0x31: supercap,
    0x32: supercap_extremes,
}


def ref_blocks(edition: Edition, data: bytes, pos: int = 0) -> tuple[list[tuple[int, Any]], Any]:
    """[(info type, fields)] and the signature (type, r, s) of a realtime data unit from ``pos``."""
    table = REF_2025 if edition is E25 else REF_2016
    c = Cur(data, pos)
    out: list[tuple[int, Any]] = []
    sig = None
    while not c.done():
        t = c.u8()
        if t in table:
            out.append((t, table[t](c)))
        elif 0x80 <= t <= 0xFE:
            n = c.u16()
            out.append((t, {"info_type": t, "data": c.take(n)}))
        elif t == 0xFF and edition is E25:
            st_ = c.u8()
            r = c.take(c.u16())
            s = c.take(c.u16())
            sig = {"sig_type": st_, "r": r, "s": s}
            if not c.done():
                raise ValueError("bytes after the signature")
        else:
            raise ValueError(f"unknown type {t:#x}")
    return out, sig


def ref_time(raw: bytes) -> datetime:
    """§3.1: YY MM DD hh mm ss, Beijing (UTC+8)."""
    y, mo, d, h, mi, s = raw
    return datetime(2000 + y, mo, d, h, mi, s, tzinfo=timezone(timedelta(hours=8))).astimezone(UTC)


# =========================================================================== normalising codec values


def norm(value: Any) -> Any:
    """Codec model -> the reference decoder's plain form."""
    if isinstance(value, Special):
        return ABN if value is Special.ABNORMAL else INV
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, bool):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: norm(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [norm(v) for v in value]
    return value


def same(a: Any, b: Any, path: str = "") -> None:
    """Deep equality with float tolerance; raises naming the path."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), f"{path}: {a!r} != {b!r}"
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-6), f"{path}: {a!r} != {b!r}"
    else:
        assert (a == b and type(a) is type(b)) or (isinstance(a, int) and isinstance(b, int) and a == b), (
            f"{path}: {a!r} != {b!r}"
        )


def compare_blocks(edition: Edition, unit: bytes, pos: int = 6) -> None:
    """The codec and the reference agree on every block of ``unit`` (a realtime data unit)."""
    blocks, sig = decode_info_blocks(edition, unit, pos)
    ref, ref_sig = ref_blocks(edition, unit, pos)
    ids = info_type_ids(edition)
    got = [(b.info_type if isinstance(b, CustomBlock) else ids[type(b)], norm(b)) for b in blocks]
    assert [t for t, _ in got] == [t for t, _ in ref]
    for i, ((t, g), (_, r)) in enumerate(zip(got, ref, strict=True)):
        same(g, r, f"block[{i}] type 0x{t:02X}")
    same(norm(sig), ref_sig, "signature")


# =========================================================================== byte-layout generators

#: raw bytes biased towards limits and sentinels
BYTE = st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 0x28, 0x7F, 0x80, 0xFD, 0xFE, 0xFF]))


def raw(n: int) -> st.SearchStrategy[bytes]:
    return st.lists(BYTE, min_size=n, max_size=n).map(bytes)


def count8(hi: int = 3, sentinel: bool = True) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, hi), st.sampled_from([0xFE, 0xFF])) if sentinel else st.integers(0, hi)


def count16(hi: int = 4) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, hi), st.sampled_from([0xFFFE, 0xFFFF]))


def listed(n: int, item: int, each: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[bytes]:
    """``n`` items of ``item`` random bytes (none when ``n`` is a sentinel count)."""
    if n in (0xFE, 0xFF, 0xFFFE, 0xFFFF):
        return st.just(b"")
    return st.lists(each if each is not None else raw(item), min_size=n, max_size=n).map(b"".join)


def body_2016(t: int) -> st.SearchStrategy[bytes]:
    if t == 0x01:
        return raw(20)
    if t == 0x02:
        return st.integers(0, 3).flatmap(lambda n: listed(n, 12).map(lambda b: bytes([n]) + b))
    if t == 0x03:
        return count16().flatmap(
            lambda n: st.tuples(raw(6), listed(n, 1), raw(10)).map(
                lambda p: p[0] + struct.pack(">H", n) + p[1] + p[2]
            )
        )
    if t == 0x04:
        return raw(5)
    if t == 0x05:
        return raw(9)
    if t == 0x06:
        return raw(14)
    if t == 0x07:
        return alarm_bytes(False)
    if t == 0x08:
        rec = st.integers(0, 5).flatmap(lambda m: st.tuples(raw(9), raw(2 * m)).map(lambda p: p[0] + bytes([m]) + p[1]))
        return count8().flatmap(lambda n: listed(n, 0, rec).map(lambda b: bytes([n]) + b))
    if t == 0x09:
        return temps_bytes()
    raise AssertionError(t)


def alarm_bytes(e25: bool) -> st.SearchStrategy[bytes]:
    group = count8().flatmap(lambda n: listed(n, 4).map(lambda b: bytes([n]) + b))
    parts = [raw(5), group, group, group, group]
    if e25:
        parts.append(count8().flatmap(lambda n: listed(n, 2).map(lambda b: bytes([n]) + b)))
    return st.tuples(*parts).map(b"".join)


def temps_bytes() -> st.SearchStrategy[bytes]:
    rec = st.tuples(raw(1), count16()).flatmap(
        lambda p: listed(p[1], 1).map(lambda b: p[0] + struct.pack(">H", p[1]) + b)
    )
    return count8().flatmap(lambda n: listed(n, 0, rec).map(lambda b: bytes([n]) + b))


def body_2025(t: int) -> st.SearchStrategy[bytes]:
    if t == 0x01:
        return raw(18)
    if t == 0x02:
        return count8().flatmap(lambda n: listed(n, 10).map(lambda b: bytes([n]) + b))
    if t == 0x03:
        return raw(12)
    if t == 0x04:
        return raw(2)
    if t == 0x05:
        return raw(10)
    if t == 0x06:
        return alarm_bytes(True)
    if t == 0x07:
        pk = st.integers(0, 5).flatmap(lambda m: st.tuples(raw(5), raw(2 * m)).map(lambda p: p[0] + struct.pack(">H", m) + p[1]))
        return count8().flatmap(lambda n: listed(n, 0, pk).map(lambda b: bytes([n]) + b))
    if t == 0x08:
        return temps_bytes()
    if t == 0x30:
        stk = st.tuples(raw(10), count16()).flatmap(
            lambda p: listed(p[1], 1).map(lambda b: p[0] + struct.pack(">H", p[1]) + b)
        )
        return st.integers(0, 3).flatmap(lambda n: listed(n, 0, stk).map(lambda b: bytes([n]) + b))
    if t == 0x31:
        return st.tuples(raw(5), count16(), count16()).flatmap(
            lambda p: st.tuples(listed(p[1], 2), listed(p[2], 1)).map(
                lambda q: p[0] + struct.pack(">H", p[1]) + q[0] + struct.pack(">H", p[2]) + q[1]
            )
        )
    if t == 0x32:
        return raw(18)
    raise AssertionError(t)


def custom_bytes() -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0x80, 0xFE), st.binary(min_size=1, max_size=6)).map(
        lambda p: bytes([p[0]]) + struct.pack(">H", len(p[1])) + p[1]
    )


def typed(edition: Edition) -> st.SearchStrategy[bytes]:
    ids = sorted(REF_2025 if edition is E25 else REF_2016)
    body = body_2025 if edition is E25 else body_2016
    return st.one_of(
        *[body(t).map(lambda b, t=t: bytes([t]) + b) for t in ids], custom_bytes()
    )


TIME_RAW = st.builds(
    lambda y, mo, d, h, mi, s: bytes([y, mo, d, h, mi, s]),
    st.integers(0, 99), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
)


def realtime_units(edition: Edition) -> st.SearchStrategy[bytes]:
    sig = st.tuples(st.integers(0, 255), st.binary(max_size=8), st.binary(max_size=8)).map(
        lambda p: b"\xff" + bytes([p[0]]) + struct.pack(">H", len(p[1])) + p[1] + struct.pack(">H", len(p[2])) + p[2]
    )
    tail = st.one_of(st.just(b""), sig) if edition is E25 else st.just(b"")
    return st.tuples(TIME_RAW, st.lists(typed(edition), max_size=5), tail).map(
        lambda p: p[0] + b"".join(p[1]) + p[2]
    )


# =========================================================================== byte layouts -> codec vs reference


@pytest.mark.parametrize("edition", [E16, E25])
@given(data=st.data())
@FAST
def test_random_byte_layouts_decode_as_the_spec_says(edition: Edition, data: st.DataObject) -> None:
    unit = data.draw(realtime_units(edition))
    compare_blocks(edition, unit)
    # and the codec re-encodes the exact bytes, in a whole frame too
    frame_bytes = wire.build_frame(int(edition), 0x02, 0xFE, b"LSVAUDIT000000001", 1, unit)
    frame = decode_frame(frame_bytes)
    assert frame.body.time == ref_time(unit[:6])
    assert encode_frame(frame) == frame_bytes


@pytest.mark.parametrize("edition", [E16, E25])
@given(data=st.data())
@FAST
def test_codec_encoded_models_read_back_by_the_reference(edition: Edition, data: st.DataObject) -> None:
    report = data.draw(S.realtime(edition))
    unit = encode_body(edition, 0x02, 0xFE, report)
    assert ref_time(unit[:6]) == report.time.replace(microsecond=0)
    ref, ref_sig = ref_blocks(edition, unit, 6)
    ids = info_type_ids(edition)
    want = [(b.info_type if isinstance(b, CustomBlock) else ids[type(b)], norm(b)) for b in report.blocks]
    assert [t for t, _ in want] == [t for t, _ in ref]
    for i, ((t, w), (_, r)) in enumerate(zip(want, ref, strict=True)):
        if edition is E16 and t == 0x01 and w["accelerator_pedal"] is None:  # Body Table 9 reserved WORD
            rawv = ref_reserved(unit, i)
            assert w.pop("reserved") == rawv
            for k in ("accelerator_pedal", "brake_pedal", "reserved"):
                r.pop(k)
            w.pop("accelerator_pedal"), w.pop("brake_pedal")
        same(w, r, f"block[{i}] type 0x{t:02X}")
    same(norm(report.signature), ref_sig, "signature")


def ref_reserved(unit: bytes, index: int) -> int:
    """Bytes 18-19 of the ``index``-th block of a 2016 unit, read as the Body Table 9 reserved WORD."""
    c = Cur(unit, 6)
    for i in range(index + 1):
        t = c.u8()
        start = c.p
        if t in REF_2016:
            REF_2016[t](c)
        else:
            c.take(c.u16())
        if i == index:
            return int(struct.unpack(">H", unit[start + 18 : start + 20])[0])
    raise AssertionError(index)


# =========================================================================== session units, reference side


def ref_login(edition: Edition, unit: bytes) -> dict[str, Any]:
    c = Cur(unit)
    out: dict[str, Any] = {"time": ref_time(c.take(6)), "serial": c.u16(), "iccid": c.take(20).rstrip(b"\0").decode("latin-1")}
    n = c.u8()
    if edition is E16:  # §4.2: n subsystems, code length m, n*m code bytes
        m = c.u8()
        out.update(subsystem_count=n, code_length=m, codes=[c.take(m).decode("latin-1") for _ in range(n)] if m else [])
    else:  # 2025 §3.4: n BMS, n pack counts, 24-byte codes
        packs = list(c.take(n))
        out.update(packs_per_bms=packs, pack_codes=[c.take(24).rstrip(b"\0").decode("latin-1") for _ in range(sum(packs))])
    assert c.done()
    return out


def ref_params(edition: Edition, c: Cur) -> list[dict[str, Any]]:
    """§7 Table B.12 / 2025 §3.10 widths."""
    widths = {1: 2, 2: 2, 3: 2, 4: 1, 6: 2, 9: 1, 0x0A: 2, 0x0B: 2, 0x0C: 1, 0x0D: 1, 0x0F: 2, 0x10: 1}
    if edition is E25:
        widths[2] = widths[3] = 1
    lengths: dict[int, int] = {}
    items = []
    for _ in range(c.u8()):
        pid = c.u8()
        value: Any
        if pid in (0x07, 0x08):
            value = c.take(5).decode("latin-1")
        elif pid in (0x05, 0x0E):
            value = c.take(lengths[pid - 1]).decode("latin-1")
        else:
            w = widths[pid]
            rawv = c.u8() if w == 1 else c.u16()
            if pid in (0x04, 0x0D):
                lengths[pid + 1 - 1] = rawv
                value = rawv
            else:
                value = sent(rawv, w) or rawv
        items.append({"id": pid, "value": value})
    assert c.done()
    return items


@pytest.mark.parametrize("edition", [E16, E25])
@given(data=st.data())
@FAST
def test_session_units_match_the_reference(edition: Edition, data: st.DataObject) -> None:
    login = data.draw(S.login(edition))
    unit = encode_body(edition, 0x01, 0xFE, login)
    got = norm(login)
    got["time"] = login.time.replace(microsecond=0)
    same({k: v for k, v in got.items()}, ref_login(edition, unit), "login")

    items = data.draw(S.parameter_items(edition))
    unit = encode_body(edition, 0x81, 0xFE, ParameterSet(login.time, items))
    c = Cur(unit, 6)
    same(norm(list(items)), ref_params(edition, c), "params")

    pl = data.draw(S.platform_login(edition))
    unit = encode_body(edition, 0x05, 0xFE, pl)
    assert len(unit) == 41  # §4.4: time 6, serial 2, username 12, password 20, rule 1
    assert unit[8:20].rstrip(b"\0").decode("latin-1") == pl.username
    assert unit[20:40].rstrip(b"\0").decode("latin-1") == pl.password
    assert unit[40] == int(pl.encryption_rule)


@given(act=S.activation())
@FAST
def test_activation_layout(act: Activation) -> None:
    """2025 Table B.3: time, chip id 16 (space-padded), key length WORD, key, VIN 17, signature block
    (type BYTE, R length WORD, R, S length WORD, S), no 0xFF marker; signed range = time..VIN."""
    unit = encode_body(E25, 0x09, 0xFE, act)
    c = Cur(unit)
    assert ref_time(c.take(6)) == act.time.replace(microsecond=0)
    chip = c.take(16)
    assert chip == act.chip_id.encode("latin-1").ljust(16, b" ")
    key = c.take(c.u16())
    assert key == act.public_key
    assert c.take(17).rstrip(b"\0").decode("latin-1") == act.vin
    signed_end = c.p
    assert c.u8() == int(act.signature.sig_type)
    assert c.take(c.u16()) == act.signature.r
    assert c.take(c.u16()) == act.signature.s
    assert c.done()
    assert signed_range(E25, act) == unit[:signed_end]


# =========================================================================== vectors through the reference


def vectors() -> dict[str, bytes]:
    if not SPEC.exists():
        return {}
    text = SPEC.read_text(encoding="utf-8")
    return {m.group(1): bytes.fromhex(m.group(2)) for m in re.finditer(r"### (\w+) — [^\n]*\n\nSource[^\n]*\n\n```\n([0-9A-F]+)\n```", text)}


VECTORS = vectors()
REALTIME = [n for n, f in VECTORS.items() if f[2] in (2, 3) and n not in ("J3",)]


@pytest.mark.parametrize("name", REALTIME)
def test_realtime_vectors_agree_with_the_reference(name: str) -> None:
    f = VECTORS[name]
    compare_blocks(E25 if f[:2] == b"$$" else E16, f[24:-1])


def test_j3_blocks_without_time_agree_with_the_reference() -> None:
    if "J3" not in VECTORS:
        pytest.skip("vectors.md not found")
    compare_blocks(E16, VECTORS["J3"][24:-1], 0)


def test_all_vectors_parsed() -> None:
    if not SPEC.exists():
        pytest.skip("vectors.md not found")
    assert len(VECTORS) == 47


# =========================================================================== edge cases


def unit_with(edition: Edition, body: bytes) -> bytes:
    return bytes([24, 2, 29, 23, 59, 59]) + body


def test_motor_count_edges() -> None:
    motor = bytes([1, 1, 60]) + struct.pack(">HHB", 20000, 20000, 60) + struct.pack(">HH", 3000, 10000)
    for n in (0, 1, 253, 254, 255):  # 2016: 1-253, no sentinel, so 254/255 are counts
        unit = unit_with(E16, bytes([2, n]) + motor * n)
        compare_blocks(E16, unit)
        assert encode_body(E16, 2, 0xFE, decode_body(E16, 2, 0xFE, unit)) == unit
    m25 = bytes([1, 1, 60]) + struct.pack(">HIB", 32000, 200000, 60)
    for n in (0, 253):
        unit = unit_with(E25, bytes([2, n]) + m25 * n)
        compare_blocks(E25, unit)
    for n in (0xFE, 0xFF):  # 2025 defines FE/FF for the count: no list
        (b,), _ = decode_info_blocks(E25, bytes([2, n]), 0)
        assert isinstance(b, DriveMotors2025) and b.motors is (Special.ABNORMAL if n == 0xFE else Special.INVALID)


def test_scaling_anchor_values() -> None:
    """Spot values from the tables, encoded by the codec and compared byte for byte."""
    m16 = DriveMotor(1, MotorState.CONSUMING, -40, -20000, -2000.0, 210, 0.0, -1000.0)
    assert encode_info_blocks(E16, [DriveMotors((m16,))])[2:] == bytes([1, 1, 0]) + struct.pack(">HHBHH", 0, 0, 250, 0, 0)
    m25 = DriveMotor2025(1, MotorState.CONSUMING, 0, -32000, -20000.0, 0)
    assert encode_info_blocks(E25, [DriveMotors2025((m25,))])[2:] == bytes([1, 1, 40]) + struct.pack(">HIB", 0, 0, 40)
    m25 = DriveMotor2025(1, MotorState.CONSUMING, 0, 0, 20000.0, 0)
    assert encode_info_blocks(E25, [DriveMotors2025((m25,))])[7:11] == struct.pack(">I", 400000)
    v = VehicleData2025(1, 3, 1, 0.0, 0.0, 0.0, -3000.0, 50, 1, Gear(GearPosition.PARK, invalid=True), Special.ABNORMAL)
    body = encode_info_blocks(E25, [v])
    assert body[12:14] == b"\0\0" and body[16] == 0x8F and body[17:19] == b"\xff\xfe"
    fc = FuelCell2025(-40, 1, 6.0, 1, 100.0, 1, 1, 100, -40)
    assert encode_info_blocks(E25, [fc])[1:] == struct.pack(">HBHBHBBBB", 0, 1, 60000, 1, 1000, 1, 1, 100, 0)
    stack = FuelCellStack(1, 0.0, 0.0, -100.0, 400.0, -40, ())
    assert encode_info_blocks(E25, [FuelCellStacks((stack,))])[2:] == struct.pack(">BHHHHBH", 1, 0, 0, 0, 5000, 0, 0)


def test_alarm_flag_bits_are_lsb_first_and_2025_bits_19_27() -> None:
    for bit in range(32):
        unit = unit_with(E25, bytes([6, 0]) + struct.pack(">I", 1 << bit) + bytes(5))
        (a,), _ = decode_info_blocks(E25, unit, 6)
        assert int(a.general_flags) == 1 << bit
        assert bool(a.general_flags & GeneralAlarmFlag(1 << bit))
    assert GeneralAlarmFlag.TEMPERATURE_DIFFERENCE == 1 and GeneralAlarmFlag.STORAGE_OVERCHARGE == 1 << 18
    assert GeneralAlarmFlag.MOTOR_OVERSPEED == 1 << 19 and GeneralAlarmFlag.THERMAL_EVENT == 1 << 23
    assert GeneralAlarmFlag.STACK_OVERTEMPERATURE == 1 << 27


def test_custom_block_lengths() -> None:
    # length 0 is outside 1..65531 but harmless: decoded and re-encoded exactly (strict refuses to build it)
    unit = unit_with(E16, bytes([0x80, 0, 0, 0x01]) + bytes(20))
    compare_blocks(E16, unit)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [CustomBlock(0x80, b"")], options=CodecOptions(strict=True))
    # the largest custom block that fits a data unit: 65531 - 6 (time) - 3 (type + length)
    big = CustomBlock(0xFE, bytes(range(256)) * 255 + bytes(65522 - 65280))
    frame = Frame(E16, 0x02, 0xFE, "LSVAUDIT000000001", body=RealtimeReport(datetime(2024, 1, 1, tzinfo=UTC), (big,)))
    data = encode_frame(frame)
    assert len(data) == 24 + 65531 + 1
    assert decode_frame(data) == frame
    over = dataclasses.replace(frame, body=RealtimeReport(frame.body.time, (CustomBlock(0xFE, big.data + b"x"),)))  # type: ignore[union-attr]
    with pytest.raises(ProtocolError) as err:
        encode_frame(over)
    assert err.value.field == "length"


def test_unknown_info_type_in_the_middle_names_its_offset() -> None:
    unit = unit_with(E16, bytes([4, 1, 0, 0, 0, 0, 0x0A, 1, 2]))
    frame = wire.build_frame(2016, 2, 0xFE, b"LSVAUDIT000000001", 1, unit)
    with pytest.raises(ProtocolError) as err:
        decode_frame(frame)
    assert err.value.offset == 24 + 12 and err.value.field == "realtime.info_type"
    # 0x09 is a 2016 type but 2025 platform-exchange (no length); 0x06 changes meaning
    with pytest.raises(ProtocolError):
        decode_info_blocks(E25, bytes([0x09, 0, 0]), 0)


def _frames_for_truncation() -> list[tuple[str, bytes]]:
    out = [(n, f) for n, f in VECTORS.items() if n not in ("J2", "J3")]
    return out


def test_truncation_at_every_offset_raises_protocol_error_inside_the_frame() -> None:
    if not VECTORS:
        pytest.skip("vectors.md not found")
    for name, f in _frames_for_truncation():
        data = f[24:-1]
        for cut in range(len(data)):
            fr = wire.build_frame(2016 if f[:2] == b"##" else 2025, f[2], f[3], f[4:21], f[21], data[:cut])
            try:
                decode_frame(fr)
            except ProtocolError as exc:
                assert exc.offset is not None and 0 <= exc.offset < len(fr), (name, cut, exc)
                assert exc.field, (name, cut, exc)


@given(data=st.data())
@FAST
def test_truncated_random_units_raise_protocol_error(data: st.DataObject) -> None:
    edition = data.draw(st.sampled_from([E16, E25]))
    unit = data.draw(realtime_units(edition))
    cut = data.draw(st.integers(0, len(unit)))
    fr = wire.build_frame(int(edition), 3, 0xFE, b"LSVAUDIT000000001", 1, unit[:cut])
    try:
        ref_blocks(edition, unit[:cut], 6) if cut >= 6 else None
        ref_ok = cut >= 6
    except (Trunc, ValueError):
        ref_ok = False
    try:
        decode_frame(fr)
    except ProtocolError as exc:
        assert exc.offset is not None and 0 <= exc.offset < len(fr) and exc.field
        assert not ref_ok, f"codec rejects what the reference reads: {exc}"
    else:
        assert ref_ok, "codec accepts a truncated unit the reference rejects"


TIMES = [
    (bytes([99, 12, 31, 23, 59, 59]), datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC)),
    (bytes([0, 1, 1, 0, 0, 0]), datetime(1999, 12, 31, 16, 0, 0, tzinfo=UTC)),
    (bytes([24, 2, 29, 7, 59, 59]), datetime(2024, 2, 28, 23, 59, 59, tzinfo=UTC)),  # leap day, previous UTC day
    (bytes([24, 3, 1, 0, 0, 0]), datetime(2024, 2, 29, 16, 0, 0, tzinfo=UTC)),  # Beijing midnight
    (bytes([25, 1, 1, 7, 59, 59]), datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)),  # year boundary
]


@pytest.mark.parametrize(("wire_time", "utc"), TIMES)
def test_times_beijing_utc(wire_time: bytes, utc: datetime) -> None:
    assert ref_time(wire_time) == utc
    body = decode_body(E16, 4, 0xFE, wire_time + b"\0\1")
    assert body == VehicleLogout(utc, 1)
    assert encode_body(E16, 4, 0xFE, body) == wire_time + b"\0\1"
    # other aware time zones encode to the same Beijing wall time
    assert encode_body(E16, 4, 0xFE, VehicleLogout(utc.astimezone(timezone(timedelta(hours=-5))), 1)) == wire_time + b"\0\1"


@pytest.mark.parametrize("bad", [bytes([23, 2, 29, 0, 0, 0]), bytes([100, 1, 1, 0, 0, 0]), bytes([24, 13, 1, 0, 0, 0]), bytes([24, 4, 31, 0, 0, 0]), bytes([24, 1, 1, 24, 0, 0])])
def test_bad_times_are_protocol_errors(bad: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_body(E16, 4, 0xFE, bad + b"\0\1")
    assert err.value.offset is not None and 24 <= err.value.offset < 30


def test_times_outside_the_wire_range_are_refused() -> None:
    for t in (datetime(2099, 12, 31, 16, 0, 0, tzinfo=UTC), datetime(1999, 12, 31, 15, 59, 59, tzinfo=UTC)):
        with pytest.raises(ProtocolError):
            encode_body(E16, 4, 0xFE, VehicleLogout(t, 1))


@pytest.mark.parametrize("vin", [b"ABC" + b" " * 14, b"ABC" + b"\0" * 14, b"ABC \0" + b"\0" * 12, b"\0" * 17, b"LFV\xe9\xff" + b"A" * 12, bytes(range(0x80, 0x91))])
def test_vin_padding_and_non_ascii_round_trip_exactly(vin: bytes) -> None:
    fr = wire.build_frame(2016, 7, 0xFE, vin, 1, b"")
    decoded = decode_frame(fr)
    assert decoded.vin == vin.rstrip(b"\0").decode("latin-1")
    assert encode_frame(decoded) == fr


def test_non_ascii_iccid_and_codes_round_trip_or_refuse() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    unit = bytes([24, 1, 1, 8, 0, 0]) + b"\0\1" + bytes(range(0xE0, 0xF4)) + bytes([1, 2]) + b"\xff\xfe"
    body = decode_body(E16, 1, 0xFE, unit)
    assert isinstance(body, VehicleLogin)
    assert encode_body(E16, 1, 0xFE, body) == unit
    with pytest.raises(ProtocolError):  # not representable in one byte per character
        encode_body(E16, 1, 0xFE, VehicleLogin(t, 1, "中国", 0, 0))


# =========================================================================== findings (regression tests)


def test_location_hemisphere_follows_the_sign_of_the_value() -> None:
    """§5.6: bit 2 = west, bit 1 = south. A non-negative coordinate must not go out with the bit set
    because the status it was built from had it (e.g. a decoded fix moved across the meridian)."""
    west = Location(LocationStatus.WEST | LocationStatus.SOUTH, -120.5, -30.25)
    moved = dataclasses.replace(west, longitude=120.5, latitude=30.25)
    body = encode_info_blocks(E16, [moved])
    assert body[1] & 0x06 == 0
    (back,), _ = decode_info_blocks(E16, body, 0)
    assert (back.longitude, back.latitude) == (120.5, 30.25)
    loc25 = Location2025(LocationStatus.WEST | LocationStatus.INVALID_FIX, 1, 10.0, -1.0)
    body = encode_info_blocks(E25, [loc25])
    assert body[1] == LocationStatus.INVALID_FIX | LocationStatus.SOUTH
    # decoded values still re-encode exactly, including -0.0 with the bit set and sentinels
    for status in range(8):
        for lon, lat in ((0, 0), (1, 2), (0xFFFFFFFF, 0xFFFFFFFE)):
            raw_block = bytes([5, status]) + struct.pack(">II", lon, lat)
            blocks, _ = decode_info_blocks(E16, raw_block, 0)
            assert encode_info_blocks(E16, blocks) == raw_block
def test_strict_counts_follow_the_tables() -> None:
    """Strict encoding rejects counts outside the documented ranges (§5.3 motors 1-253, §5.8 2016
    fault counts 0-252, 2025 §3.6 counts 0-253)."""
    strict = CodecOptions(strict=True)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [DriveMotors(())], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E25, [DriveMotors2025(())], options=strict)
    m = DriveMotor(1, MotorState.OFF, 20, 0, 0.0, 20, 300.0, 0.0)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [DriveMotors((m,) * 254)], options=strict)
    encode_info_blocks(E16, [DriveMotors((m,) * 253)], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [Alarm(AlarmLevel.NONE, GeneralAlarmFlag(0), (1,) * 253)], options=strict)
    encode_info_blocks(E16, [Alarm(AlarmLevel.NONE, GeneralAlarmFlag(0), (1,) * 252)], options=strict)
    # non-strict keeps the wire's count as it is (decoded frames re-encode exactly)
    assert len(encode_info_blocks(E16, [DriveMotors(())])) == 2


# =========================================================================== limits


def test_realtime_unit_exactly_at_the_length_limit() -> None:
    """§1: L ≤ 65531. A 2025 0x07 block filling the unit exactly: 6 + 1 + 1 + 5 + 2 + 2N = 65531."""
    n = (65531 - 15) // 2
    pack = PackVoltages(1, 700.0, 0.0, tuple([3.7] * n))
    report = RealtimeReport(datetime(2025, 6, 1, tzinfo=UTC), (ParallelUnitVoltages((pack,)),))
    frame = Frame(E25, 0x02, 0xFE, "LSVAUDIT000000001", body=report)
    data = encode_frame(frame)
    assert len(data) == 24 + 65531 + 1
    assert decode_frame(data) == frame
    compare_blocks(E25, data[24:-1])
    longer = RealtimeReport(report.time, (ParallelUnitVoltages((dataclasses.replace(pack, cell_voltages=(*pack.cell_voltages, 3.7)),)),))
    with pytest.raises(ProtocolError) as err:
        encode_frame(dataclasses.replace(frame, body=longer))
    assert err.value.field == "length"


def test_login_limits() -> None:
    """§4.2: 250 subsystems × 50-character codes; 2025 §3.4: 20 BMS × 50 packs × 24-byte codes."""
    t = datetime(2024, 1, 1, tzinfo=UTC)
    codes = tuple(f"{i:050d}" for i in range(250))
    login16 = VehicleLogin(t, 65531, "89860000000000000000", 250, 50, codes)
    unit = encode_body(E16, 1, 0xFE, login16, options=CodecOptions(strict=True))
    assert len(unit) == 30 + 250 * 50
    same(norm(login16), ref_login(E16, unit), "login16")
    packs = (50,) * 20
    pack_codes = tuple(f"{i:024d}" for i in range(1000))
    login25 = VehicleLogin2025(t, 1, "89860000000000000000", packs, pack_codes)
    unit = encode_body(E25, 1, 0xFE, login25, options=CodecOptions(strict=True))
    assert len(unit) == 29 + 20 + 1000 * 24
    same(norm(login25), ref_login(E25, unit), "login25")
    assert decode_body(E25, 1, 0xFE, unit) == login25


def test_2025_count_sentinels_and_2016_alarm_counts() -> None:
    for t in (0x07, 0x08):  # 2025 pack counts 0-50, FE/FF
        for n in (0xFE, 0xFF):
            compare_blocks(E25, unit_with(E25, bytes([t, n])))
    # every alarm group and N5 may be FE/FF (no list follows)
    compare_blocks(E25, unit_with(E25, bytes([6, 0xFE, 0, 0, 0, 0, 0xFE, 0xFF, 0xFE, 0xFF, 0xFE])))
    compare_blocks(E16, unit_with(E16, bytes([7, 3, 0, 0, 0, 3, 252]) + bytes(4 * 252) + bytes([0, 0, 0])))


# =========================================================================== session units


def ref_upgrade_binary(p: bytes) -> dict[str, Any]:
    """Table B.16 order: APN; user; password; address BYTE[6]; port WORD; manufacturer; HW; FW; URL; limit WORD."""
    out: dict[str, Any] = {}
    pos = 0
    for name in ("apn", "username", "password"):
        i = p.index(b";", pos)
        out[name] = p[pos:i].decode("latin-1")
        pos = i + 1
    out["server_address"] = p[pos : pos + 6]
    assert p[pos + 6] == 0x3B
    out["server_port"] = int.from_bytes(p[pos + 7 : pos + 9], "big")
    assert p[pos + 9] == 0x3B
    pos += 10
    for name in ("manufacturer_id", "hardware_version", "firmware_version"):
        i = p.index(b";", pos)
        out[name] = p[pos:i].decode("latin-1")
        pos = i + 1
    out["url"] = p[pos:-3].decode("latin-1")
    assert p[-3] == 0x3B
    out["connect_timeout"] = int.from_bytes(p[-2:], "big")
    return out


@pytest.mark.parametrize("edition", [E16, E25])
@given(data=st.data())
@FAST
def test_terminal_control_layouts(edition: Edition, data: st.DataObject) -> None:
    """§8: time, command id BYTE, parameters; upgrade in both variants; warning level (+0x04 in 2025)."""
    tc = data.draw(S.terminal_control(edition))
    unit = encode_body(edition, 0x82, 0xFE, tc)
    assert ref_time(unit[:6]) == tc.time.replace(microsecond=0)
    assert unit[6] == int(tc.command_id)
    p = unit[7:]
    if isinstance(tc.params, RemoteUpgrade):
        same(norm(tc.params), ref_upgrade_binary(p), "upgrade")
    elif isinstance(tc.params, RemoteUpgradeText):
        assert p.decode("latin-1").split(";") == [getattr(tc.params, f.name) for f in dataclasses.fields(tc.params)]
    elif isinstance(tc.params, WarningParams):
        lv = norm(tc.params.level)
        assert p[0] == {ABN: 0xFE, INV: 0xFF}.get(lv, lv) and p[1:] == tc.params.info
    else:
        assert p == tc.params
    assert decode_body(edition, 0x82, 0xFE, unit) == tc


def test_warning_level_4_is_2025_only() -> None:
    unit = bytes([25, 1, 1, 0, 0, 0, 6, 4])
    assert decode_body(E25, 0x82, 0xFE, unit).params == WarningParams(AlarmLevel.LEVEL_4)  # type: ignore[union-attr]
    assert decode_body(E16, 0x82, 0xFE, unit).params == WarningParams(4)  # type: ignore[union-attr]
    with pytest.raises(ProtocolError):
        encode_body(E16, 0x82, 0xFE, decode_body(E25, 0x82, 0xFE, unit), options=CodecOptions(strict=True))


@given(ke=S.key_exchange(E25))
@FAST
def test_key_exchange_layout(ke: KeyExchange) -> None:
    """2025 Table 31: key type BYTE, key length WORD, key, valid-from (6), expiry (6); no leading time."""
    unit = encode_body(E25, 0x0B, 0xFE, ke)
    c = Cur(unit)
    assert c.u8() == int(ke.key_type)
    assert c.take(c.u16()) == ke.key
    assert ref_time(c.take(6)) == ke.valid_from.replace(microsecond=0)
    assert ref_time(c.take(6)) == ke.valid_until.replace(microsecond=0)
    assert c.done()


def test_activation_result_codes() -> None:
    """2025 Table B.4: status 01 activated / 02 failed; info 00 success, 01 chip already activated, 02 VIN
    duplicate (rtm_con's 1/2/3 is off by one)."""
    for status, info in ((1, 0), (2, 1), (2, 2)):
        body = decode_body(E25, 0x0A, 0xFE, bytes([status, info]))
        assert isinstance(body, ActivationResult)
        assert (int(body.status), int(body.info)) == (status, info)
    assert ActivationInfo(0).name == "SUCCESS" and ActivationInfo(1).name == "CHIP_ALREADY_ACTIVATED"
    assert ActivationInfo(2).name == "VIN_DUPLICATE"


def test_response_flags_and_encryption_per_edition() -> None:
    """§2.2/§2.3: flags 04-07 and encryption 04/05 exist only in 2025 (2016 keeps them as plain ints)."""
    for flag in (4, 5, 6, 7):
        for edition, named in ((2016, False), (2025, True)):
            fr = wire.build_frame(edition, 0x07, flag, b"LSVAUDIT000000001", 1, b"")
            got = decode_frame(fr).response
            assert isinstance(got, ResponseFlag) is named and int(got) == flag
            assert encode_frame(decode_frame(fr)) == fr
    for enc in (4, 5):
        for edition, named in ((2016, False), (2025, True)):
            fr = wire.build_frame(edition, 0x02, 0xFE, b"LSVAUDIT000000001", enc, b"\1\2\3")
            got = decode_frame(fr).encryption
            assert isinstance(got, Encryption) is named and int(got) == enc


# =========================================================================== framing


def _stream_cases() -> st.SearchStrategy[tuple[list[bytes], bytes, list[int]]]:
    frames = list(VECTORS.values())
    garbage = st.binary(max_size=12)
    return st.permutations(frames).flatmap(
        lambda order: st.tuples(
            st.just(order),
            st.lists(garbage, min_size=len(order) + 1, max_size=len(order) + 1),
            st.lists(st.integers(1, 97), min_size=1, max_size=40),
        ).map(lambda p: (p[0], b"".join(g + f for g, f in zip(p[1], [*p[0], b""], strict=True)), p[2]))
    )


@given(case=_stream_cases())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_framer_finds_every_vector_in_garbage_and_any_chunking(case: tuple[list[bytes], bytes, list[int]]) -> None:
    if not VECTORS:
        pytest.skip("vectors.md not found")
    order, stream, sizes = case
    framer = wire.Framer()
    out: list[bytes] = []
    pos = i = 0
    while pos < len(stream):
        n = sizes[i % len(sizes)]
        out += [f.raw for f in framer.feed(stream[pos : pos + n])]
        pos += n
        i += 1
    # random garbage may (rarely) forge a plausible header; every real frame must still come out, in order
    it = iter(out)
    assert all(any(f == g for g in it) for f in order), "a vector was lost"


def test_framer_bad_bcc_then_good_frame() -> None:
    if not VECTORS:
        pytest.skip("vectors.md not found")
    good = VECTORS["T6"]
    bad = bytearray(good)
    bad[40] ^= 0x55
    framer = wire.Framer()
    got = framer.feed(b"\x00##" + bytes(bad) + good + b"#")
    assert [(f.raw, f.bcc_ok) for f in got] == [(bytes(bad), False), (good, True)]
    assert framer.buffered == 1


def test_framer_output_does_not_depend_on_chunking_after_a_corrupt_length() -> None:
    if not VECTORS:
        pytest.skip("vectors.md not found")
    a, b, c = VECTORS["T2"], VECTORS["T6"], VECTORS["R7"]
    bogus = (a[22] << 8 | a[23]) + len(b) + 5  # A's length field corrupted: now ends 5 bytes into C
    stream = a[:22] + bogus.to_bytes(2, "big") + a[24:] + b + c

    def frames(chunks: list[bytes]) -> list[tuple[bytes, bool]]:
        framer = wire.Framer()
        return [(f.raw, f.bcc_ok) for chunk in chunks for f in framer.feed(chunk)]

    whole = frames([stream])
    assert [raw for raw, ok in whole if ok] == [b, c]
    cut = 24 + bogus + 1
    assert frames([stream[:cut], stream[cut:]]) == whole


def test_strict_list_counts_and_fuel_cell_probe_range() -> None:
    """Strict encoding: §5.9 0x08/0x09 1-250 records, 2025 0x07/0x08 0-50 packs, 0x30 1-253 stacks,
    §5.4 2016 fuel-cell probe temperatures 0-240 raw (-40..200 °C)."""
    strict = CodecOptions(strict=True)
    sub = SubsystemTemperatures(1, (20,))
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [Temperatures(())], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [Temperatures((sub,) * 251)], options=strict)
    encode_info_blocks(E16, [Temperatures((sub,) * 250)], options=strict)
    encode_info_blocks(E25, [Temperatures(())], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E25, [Temperatures((sub,) * 51)], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [CellVoltages(())], options=strict)
    pack = PackVoltages(1, 1.0, 0.0, (3.0,))
    with pytest.raises(ProtocolError):
        encode_info_blocks(E25, [ParallelUnitVoltages((pack,) * 51)], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E25, [FuelCellStacks(())], options=strict)
    fc = FuelCell(1.0, 1.0, 1.0, (200,), 20.0, 1, 1, 1, 1.0, 1, 1)
    encode_info_blocks(E16, [fc], options=strict)
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [dataclasses.replace(fc, probe_temperatures=(201,))], options=strict)
    # not strict: as on the wire
    assert encode_info_blocks(E16, [dataclasses.replace(fc, probe_temperatures=(215,))])[9] == 255


def test_truncated_signature_names_the_part_that_is_missing() -> None:
    """2025 Table 8: type BYTE, R length WORD, R, S length WORD, S. A unit cut after R names S, not R."""
    unit = bytes([25, 1, 1, 0, 0, 0, 0xFF, 2, 0, 2, 0xAA, 0xBB])
    cases = ((unit[:-1], "realtime.signature.r", 24 + 10), (unit, "realtime.signature.s", 24 + 12), (unit + b"\0", "realtime.signature.s", 24 + 12))
    for data, field, offset in cases:
        with pytest.raises(ProtocolError) as err:
            decode_body(E25, 2, 0xFE, data)
        assert (err.value.field, err.value.offset) == (field, offset)


@given(
    edition=st.sampled_from([E16, E25]),
    command=st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0A, 0x0B, 0x80, 0x81, 0x82]),
    flag=st.sampled_from([0xFE, 0x01]),
    head=st.one_of(TIME_RAW, st.just(b"")),
    rest=st.lists(BYTE, max_size=48).map(bytes),
)
@settings(max_examples=300, deadline=None)
def test_random_data_units_fail_only_with_protocol_errors(edition: Edition, command: int, flag: int, head: bytes, rest: bytes) -> None:
    data = head + rest
    try:
        decode_body(edition, command, flag, data)
    except ProtocolError as exc:
        assert exc.offset is not None and 24 <= exc.offset <= 24 + len(data) and exc.field, exc
