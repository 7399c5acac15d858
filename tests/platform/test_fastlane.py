"""The platform's fast lane (sim/platform/fastlane.py) against the full path it stands in for.

Whenever ``scan`` returns facts, the full path must agree: the data unit decodes, the per-report checks
that need no earlier frame (values, sentinel widths, consistency) find nothing, and the facts equal
``checks.report_facts`` of the decoded report. Typical reports must take the fast lane; every
single-byte change of one must either leave it there with the full path's agreement or send it to the
full path. At the server, the stored frames, violations and windows are the same with and without it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import codec, wire
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    Command,
    Edition,
    Encryption,
    Frame,
    RealtimeReport,
    ResponseFlag,
    VehicleLogin,
    VehicleLogin2025,
)
from sim.fleet.lite import LiteVehicle, iccid_for, vin_for
from sim.platform import checks, fastlane
from sim.platform.checks import Limits
from sim.platform.server import PlatformServer, ServerConfig
from tests.protocol import strategies

E16, E25 = Edition.E2016, Edition.E2025
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LIMITS = Limits(report_period=10.0)


def full_path(edition: Edition, data: bytes,
              limits: Limits = LIMITS) -> tuple[RealtimeReport | None, list[Any]]:
    """The decoded report (None: undecodable) and what the stateless report checks find in it."""
    try:
        body = codec.decode_body(edition, int(Command.REALTIME), wire.FLAG_COMMAND, data)
    except ProtocolError:
        return None, []
    assert isinstance(body, RealtimeReport)
    found = checks.check_values(edition, body) + checks.check_consistency(edition, body, limits)
    return body, found


def agree(edition: Edition, data: bytes, limits: Limits = LIMITS) -> bool:
    """Assert the fast lane never claims more than the full path; True when it took the report."""
    facts = fastlane.scan(edition, data, limits)
    if facts is None:
        return False
    report, found = full_path(edition, data, limits)
    assert report is not None, "the fast lane took a data unit the decoder refuses"
    assert found == [], f"the fast lane took a report with violations {found}"
    assert facts == checks.report_facts(report)
    return True


def units(edition: Edition, scenario: str | None, seeds: range, steps: int,
          period: float = 10.0) -> list[bytes]:
    """Data units of light vehicles over ``steps`` periods (drive, park, charge, alarms…)."""
    out = []
    for seed in seeds:
        car = LiteVehicle(vin_for(seed), seed, edition, START, scenario=scenario)
        t = START
        for _ in range(steps):
            car.step(period)
            t += timedelta(seconds=period)
            out.append(car.encode(t))
    return out


@pytest.mark.parametrize("edition", [E16, E25])
@pytest.mark.parametrize("scenario", [None, "alarm-burst"])
def test_typical_reports_take_the_fast_lane(edition: Edition, scenario: str | None) -> None:
    data = units(edition, scenario, range(4), 200)
    taken = sum(agree(edition, d) for d in data)
    assert taken == len(data)


@pytest.mark.parametrize("edition", [E16, E25])
def test_every_single_byte_change_is_taken_only_when_the_full_path_agrees(edition: Edition) -> None:
    """Each byte of a few typical data units set to boundary values (sentinels, 0, just above the
    documented ranges): the fast lane takes some and leaves the rest, never disagreeing."""
    bases = units(edition, None, range(2), 3, period=400.0) + units(edition, "alarm-burst", range(1), 2)
    taken = left = 0
    for base in bases:
        for i in range(len(base)):
            for value in (0x00, 0x01, 0x04, 0x1F, 0x20, 0x64, 0x65, 0xC8, 0xFA, 0xFB, 0xFD, 0xFE, 0xFF):
                if base[i] == value:
                    continue
                data = base[:i] + bytes((value,)) + base[i + 1:]
                if agree(edition, data):
                    taken += 1
                else:
                    left += 1
    assert taken > 1000 and left > 1000  # both lanes exercised


#: WORD and DWORD values at the edges of the documented ranges, sentinels and narrower sentinels
_WORDS = (0x0000, 0x0001, 0x00FE, 0x00FF, 0x0898, 0x0899, 0x1388, 0x1389, 0x2710, 0x2711, 0x4E20, 0x4E21,
          0x7530, 0x7531, 0xEA60, 0xEA61, 0xFFFB, 0xFFFC, 0xFFFE, 0xFFFF)
_DWORDS = (0x000000FE, 0x0000FFFF, 0x00989680, 0x0098967F, 0x055D4A80, 0x055D4A81, 0x0ABA9500, 0x0ABA9501,
           0x00061A80, 0x00061A81, 0xFFFFFFFE, 0xFFFFFFFF)


@pytest.mark.parametrize("edition", [E16, E25])
def test_every_word_and_dword_change_is_taken_only_when_the_full_path_agrees(edition: Edition) -> None:
    """WORD and DWORD edge values written at every offset of typical data units (currents with narrow
    sentinels, coordinates just outside ±90°/±180°, mileage above 999,999.9 km…)."""
    bases = units(edition, None, range(2), 2, period=400.0)
    taken = left = 0
    for base in bases:
        for i in range(6, len(base) - 1):
            for size, values in ((2, _WORDS), (4, _DWORDS)):
                for value in values:
                    data = base[:i] + value.to_bytes(size, "big") + base[i + size:]
                    if len(data) != len(base) or data == base:
                        continue
                    if agree(edition, data):
                        taken += 1
                    else:
                        left += 1
    assert taken > 500 and left > 500


@pytest.mark.parametrize("edition", [E16, E25])
@pytest.mark.parametrize(("cells", "probes"), [(1, 1), (200, 200), (1, 200), (200, 1), (97, 33)])
def test_pack_sizes(edition: Edition, cells: int, probes: int) -> None:
    for seed in range(3):
        car = LiteVehicle(vin_for(seed), seed, edition, START, n_cells=cells, n_probes=probes)
        car.step(60.0)
        assert agree(edition, car.encode(START + timedelta(seconds=60)))


@pytest.mark.parametrize("cells", [0, 1, 200, 201, 255])
def test_2016_cell_records_over_200_cells_go_to_the_full_path(cells: int) -> None:
    """One 2016 0x08 record of ``cells`` cells at 3.6 V, its total matching: the strict encoder splits
    records over 200 cells, so such a record is a violation the fast lane must leave to the full path."""
    head = bytes((1,)) + round(cells * 36).to_bytes(2, "big") + (10000).to_bytes(2, "big")
    record = head + cells.to_bytes(2, "big") + (1).to_bytes(2, "big") + bytes((cells,))
    data = bytes((26, 3, 1, 8, 0, 0)) + b"\x08\x01" + record + (3600).to_bytes(2, "big") * cells
    assert agree(E16, data) == (1 <= cells <= 200)


@pytest.mark.parametrize(("start", "cell", "taken"), [(1, 3600, True), (2, 3600, True), (2, 60000, True),
                                                     (2, 60001, False), (2, 0xFFFE, False)])
def test_cell_values_when_the_sum_rule_does_not_apply(start: int, cell: int, taken: bool) -> None:
    """A record that starts at cell 2 is not summed: the range of each cell still counts."""
    cells = (3600,) * 9 + (cell,)
    record = bytes((1,)) + (360).to_bytes(2, "big") + (10000).to_bytes(2, "big") + (10).to_bytes(2, "big") \
        + start.to_bytes(2, "big") + bytes((10,)) + b"".join(c.to_bytes(2, "big") for c in cells)
    assert agree(E16, bytes((26, 3, 1, 8, 0, 0)) + b"\x08\x01" + record) == taken


@pytest.mark.parametrize(("level", "pairs", "taken"), [
    (3, [(1, 3)], True), (4, [(23, 4)], True), (4, [(1, 4)], False), (4, [(23, 4), (2, 1)], True),
    (3, [(1, 2)], False), (2, [], True), (4, [], False), (5, [], False), (0xFE, [(1, 2)], True),
    (3, [(32, 3)], False), (3, [(1, 5)], False)])
def test_2025_alarm_level_rules(level: int, pairs: list[tuple[int, int]], taken: bool) -> None:
    """2025 §4.3: the N5 list's highest level is the maximum level; level 4 comes with bit 23."""
    flags = (1 << 23) | 1
    alarm = bytes((level,)) + flags.to_bytes(4, "big") + b"\x00\x00\x00\x00" + bytes((len(pairs),)) \
        + b"".join(bytes(p) for p in pairs)
    assert agree(E25, bytes((26, 3, 1, 8, 0, 0)) + b"\x06" + alarm) == taken


