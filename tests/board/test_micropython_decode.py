"""The lite firmware's signal decoding (board/micropython/tbox_lite/signals.py) against the CPython
sampler, on random payloads: Motorola and Intel byte order, signed signals, 29-bit ids, scale/offset,
SNA codes, value maps, expressions and multiplexed pages. Run in CPython (many cases) and under the
real MicroPython interpreter (the same cases' snapshots, printed as JSON)."""

from __future__ import annotations

import enum
import json
import random
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from agent.boardgen import EXTREME_KEYS, MOTOR_KEYS, VEHICLE_KEYS, compile_table, mapping_checks
from agent.canbus.mapping import CompiledMapping, load_mapping, loads_mapping
from agent.canbus.sampler import Sampler
from agent.errors import MappingError
from agent.protocol.model import Special
from tests.micropython_support import node_or_skip, run_micropython

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "board" / "micropython"
VENDOR = ROOT / "tests" / "canbus" / "data" / "vendor_ev.toml"
NOW_MS = 50  # the firmware samples on a ms tick counter
NOW = NOW_MS / 1000  # the sampler on seconds

#: extremes from multiplexed pages of tbox_ev.dbc (cell voltages and probes), signed checks via expressions
MUX_MAPPING = """
dbc = "tbox_ev.dbc"
[vehicle]
total_voltage = { signal = "BMS_PackVoltage" }
total_current = { signal = "BMS_PackCurrent" }
gear = { signal = "VCU_Gear", map = { P = "park", R = "reverse", N = "neutral", D = "drive" } }
[extremes]
max_cell_voltage = { signal = "BMS_Cell001_V" }
min_cell_voltage = { signal = "BMS_Cell095_V" }
max_temperature = { signal = "BMS_Temp01" }
min_temperature = { signal = "BMS_Temp17" }
max_cell_voltage_index = { signal = "BMS_MaxCellVoltageIdx" }
[faults]
cell_overvoltage = 'BMS_Cell004_V > 4.2 and BMS_Temp09 >= 20'
insulation = 'BMS_InsulationRes < 500 or BMS_Cell050_V <= 3.0'
"""


def _vendor() -> CompiledMapping:
    text = VENDOR.read_text()
    text = text[: text.index("[checks.")]  # random payloads cannot pass its CRC (checks: test below)
    return loads_mapping(text, path=VENDOR)


def _mux() -> CompiledMapping:
    return loads_mapping(MUX_MAPPING, path=ROOT / "dbc" / "mux_test.toml")


def _module(mapping: CompiledMapping, name: str, checks: dict[str, Any] | None = None) -> types.ModuleType:
    """The firmware table of ``mapping`` as a module; no counter/CRC checks unless ``checks`` says."""
    module = types.ModuleType(name)
    exec(compile(compile_table(mapping, checks=checks or {}), name, "exec"), module.__dict__)
    return module


