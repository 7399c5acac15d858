"""Each violation kind, provoked over loopback by a crafted frame sequence."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agent.protocol import wire
from agent.protocol.model import Command, ResponseFlag, VehicleLogout
from agent.protocol.session import MemorySerialStore, beijing_date
from sim.platform.cli import conformance_summary
from sim.platform.db import FrameRow, PlatformDB
from sim.platform.server import PlatformServer
from tests.platform.support import (
    VIN,
    Client,
    ago,
    frame_bytes,
    login_bytes,
    now_utc,
    report,
    run,
    settle,
    start,
)


def kinds(server: PlatformServer) -> list[str]:
    server.db.commit()
    return [kind for _f, _v, kind, _r in server.db.violations()]


async def _session(tmp_path: Path, frames: list[bytes], *, login: bool = True, **kw: object) -> list[str]:
    server = await start(tmp_path, **kw)
    try:
        c = Client(server.port)
        if login:
            await c.login()
        else:
            await c.connect()
        for data in frames:
            await c.raw(data)
        await c.pump(0.3)
        await c.close()
        await settle(server)
        return kinds(server)
    finally:
        await server.stop()


def test_bad_bcc_is_recorded_and_answered_with_an_error(tmp_path: Path) -> None:
    data = bytearray(frame_bytes(Command.REALTIME, report(now_utc())))
    data[-1] ^= 0xFF
    assert run(_session(tmp_path, [bytes(data)])) == ["bad_bcc"]
    rows = [r for r in _rows(tmp_path) if r.command == Command.REALTIME]
    assert rows[0].reply is not None and rows[0].reply[6:8] == f"{ResponseFlag.ERROR:02X}"


def test_data_before_login(tmp_path: Path) -> None:
    assert run(_session(tmp_path, [frame_bytes(Command.REALTIME, report(now_utc()))], login=False)) \
        == ["before_login"]


def test_out_of_range_values(tmp_path: Path) -> None:
    found = run(_session(tmp_path, [frame_bytes(Command.REALTIME, report(now_utc(), soc=120)),
                                    frame_bytes(Command.REALTIME, report(ago(1), speed=250.0))]))
    assert found.count("out_of_range") == 2
    reasons = [r for _f, _v, _k, r in _db(tmp_path).violations()]
    assert any("soc" in r for r in reasons) and any("speed" in r for r in reasons)


def test_time_skew_and_future_time(tmp_path: Path) -> None:
    found = run(_session(tmp_path, [frame_bytes(Command.REALTIME, report(ago(120))),
                                    frame_bytes(Command.REALTIME, report(now_utc() + timedelta(minutes=5)))]))
    assert found.count("time_skew") == 2  # (and a report-period violation: 7 min between reports)


def test_duplicate_realtime(tmp_path: Path) -> None:
    t = now_utc()
    found = run(_session(tmp_path, [frame_bytes(Command.REALTIME, report(t)),
                                    frame_bytes(Command.REISSUE, report(t)),  # reissue of it is fine
                                    frame_bytes(Command.REALTIME, report(t))]))
    assert found == ["duplicate_realtime"]


def test_old_reissue(tmp_path: Path) -> None:
    found = run(_session(tmp_path, [frame_bytes(Command.REISSUE, report(now_utc() - timedelta(days=4))),
                                    frame_bytes(Command.REISSUE, report(now_utc() - timedelta(days=2)))]))
    assert found == ["reissue_too_old"]


def test_login_serial_not_increasing_and_logout_serial(tmp_path: Path) -> None:
    async def main() -> list[str]:
        server = await start(tmp_path)
        try:
            for serial in (5, 5, 3):
                c = Client(server.port)
                await c.connect()
                await c.raw(login_bytes(serial))
                await c.pump(0.2)
                await c.raw(frame_bytes(Command.VEHICLE_LOGOUT, VehicleLogout(now_utc(), serial + 1)))
                await c.pump(0.2)
                await c.close()
            await settle(server)
            return kinds(server)
        finally:
            await server.stop()

    found = run(main())
    assert found.count("login_serial") == 2
    assert found.count("logout_serial") == 3


def test_gap_in_the_alarm_window(tmp_path: Path) -> None:
    t = now_utc()
    frames = [frame_bytes(Command.REISSUE, report(t - timedelta(seconds=s), level=0))
              for s in range(30, 10, -1)]
    frames.append(frame_bytes(Command.REALTIME, report(t, level=3)))
    assert run(_session(tmp_path, frames)) == []  # only visible once all data is in: `check` computes it
    summary = conformance_summary(str(tmp_path / "p.db"))
    assert summary["vins"][VIN]["violations"] == {"alarm_window_gap": 1}
    assert "10 of 31 seconds missing" in summary["alarm_window_gaps"][0]["reason"]


def test_duplicate_vin_closes_the_old_session(tmp_path: Path) -> None:
    async def main() -> tuple[list[str], bytes]:
        server = await start(tmp_path)
        try:
            first = Client(server.port)
            await first.login()
            store = MemorySerialStore(beijing_date(now_utc()), 1)  # the same vehicle: next serial is 2
            second = Client(server.port, serial_store=store)
            await second.login()
            await first.pump(0.5)
            rest = b"" if first.reader.at_eof() else b"open"
            await first.close()
            await second.close()
            await settle(server)
            return kinds(server), rest
        finally:
            await server.stop()

    found, rest = run(main())
    assert found == ["duplicate_vin"]
    assert rest == b""  # the old connection was closed


def test_duplicate_vin_refused_with_0x03(tmp_path: Path) -> None:
    async def main() -> list[str]:
        server = await start(tmp_path, duplicate_vin="refuse")
        try:
            first = Client(server.port)
            await first.login()
            second = Client(server.port)
            await second.connect()
            await second.raw(login_bytes(7))
            reply = await second.pump(0.3)
            assert reply[3] == ResponseFlag.VIN_DUPLICATE
            await first.close()
            await second.close()
            await settle(server)
            return kinds(server)
        finally:
            await server.stop()

    assert run(main()) == ["duplicate_vin"]


def test_unknown_vin_refused(tmp_path: Path) -> None:
    found = run(_session(tmp_path, [login_bytes(1, vin="LOTHER00000000001")], login=False,
                         vins=frozenset({VIN})))
    assert found == ["unknown_vin"]


def test_heartbeat_silence_and_idle_drop(tmp_path: Path) -> None:
    async def main() -> tuple[list[str], bytes]:
        server = await start(tmp_path, heartbeat_interval=0.3, idle_factor=2.0)
        try:
            c = Client(server.port)
            await c.login()
            rest = await c.pump(1.5)  # silent: dropped after 0.6 s
            await c.close()
            await settle(server)
            return kinds(server), rest
        finally:
            await server.stop()

    found, _ = run(main())
    assert "heartbeat_timeout" in found


def _db(tmp_path: Path) -> PlatformDB:
    return PlatformDB(tmp_path / "p.db")


def _rows(tmp_path: Path) -> list[FrameRow]:
    return list(_db(tmp_path).frames())


def test_length_field_too_long_is_bad_length_and_the_next_frame_survives(tmp_path: Path) -> None:
    first = bytearray(frame_bytes(Command.REALTIME, report(ago(1))))
    length = int.from_bytes(first[22:24], "big") + 5
    first[22:24] = length.to_bytes(2, "big")  # claims 5 bytes of the next frame
    first[-1] = wire.bcc(bytes(first), 2, len(first) - 1)  # BCC over what was sent
    second = frame_bytes(Command.REALTIME, report(now_utc()))
    found = run(_session(tmp_path, [bytes(first) + second]))
    assert found == ["bad_length"]
    realtime = [r for r in _rows(tmp_path) if r.command == Command.REALTIME and r.decoded is not None]
    assert len(realtime) == 1


def test_bad_bcc_classification_is_not_fooled_by_payload_bytes() -> None:
    from sim.platform.checks import bad_bcc

    for n in range(200):
        data = bytearray(frame_bytes(Command.REALTIME, report(ago(n))))
        data[30] ^= 0x55
        assert bad_bcc(bytes(data)).kind == "bad_bcc"