@pytest.mark.parametrize(("gear", "speed", "state", "taken"), [
    (0x0F, 0, 1, True), (0x0F, 1, 1, False), (0x8F, 1, 1, True), (0x0E, 1, 1, True),
    (0x0E, 50, 2, True), (0x0E, 51, 2, False), (0x0F, 0xFFFE, 2, True)])
def test_2025_speed_rules(gear: int, speed: int, state: int, taken: bool) -> None:
    """Speed in P (unless the gear is flagged invalid) and a stopped vehicle above 5 km/h."""
    vehicle = bytes((state, 3, 1)) + speed.to_bytes(2, "big") + (1000).to_bytes(4, "big") \
        + (3500).to_bytes(2, "big") + (30000).to_bytes(2, "big") + bytes((50, 1, gear)) \
        + (100).to_bytes(2, "big")
    assert agree(E25, bytes((26, 3, 1, 8, 0, 0)) + b"\x01" + vehicle) == taken


@pytest.mark.parametrize(("edition", "block", "taken"), [
    (E16, b"\x09\xfe", False), (E16, b"\x09\x00", False), (E25, b"\x08\xfe", True),
    (E25, b"\x08\x00", True), (E25, b"\x07\xff", True), (E16, b"\x08\xfe", False),
    (E25, b"\x02\xfe", False), (E16, b"\x02\x00", False)])
