"""The Locust user: one simulated GB/T 32960 vehicle per Locust user (``locust -f sim/locustfile.py``).

Importing this module imports Locust, which monkey-patches the process with gevent: only Locust
processes may import it (``sim/locustfile.py`` does); nothing else in ``agent``/``sim`` imports it.

Each user takes a VIN index ``--vin-offset + worker_index * --vins-per-worker + slot`` (slot: the lowest
free one in this worker process), logs in through ``sim.fleet.locust_link.VehicleLink`` (the real
``TerminalSession``) to the ``--host`` target (``tcp://HOST:PORT`` or ``tls://HOST:PORT``), sends a
``LiteVehicle`` realtime report every ``--period`` seconds and logs out when stopped. A report collected
while the link is down or not yet logged in (or whose link was lost before its acknowledgement) goes into
a bounded backlog (``--backlog``) and is reissued (0x03) oldest first after the next login,
``--reissue-window`` in flight at a time. Every login, realtime or reissue acknowledgement, heartbeat
reply and logout is a Locust request event of type ``GBT32960`` (response time: write to reply, in ms;
an error reply, timeout or lost link is a failure; so is a report dropped from a full backlog,
``backlog_full``), so Locust's statistics, web UI, CSV/JSON output and load shapes work unchanged.
"""

from __future__ import annotations

import logging
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from locust import User, events, task
from locust.env import Environment
from locust.user.wait_time import constant_pacing

from agent.errors import ConfigError, TransportError
from agent.protocol.model import ParameterId
from agent.protocol.session import ClientTiming, TerminalConfig
from agent.uplink.tcp import AgentHandler, ParamValue, TlsConfig
from sim.fleet.lite import LiteVehicle, iccid_for, vin_for
from sim.fleet.locust_link import Backlog, ClockSeededSerialStore, Outcome, VehicleLink, parse_target
from sim.fleet.locust_options import Settings, SlotAllocator, add_options

log = logging.getLogger(__name__)

REQUEST_TYPE = "GBT32960"
DEFAULT_HOST = "tcp://127.0.0.1:32960"


class LinkFailure(TransportError):
    """A failed exchange as Locust reports it (the message is the failure's name in the stats)."""


def _add_options(parser: Any, **_kw: Any) -> None:
    add_options(parser)


def _check_options(environment: Environment, **_kw: Any) -> None:
    """Refuse bad options at start-up (a worker's own are checked again with the master's at spawn)."""
    try:
        if environment.parsed_options is not None:
            Settings.from_namespace(environment.parsed_options)
        if environment.host:
            parse_target(environment.host)
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


_hooks: Any = events  # Locust's EventHook is untyped
_hooks.init_command_line_parser.add_listener(_add_options)
_hooks.init.add_listener(_check_options)


