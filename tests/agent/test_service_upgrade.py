"""The service executes 0x82 remote upgrade (signed package over loopback HTTP) and the sampling link
(0x82/0x07 to a second, public platform; 0x81 set 0x10 = 2 closes it), end to end through the downlink."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.protocol.model import Command, ControlId, Parameter, ParameterId, RemoteUpgrade
from agent.protocol.session import DownlinkReplied
from agent.service import AgentService
from agent.upgrade import build_package
from sim.run import simulate
from tests.agent.test_service import write_config
from tests.uplink.test_tcp import Platform, until

KEY = Ed25519PrivateKey.generate()


def state(service: AgentService) -> str | None:
    return service.upgrade_status.state if service.upgrade_status is not None else None


def with_upgrade(cfg: Path, tmp_path: Path, marker: Path) -> None:
    pub = tmp_path / "maker.pub"
    pub.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    script = "import sys, shutil; shutil.copy(sys.argv[1], sys.argv[2])"
    argv = json.dumps([sys.executable, "-c", script, "{payload}", str(marker)])
    cfg.write_text(cfg.read_text() + f'\n[upgrade]\npublic_key_file = "{pub}"\ninstall_command = {argv}\n')


def test_remote_upgrade_installs_a_signed_package_and_refuses_a_forged_one(
        tmp_path: Path, http_files: tuple[dict[str, bytes], str]) -> None:
    files, base = http_files
    files["/good.pkg"] = build_package(b"new firmware", KEY, name="fw.bin", version="F0.11")
    files["/forged.pkg"] = build_package(b"evil firmware", Ed25519PrivateKey.generate(), name="fw.bin",
                                         version="F0.11")
    marker = tmp_path / "installed.bin"

    async def main() -> None:
        platform = Platform()
        await platform.start()
        cfg = write_config(tmp_path, platform.port, normal_period=10)
        with_upgrade(cfg, tmp_path, marker)
        service = AgentService(load_config(cfg), messages=simulate(seconds=60, start_utc=datetime.now(UTC)),
                               accelerated=True)
        uplink = service.uplink
        assert uplink is not None
        task = asyncio.create_task(service.run(40))

        def replies() -> int:
            return sum(isinstance(e, DownlinkReplied) for e in platform.events)

        await until(lambda: uplink.session.logged_in, what="login")
        forged = RemoteUpgrade("cmnet", "", "", bytes(6), 0, "TBOX", "H1.00", "F0.11", f"{base}/forged.pkg",
                               1)
        platform.downlink(lambda s, now: s.control(ControlId.REMOTE_UPGRADE, forged, now))
        await until(lambda: replies() == 1, what="0x82 acknowledged")
        await until(lambda: state(service) == "refused", what="forged package refused")
        assert not marker.exists()
        assert "signature" in json.loads(service.store.get_value("upgrade.status") or "{}")["reason"]
        await asyncio.sleep(1.1)  # one 0x82 per second: commands are told apart by their time
        good = RemoteUpgrade("cmnet", "", "", bytes(6), 0, "TBOX", "H1.00", "F0.11", base + "/good.pkg", 1)
        platform.downlink(lambda s, now: s.control(ControlId.REMOTE_UPGRADE, good, now))
        await until(lambda: state(service) == "installed", what="signed package installed")
        assert marker.read_bytes() == b"new firmware"
        assert uplink.session.logged_in  # the link stayed up throughout
        await asyncio.sleep(1.1)
        platform.downlink(lambda s, now: s.control(ControlId.SHUTDOWN, b"", now))
        await asyncio.wait_for(task, 15)
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_sampling_link_to_the_public_platform_opens_survives_restart_and_closes(tmp_path: Path) -> None:
    async def main() -> None:
        platform, public = Platform(), Platform()
        await platform.start()
        await public.start()
        cfg = write_config(tmp_path, platform.port, normal_period=1)
        service = AgentService(load_config(cfg), messages=simulate(seconds=600, start_utc=datetime.now(UTC)),
                               accelerated=True)
        uplink = service.uplink
        assert uplink is not None
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(60, stop))
        await until(lambda: uplink.session.logged_in, what="login")
        address = [Parameter(ParameterId.PUBLIC_DOMAIN_LENGTH, 9),
                   Parameter(ParameterId.PUBLIC_DOMAIN, "127.0.0.1"),
                   Parameter(ParameterId.PUBLIC_PORT, public.port)]
        platform.downlink(lambda s, now: s.set_parameters(address, now))
        await until(lambda: service.handler.values.get(ParameterId.PUBLIC_PORT) == public.port,
                    what="address")
        await asyncio.sleep(1.1)
        platform.downlink(lambda s, now: s.control(ControlId.OPEN_SAMPLING_LINK, b"", now))
        await until(lambda: len(public.received) >= 3, what="copies at the public platform")
        assert service.handler.values[ParameterId.SAMPLING_MONITORING] == 1
        stop.set()
        await asyncio.wait_for(task, 15)
        # restart: the link comes back by itself (0x10 = 1 persisted), then 0x81 0x10 = 2 closes it
        service = AgentService(load_config(cfg), messages=simulate(seconds=600, start_utc=datetime.now(UTC)),
                               accelerated=True)
        uplink = service.uplink
        assert uplink is not None
        task = asyncio.create_task(service.run(60))
        logins = public.logins
        await until(lambda: public.logins > logins and service.sampling.active, what="reopened after restart")
        await until(lambda: uplink.session.logged_in, what="login")
        stop_sampling = [Parameter(ParameterId.SAMPLING_MONITORING, 2)]
        platform.downlink(lambda s, now: s.set_parameters(stop_sampling, now))
        await until(lambda: not service.sampling.active, what="sampling link closed")
        n = len(public.received)
        await asyncio.sleep(0.5)
        assert len(public.received) == n  # nothing more goes to the public platform
        assert any(c == Command.REALTIME for c, _ in platform.received)
        await asyncio.sleep(1.1)
        platform.downlink(lambda s, now: s.control(ControlId.SHUTDOWN, b"", now))
        await asyncio.wait_for(task, 15)
        await platform.stop()
        await public.stop()

    asyncio.run(asyncio.wait_for(main(), 90))