def test_sentinel_and_empty_counts(edition: Edition, block: bytes, taken: bool) -> None:
    """Lists whose count is a sentinel or zero: what strict encoding allows per edition and block."""
    assert agree(edition, bytes((26, 3, 1, 8, 0, 0)) + block) == taken


@pytest.mark.parametrize("edition", [E16, E25])
def test_truncated_and_extended_units_go_to_the_full_path_or_agree(edition: Edition) -> None:
    base = units(edition, None, range(1), 1)[0]
    taken = [n for n in range(len(base)) if agree(edition, base[:n])]
    assert taken[0] == 6 and len(taken) <= 8  # only prefixes that end between blocks are whole reports
    other = units(edition, None, range(5, 6), 1, period=900.0)[0]  # another vehicle's blocks
    for extra in (b"\x00", b"\x01", b"\x80\x00\x00", b"\xff", base[6:], other[6:]):
        agree(edition, base + extra)  # a second vehicle block, a custom block, a signature…
        agree(edition, other + extra)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from([E16, E25]).flatmap(lambda e: st.tuples(st.just(e), strategies.realtime(e))))
def test_generated_reports(case: tuple[Edition, RealtimeReport]) -> None:
    """Reports of every shape the codec can encode, most with some value out of its strict range."""
    edition, report = case
    try:
        data = codec.encode_body(edition, int(Command.REALTIME), wire.FLAG_COMMAND, report)
    except ProtocolError:
        return
    agree(edition, data)
    agree(edition, data, Limits(voltage_sum_tolerance=0.001, off_speed_kmh=0.0))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([E16, E25]), st.integers(0, 40), st.binary(min_size=1, max_size=6),
       st.integers(0, 400))
def test_random_splices(edition: Edition, seed: int, patch: bytes, at: int) -> None:
    base = units(edition, None, range(seed, seed + 1), 1, period=float(1 + seed * 37))[0]
    at = at % len(base)
    agree(edition, base[:at] + patch + base[at + len(patch):])


def test_voltage_sum_at_the_tolerance_edge_is_left_to_the_full_path() -> None:
    base = units(E16, None, range(1), 1)[0]
    report, _ = full_path(E16, base)
    assert report is not None
    cells = report.blocks[-2].subsystems[0].cell_voltages  # type: ignore[attr-defined]
    total = report.blocks[-2].subsystems[0].voltage  # type: ignore[attr-defined]
    gap = abs(sum(cells) - total)
    for tolerance in (gap - 0.05, gap - 1e-9, gap, gap + 1e-9, gap + 0.05):
        limits = Limits(voltage_sum_tolerance=tolerance)
        took = agree(E16, base, limits)
        assert took == (tolerance > gap + 1e-6)


# --------------------------------------------------------------------------- the server, both ways


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, key: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _frame(edition: Edition, command: int, vin: str, body: Any) -> bytes:
    return codec.encode_frame(Frame(edition, command, ResponseFlag.COMMAND, vin, Encryption.NONE, body))