class Gbt32960Vehicle(User):
    """One vehicle: login on start, a realtime report per ``--period``, heartbeats while idle, a backlog
    reissued after a reconnect, logout."""

    host = DEFAULT_HOST
    #: per worker process: VIN slots in use, and each VIN's login serial store (serials keep increasing)
    slots: ClassVar[SlotAllocator] = SlotAllocator()
    serial_stores: ClassVar[dict[str, ClockSeededSerialStore]] = {}
    ssl_contexts: ClassVar[dict[tuple[str | None, ...], ssl.SSLContext]] = {}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.settings = Settings.from_namespace(environment.parsed_options)
        self._pacing = constant_pacing(self.settings.period)
        self.slot: int | None = None
        self.vin = ""
        self.iccid = ""
        self.vehicle: LiteVehicle | None = None
        self.link: VehicleLink | None = None
        self.backlog = Backlog(self.settings.backlog, self._record)
        self.collected = 0
        self._last_step = time.monotonic()

    def wait_time(self) -> float:
        return self._pacing(self)

    # ---- lifecycle

    def on_start(self) -> None:
        runner = self.environment.runner
        worker = int(getattr(runner, "worker_index", 0) or 0)
        self.slot = self.slots.take()
        try:
            index = self.settings.vin_index(worker, self.slot)
            self.vin = vin_for(index, self.settings.vin_prefix)
            self.iccid = iccid_for(index)
        except (ConfigError, ValueError) as exc:
            self.slots.release(self.slot)
            self.slot = None
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc), key="vin-prefix") from exc
        log.debug("worker %d slot %d: VIN %s", worker, self.slot, self.vin)
        self.vehicle = LiteVehicle(self.vin, self.settings.seed + index, self.settings.edition,
                                   datetime.now(UTC), scenario=self.settings.scenario)
        self._last_step = time.monotonic()
        self._connect()

    def on_stop(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close(logout=True, timeout=self.settings.ack_timeout)
        left = len(self.backlog)
        log.info("%s: collected %d reports, %d dropped from the backlog, %d not reissued", self.vin,
                 self.collected, self.backlog.dropped, left)
        if left:
            log.warning("%s: stopped with %d reports not reissued", self.vin, left)
            self._record(Outcome("backlog_left", 0.0, 0, f"{left} reports not reissued when stopped"))
            self.backlog.reports.clear()
        if self.slot is not None:
            self.slots.release(self.slot)
            self.slot = None

    # ---- the task

    @task
    def realtime(self) -> None:
        """Advance the physics to now and collect a report; send it (waiting for its outcome) when
        logged in, else keep it and log in again; then reissue the backlog for the rest of the period."""
        started = time.monotonic()
        assert self.vehicle is not None
        self.vehicle.step(started - self._last_step)
        self._last_step = started
        report = self.vehicle.report(datetime.now(UTC).replace(microsecond=0))
        self.collected += 1
        if self.link is not None and self.link.logged_in:
            if self.link.send_realtime(report).unconfirmed:
                self.backlog.keep(report)
        else:
            self.backlog.keep(report)
            if self.link is not None:
                self.link.close(logout=False)
            self._connect()
        if self.backlog and self.link is not None and self.link.logged_in:
            # leave a tenth of the period (and the next report) to the pacing
            self.backlog.drain(self.link, self.settings.reissue_window,
                               until=started + 0.9 * self.settings.period)

    # ---- helpers

    def _connect(self) -> None:
        s = self.settings
        target = parse_target(self.host or DEFAULT_HOST)
        ssl_context = self._ssl_context(s) if target.tls else None
        timing = ClientTiming(heartbeat_interval=s.heartbeat or None, login_timeout=s.ack_timeout,
                              reply_timeout=s.ack_timeout, max_resends=0, max_login_attempts=1)
        config = TerminalConfig(self.vin, s.edition, iccid=self.iccid, timing=timing)
        values: dict[int, ParamValue] = {ParameterId.REPORT_PERIOD: max(1, round(s.period)),
                                         ParameterId.HEARTBEAT_PERIOD: max(1, round(s.heartbeat or 30))}
        store = self.serial_stores.setdefault(self.vin, ClockSeededSerialStore())
        self.link = VehicleLink(target, config, self._record, ssl_context=ssl_context,
                                server_hostname=s.server_name, serial_store=store,
                                handler=AgentHandler(values, s.edition), require_ack=s.require_ack)
        self.link.connect()

    @classmethod
    def _ssl_context(cls, s: Settings) -> ssl.SSLContext:
        """One client context per TLS set-up and process (loading a CA for each vehicle is slow)."""
        key = (s.ca_file, s.client_cert, s.client_key, s.server_name)
        ctx = cls.ssl_contexts.get(key)
        if ctx is None:
            tls = TlsConfig(ca_file=Path(s.ca_file) if s.ca_file else None,
                            cert_file=Path(s.client_cert) if s.client_cert else None,
                            key_file=Path(s.client_key) if s.client_key else None,
                            server_hostname=s.server_name)
            ctx = cls.ssl_contexts[key] = tls.context()
        return ctx

    def _record(self, outcome: Outcome) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=outcome.name, response_time=outcome.latency * 1000.0,
            response_length=outcome.size, exception=None if outcome.ok else LinkFailure(outcome.error),
            context={"vin": self.vin},
        )
