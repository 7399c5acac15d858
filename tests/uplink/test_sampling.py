"""The sampling-monitoring link: a second terminal link to the public platform with its own outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.protocol.model import Command, Edition
from agent.protocol.session import TerminalConfig, TerminalSession
from agent.sampling import PublicPlatform, SamplingLink
from agent.store import Outbox
from agent.uplink.tcp import OutboxCodec, UplinkConfig
from tests.uplink.test_tcp import FAST, T0, VIN, Platform, data_unit, until


def make_link(tmp_path: Path) -> SamplingLink:
    def session(store: Outbox) -> TerminalSession:
        return TerminalSession(TerminalConfig(VIN, Edition.E2016, iccid="8986" + "0" * 16, timing=FAST),
                               wallclock=lambda: datetime.now(UTC), serial_store=store.serial_store(),
                               codec=OutboxCodec())

    def config(target: PublicPlatform) -> UplinkConfig:
        return UplinkConfig(target.host, target.port, reconnect_min_s=0.05, reconnect_max_s=0.2,
                            proof_timeout_s=2.0, logout_wait_s=1.0, reissue_rate=500.0)

    return SamplingLink(tmp_path / "sampling.db", session, config)


def submit(link: SamplingLink, i: int) -> None:
    t = T0 + timedelta(seconds=i)
    link.submit(2016, Command.REALTIME, VIN, data_unit(t), t, 1)


def test_public_platform_address_from_parameters() -> None:
    assert PublicPlatform.from_parameters({0x0E: "gov.example.cn", 0x0F: 19006}) == \
        PublicPlatform("gov.example.cn", 19006)
    assert PublicPlatform.from_parameters({0x0E: b"gov.example.cn", 0x0F: 19006}) is not None
    for values in ({}, {0x0E: "", 0x0F: 19006}, {0x0E: "x", 0x0F: 0}, {0x0E: "x", 0x0F: 65535}):
        assert PublicPlatform.from_parameters(values) is None  # type: ignore[arg-type]


def test_opened_link_carries_copies_and_survives_close_and_move(tmp_path: Path) -> None:
    async def main() -> None:
        public, other = Platform(), Platform()
        await public.start()
        await other.start()
        link = make_link(tmp_path)
        link.open(PublicPlatform("127.0.0.1", public.port))
        assert link.active
        for i in range(5):
            submit(link, i)  # before the login: stored, then reissued
        await until(lambda: link.uplink is not None and link.uplink.session.logged_in, what="login")
        for i in range(5, 10):
            submit(link, i)
        await until(lambda: len(public.received) == 10, what="10 copies at the public platform")
        moved = PublicPlatform("127.0.0.1", other.port)
        link.open(moved)  # a new address: the old link logs out, then the link moves
        await until(lambda: link.target == moved and link.uplink is not None
                    and link.uplink.session.logged_in, what="moved")
        submit(link, 10)
        await until(lambda: len(other.received) == 1, what="the copy at the new address")
        await link.close()
        assert not link.active
        got = sorted(t for _, t in public.received)
        assert got == [T0 + timedelta(seconds=i) for i in range(10)]
        await public.stop()
        await other.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