def _traffic(edition: Edition) -> list[tuple[int, bytes]]:
    """(vehicle, frame) in arrival order: logins, then reports at 1 s with alarm bursts, a duplicate,
    a gap, reissues, an undecodable unit and a bad value (connection index = vehicle)."""
    out: list[tuple[int, bytes]] = []
    cars = [LiteVehicle(vin_for(i, "LTBXFST"), i, edition, START, scenario="alarm-burst" if i % 2 else None)
            for i in range(4)]
    for i, car in enumerate(cars):
        if edition is E25:
            login: Any = VehicleLogin2025(START, 1, iccid_for(i), (1,), ("LTBXPACK".ljust(24, "0"),))
        else:
            login = VehicleLogin(START, 1, iccid_for(i), 1, 0, ())
        out.append((i, _frame(edition, Command.VEHICLE_LOGIN, car.vin, login)))
    t = START
    for k in range(240):
        t += timedelta(seconds=1)
        for i, car in enumerate(cars):
            car.step(1.0)
            if 100 <= k < 112 and i < 2:
                continue  # a gap in vehicles 0 and 1's reports
            data = car.encode(t)
            command = Command.REISSUE if k % 50 == 7 else Command.REALTIME
            frame = wire.build_frame(int(edition), int(command), wire.FLAG_COMMAND,
                                     car.vin.encode().ljust(17, b"\0"), int(Encryption.NONE), data)
            out.append((i, frame))
            if k == 30 and i == 1:
                out.append((i, frame))  # a duplicate realtime
            if k == 60 and i == 2:  # a vehicle block with a speed out of range (a value violation)
                bad = bytearray(data)
                bad[10:12] = (0xFFF0).to_bytes(2, "big")
                out.append((i, wire.build_frame(int(edition), int(command), wire.FLAG_COMMAND,
                                                car.vin.encode().ljust(17, b"\0"), int(Encryption.NONE),
                                                bytes(bad))))
            if k == 90 and i == 3:  # an unknown info type: undecodable
                out.append((i, wire.build_frame(int(edition), int(command), wire.FLAG_COMMAND,
                                                car.vin.encode().ljust(17, b"\0"), int(Encryption.NONE),
                                                data + b"\x7a")))
    return out


def _run_server(db: Path, fast: bool, traffic: list[tuple[int, bytes]], store_json: bool) -> PlatformServer:
    clock = [START]

    async def go() -> PlatformServer:
        server = PlatformServer(ServerConfig(db_path=str(db), reply_realtime=True, store_json=store_json,
                                             fast_lane=fast, limits=Limits(report_period=1.0)),
                                wallclock=lambda: clock[0])
        conns = {i: server._opened(_Transport()) for i, _ in traffic}  # type: ignore[arg-type]
        for i, frame in traffic:
            server._received(conns[i], frame)
            clock[0] += timedelta(milliseconds=250)
        server._group_commit()
        for conn in list(server.conns):
            server._lost(conn, None)
        server.db.close()
        return server
    return asyncio.run(go())


def _rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(db)
    try:
        queries = {
            "frames": "SELECT id, conn, received_at, vin, edition, command, response, collected, alarm_level,"
                      " raw, reply, decodable, decoded FROM frames ORDER BY id",
            "violations": "SELECT frame_id, vin, kind, reason FROM violations ORDER BY id",
            "windows": "SELECT vin, kind, frame_id, at, start_at, end_at, status, reason FROM windows"
                       " ORDER BY id",
        }
        return {name: con.execute(sql).fetchall() for name, sql in queries.items()}
    finally:
        con.close()


@pytest.mark.parametrize("edition", [E16, E25])
@pytest.mark.parametrize("store_json", [False, True])
def test_server_stores_the_same_with_and_without_the_fast_lane(tmp_path: Path, edition: Edition,
                                                               store_json: bool) -> None:
    traffic = _traffic(edition)
    _run_server(tmp_path / "full.db", False, traffic, store_json)
    server = _run_server(tmp_path / "fast.db", True, traffic, store_json)
    full, fast = _rows(tmp_path / "full.db"), _rows(tmp_path / "fast.db")
    assert fast == full
    kinds = {v[2] for v in full["violations"]}
    assert {"duplicate_realtime", "out_of_range", "bad_length", "report_period"} <= kinds, kinds
    assert full["windows"], "the alarm bursts open windows"
    assert server.fast_lane_reports > 0.9 * sum(1 for _, f in traffic if f[2] in (2, 3))


def test_serve_option_turns_the_fast_lane_off(tmp_path: Path) -> None:
    from agent.cli import build_parser
    from sim.platform.cli import serve_config

    base = ["platform", "serve", "--db", str(tmp_path / "p.db"), "--listen", "127.0.0.1:0"]
    assert serve_config(build_parser("platform").parse_args(base)).fast_lane is True
    config = serve_config(build_parser("platform").parse_args([*base, "--no-fast-lane", "--no-json"]))
    assert config.fast_lane is False and config.store_json is False and config.port == 0