def _cases(mapping: CompiledMapping, count: int, seed: int) -> list[list[tuple[int, str]]]:
    """Random frame sets: every mapped CAN id (each mux page of a multiplexed one) with random bytes."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        frames = []
        for g in mapping.groups:
            data = bytearray(rng.randbytes(8))
            if g.mux is not None:
                message = mapping.database.get_message_by_name(g.message)
                mux_sig = next(s for s in message.signals if s.is_multiplexer and not s.multiplexer_ids)
                _insert(data, mux_sig, g.mux)
            if rng.random() < 0.1:  # now and then a short frame
                data = data[: rng.randint(1, 7)]
            if rng.random() < 0.05:  # or an SNA value everywhere
                data = bytearray(b"\xff" * len(data))
            frames.append((g.frame_id, bytes(data).hex()))
        rng.shuffle(frames)
        cases.append(frames)
    return cases


def _insert(data: bytearray, signal: Any, value: int) -> None:
    """Write the raw ``value`` of ``signal`` into ``data`` (DBC bit numbering, either byte order)."""
    pos = signal.start
    big = signal.byte_order != "little_endian"
    bits = [(value >> (signal.length - 1 - i)) & 1 for i in range(signal.length)]  # msb first
    if not big:
        bits.reverse()  # Intel: lsb at the start bit, upwards
    for bit in bits:
        byte, offset = divmod(pos, 8)
        data[byte] = (data[byte] & ~(1 << offset)) | (bit << offset)
        if big:
            pos = pos + 15 if offset == 0 else pos - 1
        else:
            pos += 1


def _plain(value: Any) -> Any:
    if value is Special.INVALID or value is None:
        return None
    if value is Special.ABNORMAL:
        return 0xFE
    if isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return int(value.value)
    return value


def _reference(mapping: CompiledMapping, frames: list[tuple[int, str]]) -> dict[str, Any]:
    cache = mapping.new_cache()
    for key, data in frames:
        cache.put(key, bytes.fromhex(data), 0.0)
    s = Sampler(mapping, cache).sample(NOW)
    from agent.report.snapshot import FAULT_FIELDS

    return {
        "vehicle": {k: _plain(v) for k, v in s.vehicle.items() if k in VEHICLE_KEYS},
        "motors": [
            [m.number, {k: _plain(v) for k, v in m.values.items() if k in MOTOR_KEYS}] for m in s.motors
        ],
        "extremes": {k: _plain(v) for k, v in s.extremes.items() if k in EXTREME_KEYS},
        "faults": sorted(FAULT_FIELDS[k] for k, v in s.faults.items() if v is True),
        "codes": {k: list(v) for k, v in s.fault_codes.items() if k in ("ress", "motor")},
    }


def _normal(snap: dict[str, Any]) -> dict[str, Any]:
    """The firmware's snapshot in the reference's shape (tuples as lists, fault bits only)."""
    return {
        "vehicle": dict(snap["vehicle"]),
        "motors": [[n, dict(f)] for n, f in snap["motors"]],
        "extremes": dict(snap["extremes"]),
        "faults": sorted(bit for bit, _level in snap["faults"]),
        "codes": {k: list(v) for k, v in snap["codes"].items()},
    }


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if not isinstance(got, dict) or got.keys() != want.keys():
            return False
        return all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(got, bool) or isinstance(want, bool) or got is None or want is None:
            return False
        return abs(got - want) <= 1e-9 * max(1.0, abs(want))
    return bool(got == want) and type(got) is type(want)


def _firmware_cpython() -> Any:
    sys.path.insert(0, str(BOARD))
    try:
        from tbox_lite.signals import Signals
    finally:
        sys.path.remove(str(BOARD))
    return Signals


@pytest.mark.parametrize("which", ["vendor", "mux", "tbox_ev"])
def test_firmware_decode_matches_the_sampler_in_cpython(which: str) -> None:
    if which == "tbox_ev":
        text = (ROOT / "dbc" / "tbox_ev.toml").read_text()
        mapping = loads_mapping(text[: text.index("[checks.")], path=ROOT / "dbc" / "tbox_ev.toml")
    else:
        mapping = _vendor() if which == "vendor" else _mux()
    signals_cls = _firmware_cpython()
    table = _module(mapping, "tbox_table")
    for frames in _cases(mapping, 150, seed=7):
        signals = signals_cls(table)
        for key, data in frames:
            signals.put(key, bytes.fromhex(data), 0)
        got = _normal(signals.sample(NOW_MS))
        want = _reference(mapping, frames)
        assert _same(got, want), (frames, got, want)


def test_stale_frames_are_invalid_and_unknown_ids_counted() -> None:
    mapping = _mux()
    signals = _firmware_cpython()(_module(mapping, "tbox_table"))
    frames = _cases(mapping, 1, seed=3)[0]
    for key, data in frames:
        signals.put(key, bytes.fromhex(data), 0)
    signals.put(0x7FF, b"\x00" * 8, 0)
    assert signals.unknown == 1
    assert signals.sample(50)["vehicle"]["total_voltage"] is not None
    late = signals.sample(100_000)
    assert all(v is None for v in late["vehicle"].values())
    assert all(v is None for v in late["extremes"].values())


def test_compile_rejects_a_bad_edition_and_names_it() -> None:
    with pytest.raises(MappingError, match="edition"):
        compile_table(load_mapping(ROOT / "dbc" / "tbox_ev.toml"), 2019)


def test_board_compile_cli_writes_a_loadable_table(tmp_path: Path) -> None:
    from agent.cli import main

    out = tmp_path / "tbox_table.py"
    rc = main(["board", "compile", "--mapping", str(ROOT / "dbc" / "tbox_ev.toml"), "--out", str(out)])
    assert rc == 0
    module: dict[str, Any] = {}
    exec(compile(out.read_text(), str(out), "exec"), module)
    assert module["FORMAT"] == 1 and module["EDITION"] == 2016
    assert set(module["ROUTES"]) >= {0x100, 0x120}  # VCU_VehicleStatus, BMS_PackStatus
    assert main(["board", "compile", "--mapping", str(tmp_path / "missing.toml"), "--out", str(out)]) == 1
    assert main(["board", "compile", "--mapping", str(ROOT / "dbc" / "tbox_ev.toml"),
                 "--out", str(tmp_path / "no" / "dir" / "t.py")]) == 1


@pytest.mark.micropython
def test_firmware_decode_matches_the_sampler_under_micropython(tmp_path: Path) -> None:
    node_or_skip()
    stage = tmp_path / "board"
    (stage / "tbox_lite").mkdir(parents=True)
    for name in ("__init__.py", "signals.py"):
        shutil.copy(BOARD / "tbox_lite" / name, stage / "tbox_lite" / name)
    files = ["tbox_lite/__init__.py", "tbox_lite/signals.py"]
    expected = {}
    for which, mapping in (("vendor", _vendor()), ("mux", _mux())):
        (stage / f"table_{which}.py").write_text(compile_table(mapping, checks={}))
        cases = _cases(mapping, 40, seed=11)
        (stage / f"cases_{which}.json").write_text(json.dumps(cases))
        files += [f"table_{which}.py", f"cases_{which}.json"]
        expected[which] = [_reference(mapping, frames) for frames in cases]
    script = tmp_path / "decode.py"
    script.write_text(
        "import json, sys\n"
        "from tbox_lite.signals import Signals\n"
        "print('IMPL', sys.implementation.name)\n"
        "for which in ('vendor', 'mux'):\n"
        "    table = __import__('table_' + which)\n"
        "    with open('/cases_' + which + '.json') as f:\n"
        "        cases = json.load(f)\n"
        "    for frames in cases:\n"
        "        s = Signals(table)\n"
        "        for key, data in frames:\n"
        "            s.put(key, bytes.fromhex(data), 0)\n"
        "        print('SNAP', which, json.dumps(s.sample(50)))\n"
    )
    result = run_micropython(script, stage, files)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPL micropython" in result.stdout
    got: dict[str, list[Any]] = {"vendor": [], "mux": []}
    for line in result.stdout.splitlines():
        if line.startswith("SNAP "):
            _, which, text = line.split(" ", 2)
            got[which].append(_normal(json.loads(text)))
    for which in ("vendor", "mux"):
        assert len(got[which]) == len(expected[which])
        for g, w in zip(got[which], expected[which], strict=True):
            assert _same(g, w), (which, g, w)


class _MachineBus:
    """machine.CAN as the firmware uses it: set_filters, recv() -> (id, data, flags, errors) | None."""

    def __init__(self, messages: list[tuple[int, bytes, int]], filters_ok: bool = True) -> None:
        self.messages = messages
        self.filters: list[Any] = []
        self.filters_ok = filters_ok

    def set_filters(self, filters: Any) -> None:
        if filters is not None and not self.filters_ok:
            raise ValueError("not enough filter banks")
        self.filters.append(filters)

    def recv(self) -> tuple[int, memoryview, int, int] | None:
        if not self.messages:
            return None
        ident, data, flags = self.messages.pop(0)
        return ident, memoryview(data), flags, 0


class _PybBus:
    """pyb.CAN as the firmware uses it: setfilter banks, any(0), recv(0) -> (id, ext, rtr, fmi, data)."""

    LIST16 = 1

    def __init__(self, messages: list[tuple[int, bool, bytes]]) -> None:
        self.messages = messages
        self.banks: list[tuple[int, int, int, list[int]]] = []

    def setfilter(self, bank: int, mode: int, fifo: int, ids: list[int]) -> None:
        self.banks.append((bank, mode, fifo, ids))

    def any(self, fifo: int) -> bool:
        return bool(self.messages)

    def recv(self, fifo: int, timeout: int = 5000) -> tuple[int, bool, bool, int, bytes]:
        ident, extended, data = self.messages.pop(0)
        return ident, extended, False, 0, data


def test_can_adapters_filter_and_key_the_frames() -> None:
    sys.path.insert(0, str(BOARD))
    try:
        from tbox_lite.can_io import MachineCan, PybCan
    finally:
        sys.path.remove(str(BOARD))
    ids = [0x100, 0x120, 0x18FF0001 | 0x80000000]
    bus = _MachineBus([(0x100, b"\x01\x02", 0), (0x18FF0001, b"\x03", 2)])
    can = MachineCan(bus, lambda: 1234, ids)
    assert bus.filters == [[(0x100, 0x7FF, 0), (0x120, 0x7FF, 0), (0x18FF0001, 0x1FFFFFFF, 2)]]
    assert can.recv() == (0x100, b"\x01\x02", 1234)
    assert can.recv() == (0x18FF0001 | 0x80000000, b"\x03", 1234)
    assert can.recv() is None
    few = _MachineBus([], filters_ok=False)
    MachineCan(few, lambda: 0, ids)
    assert few.filters == [None]  # too many ids for the controller: receive all, the table drops the rest
    pyb = _PybBus([(0x120, False, b"\xaa"), (0x1FFFFFF, True, b"\xbb")])
    can2 = PybCan(pyb, lambda: 7, [0x100, 0x120, 0x130, 0x140, 0x150])
    assert pyb.banks == [(0, 1, 0, [0x100, 0x120, 0x130, 0x140]), (1, 1, 0, [0x150] * 4)]
    assert can2.recv() == (0x120, b"\xaa", 7)
    assert can2.recv() == (0x1FFFFFF | 0x80000000, b"\xbb", 7)
    assert can2.recv() is None


def test_a_frame_older_than_a_minute_stays_invalid_across_the_ticks_wrap() -> None:
    mapping = _mux()
    period = 1 << 30  # time.ticks_ms wraps here

    def ticks_diff(a: int, b: int) -> int:
        return ((a - b + period // 2) % period) - period // 2

    signals = _firmware_cpython()(_module(mapping, "tbox_table"), ticks_diff)
    for key, data in _cases(mapping, 1, seed=3)[0]:
        signals.put(key, bytes.fromhex(data), period - 10)
    assert signals.sample(40)["vehicle"]["total_voltage"] is not None  # 50 ms old across the wrap
    assert signals.sample(90_000)["vehicle"]["total_voltage"] is None  # dead after a minute
    assert signals.sample(period - 5)["vehicle"]["total_voltage"] is None  # a whole period later: still dead


class _FailingRing:
    """A flash ring on a full or failing file system."""

    capacity = 247

    def __len__(self) -> int:
        return 0

    def push(self, record: bytes) -> None:
        raise OSError(28, "no space left")

    def peek(self) -> bytes | None:
        raise OSError(5, "I/O error")

    def pop(self) -> None:
        raise OSError(5, "I/O error")


class _DownLink:
    def open(self) -> bool:
        return False

    def write(self, data: bytes) -> bool:
        return False

    def read(self) -> bytes:
        raise OSError("down")

    def close(self) -> None:
        pass


def test_a_failing_flash_never_stops_the_terminal(tmp_path: Path) -> None:
    sys.path.insert(0, str(BOARD))
    try:
        from tbox_lite.terminal import Terminal
    finally:
        sys.path.remove(str(BOARD))
    clock = {"t": 1_735_689_600}

    class _NoCan:
        def recv(self) -> None:
            return None

    term = Terminal(_module(_mux(), "tbox_table"), _NoCan(), _DownLink(), _FailingRing(),
                    lambda: clock["t"], lambda: (clock["t"] - 1_735_689_600) * 1000,
                    b"LTBXLTE0000000004", b"", {"period_s": 1, "serial_path": str(tmp_path / "s.txt")})
    for _ in range(5):
        clock["t"] += 1
        term.poll()
    assert term.store_errors == 4 and term.stored == 0  # every record (from the 2nd second) counted


def test_a_stale_gnss_fix_is_sent_with_the_invalid_bit(tmp_path: Path) -> None:
    sys.path.insert(0, str(BOARD))
    try:
        from tbox_lite.terminal import Terminal
    finally:
        sys.path.remove(str(BOARD))
    from agent.protocol.codec import decode_body
    from agent.protocol.model import Command, Edition, Location, LocationStatus

    clock = {"t": 1_735_689_600}

    class _NoCan:
        def recv(self) -> None:
            return None

    class _Ring:
        capacity = 247

        def __init__(self) -> None:
            self.records: list[bytes] = []

        def __len__(self) -> int:
            return 0

        def push(self, record: bytes) -> None:
            self.records.append(record)

    ring = _Ring()
    term = Terminal(_module(_mux(), "tbox_table"), _NoCan(), _DownLink(), ring,
                    lambda: clock["t"], lambda: (clock["t"] - 1_735_689_600) * 1000,
                    b"LTBXLTE0000000004", b"", {"period_s": 1, "serial_path": str(tmp_path / "s.txt")})
    term.set_position(-70.25, -33.5)
    for _ in range(14):
        clock["t"] += 1
        term.poll()
    locations = []
    for record in ring.records:
        body = decode_body(Edition.E2016, Command.REALTIME, 0xFE, record)
        locations.append(next(b for b in body.blocks if isinstance(b, Location)))
    assert len(locations) == 13
    # records at seconds 2..14 after the fix; max age 10 s: ages 2..10 valid, 11..14 invalid
    fresh, stale = locations[:9], locations[9:]
    assert [loc.status for loc in fresh] == [LocationStatus.WEST | LocationStatus.SOUTH] * 9, fresh
    assert all(loc.status & LocationStatus.INVALID_FIX for loc in stale)
    assert all(abs(loc.longitude + 70.25) < 1e-6 and abs(loc.latitude + 33.5) < 1e-6 for loc in locations)


@pytest.mark.parametrize("scenario", ["bad-crc", "bad-counter", "wrong-dlc"])
def test_counter_and_crc_checks_match_the_sampler(scenario: str) -> None:
    """Simulator traffic with broken frames: the firmware's checks invalidate exactly what the agent's do."""
    from datetime import UTC, datetime

    from sim.run import simulate

    mapping = load_mapping(ROOT / "dbc" / "tbox_ev.toml")
    table = _module(mapping, "tbox_table", mapping_checks(mapping))
    assert table.CHECKS, "the tbox_ev mapping declares CRC + counter checks"
    signals = _firmware_cpython()(table)
    cache = mapping.new_cache()
    sampler = Sampler(mapping, cache)
    start = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    step = 0.05
    next_sample = step
    invalid = 0
    for m in simulate(None, "wltc3", 4, 9.0, scenario, start_utc=datetime(2025, 1, 1, tzinfo=UTC),
                      fault_start_s=2.0):
        t = m.timestamp - start
        while t >= next_sample:
            now = start + next_sample
            want = _reference_sample(sampler, now)
            got = _normal(signals.sample(round(next_sample * 1000)))
            assert _same(got, want), (scenario, next_sample, got, want)
            if next_sample >= 1.0:  # every frame has arrived by then: an invalid field is the fault's
                invalid += sum(v is None for v in want["vehicle"].values())
                invalid += sum(v is None for _, values in want["motors"] for v in values.values())
            next_sample = round(next_sample + step, 6)
        key = m.arbitration_id | (1 << 31 if m.is_extended_id else 0)
        cache.put(key, bytes(m.data), m.timestamp)
        if key in table.ROUTES:
            signals.put(key, bytes(m.data), round(t * 1000))
    assert invalid > 0  # the scenario did invalidate fields, in both
    assert any(c.get("check") for c in sampler.counters.values()), sampler.counters
    assert signals.check_failures > 0


def _reference_sample(sampler: Sampler, now: float) -> dict[str, Any]:
    from agent.report.snapshot import FAULT_FIELDS

    s = sampler.sample(now)
    return {
        "vehicle": {k: _plain(v) for k, v in s.vehicle.items() if k in VEHICLE_KEYS},
        "motors": [
            [m.number, {k: _plain(v) for k, v in m.values.items() if k in MOTOR_KEYS}] for m in s.motors
        ],
        "extremes": {k: _plain(v) for k, v in s.extremes.items() if k in EXTREME_KEYS},
        "faults": sorted(FAULT_FIELDS[k] for k, v in s.faults.items() if v is True),
        "codes": {k: list(v) for k, v in s.fault_codes.items() if k in ("ress", "motor")},
    }


def test_compile_refuses_a_message_read_whole_and_by_page() -> None:
    text = (
        'dbc = "tbox_ev.dbc"\n[extremes]\nmax_cell_voltage = { signal = "BMS_Cell001_V" }\n'
        'max_cell_voltage_index = { signal = "BMS_CellVoltGroup" }\n'
    )
    mapping = loads_mapping(text, path=ROOT / "dbc" / "page_test.toml")
    with pytest.raises(MappingError, match=r"BMS_CellVoltages.*mux page"):
        compile_table(mapping, checks={})
