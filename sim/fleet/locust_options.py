"""Options of the Locust GB/T 32960 vehicle user, and the per-process VIN index allocator.

Kept free of Locust imports: ``add_options`` takes any argparse-like parser (Locust's
``init_command_line_parser`` hands over a configargparse one), ``Settings.from_namespace`` validates the
parsed values with errors naming the option. See docs/fleet.md, "Distributed runs with Locust".
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError
from agent.protocol.model import Edition

DEFAULT_PREFIX = "LTBXLCT0"
DEFAULT_VINS_PER_WORKER = 100_000
DEFAULT_BACKLOG = 3600  # an hour of reports at a 1 s period
DEFAULT_REISSUE_WINDOW = 4


def add_options(parser: Any) -> None:
    """Register the user's options (each also settable as ``LOCUST_<NAME>`` / in locust.conf)."""
    group = parser.add_argument_group("GB/T 32960 vehicles (sim/locustfile.py)")
    group.add_argument("--period", type=float, default=10.0, env_var="LOCUST_PERIOD",
                       help="seconds between two realtime reports of one vehicle (>= 1, default 10)")
    group.add_argument("--edition", choices=("2016", "2025"), default="2016", env_var="LOCUST_EDITION",
                       help="GB/T 32960 edition of every frame (default 2016)")
    group.add_argument("--vin-prefix", default=DEFAULT_PREFIX, env_var="LOCUST_VIN_PREFIX",
                       help=f"VIN prefix, upper-case letters and digits (default {DEFAULT_PREFIX})")
    group.add_argument("--seed", type=int, default=1, env_var="LOCUST_SEED",
                       help="physics seed; vehicle i uses seed + i (default 1)")
    group.add_argument("--vin-offset", type=int, default=0, env_var="LOCUST_VIN_OFFSET",
                       help="first VIN index of this run (default 0); give concurrent masters disjoint ones")
    group.add_argument("--vins-per-worker", type=int, default=DEFAULT_VINS_PER_WORKER,
                       env_var="LOCUST_VINS_PER_WORKER",
                       help="VIN indexes reserved per worker: worker w uses offset + w * this + 0.. "
                            f"(default {DEFAULT_VINS_PER_WORKER})")
    group.add_argument("--heartbeat", type=float, default=30.0, env_var="LOCUST_HEARTBEAT",
                       help="heartbeat after this many idle seconds (param 0x09, default 30; 0 = none)")
    group.add_argument("--ack-timeout", type=float, default=10.0, env_var="LOCUST_ACK_TIMEOUT",
                       help="seconds to wait for a login/realtime/heartbeat/logout reply (default 10)")
    group.add_argument("--realtime-ack", choices=("required", "silent"), default="required",
                       env_var="LOCUST_REALTIME_ACK",
                       help="required: a realtime report succeeds on the platform's reply (reference "
                            "platform: --reply-realtime); silent: on write, failing only on an error reply")
    group.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, env_var="LOCUST_BACKLOG",
                       help="reports a vehicle keeps while its link is down, reissued (0x03) after the next "
                            f"login; beyond it the oldest is dropped (a backlog_full failure; default "
                            f"{DEFAULT_BACKLOG}, 0 = keep none)")
    group.add_argument("--reissue-window", type=int, default=DEFAULT_REISSUE_WINDOW,
                       env_var="LOCUST_REISSUE_WINDOW",
                       help="reissues in flight at once while a backlog drains "
                            f"(default {DEFAULT_REISSUE_WINDOW})")
    group.add_argument("--scenario", default=None, env_var="LOCUST_SCENARIO",
                       help="LiteVehicle scenario (e.g. alarm-burst)")
    group.add_argument("--ca-file", default=None, env_var="LOCUST_CA_FILE",
                       help="tls:// targets: the only CA trusted for the platform's certificate")
    group.add_argument("--client-cert", default=None, env_var="LOCUST_CLIENT_CERT",
                       help="tls:// targets: client certificate (PEM) for mutual TLS")
    group.add_argument("--client-key", default=None, env_var="LOCUST_CLIENT_KEY",
                       help="tls:// targets: client private key (PEM)")
    group.add_argument("--server-name", default=None, env_var="LOCUST_SERVER_NAME",
                       help="tls:// targets: certificate name to verify (default: the host)")
    group.add_argument("--stages", default=None, env_var="LOCUST_STAGES",
                       help="with -f sim/locustfile.py,sim/fleet/locust_shape.py: USERS:SECONDS[:RATE],... "
                            "e.g. 100:60:10,500:300:20,0:30 (ramp to 100 users at 10/s, hold until 60 s; "
                            "to 500 until 360 s; to 0; then stop)")


@dataclass(frozen=True)
class Settings:
    """Validated options of one run."""

    period: float = 10.0
    edition: Edition = Edition.E2016
    vin_prefix: str = DEFAULT_PREFIX
    seed: int = 1
    vin_offset: int = 0
    vins_per_worker: int = DEFAULT_VINS_PER_WORKER
    heartbeat: float = 30.0
    ack_timeout: float = 10.0
    require_ack: bool = True
    backlog: int = DEFAULT_BACKLOG
    reissue_window: int = DEFAULT_REISSUE_WINDOW
    scenario: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None

    @classmethod
    def from_namespace(cls, ns: Any) -> Settings:
        """Settings from parsed options; a missing attribute takes the default."""
        d = cls()

        def get(name: str, default: Any) -> Any:
            value = getattr(ns, name, None)
            return default if value is None else value

        settings = cls(
            period=float(get("period", d.period)),
            edition=Edition.E2025 if str(get("edition", "2016")) == "2025" else Edition.E2016,
            vin_prefix=str(get("vin_prefix", d.vin_prefix)),
            seed=int(get("seed", d.seed)),
            vin_offset=int(get("vin_offset", d.vin_offset)),
            vins_per_worker=int(get("vins_per_worker", d.vins_per_worker)),
            heartbeat=float(get("heartbeat", d.heartbeat)),
            ack_timeout=float(get("ack_timeout", d.ack_timeout)),
            require_ack=str(get("realtime_ack", "required")) != "silent",
            backlog=int(get("backlog", d.backlog)),
            reissue_window=int(get("reissue_window", d.reissue_window)),
            scenario=get("scenario", None) or None,
            ca_file=get("ca_file", None),
            client_cert=get("client_cert", None),
            client_key=get("client_key", None),
            server_name=get("server_name", None),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad option."""
        if not self.period >= 1.0:
            raise ConfigError(f"--period {self.period:g}: at least 1 s (one realtime report per second "
                              "at most: collection times are whole seconds)", key="period")
        if not self.vin_prefix or len(self.vin_prefix) > 12 or not all(
                c.isascii() and (c.isdigit() or c.isupper()) for c in self.vin_prefix):
            raise ConfigError(f"--vin-prefix {self.vin_prefix!r}: 1-12 upper-case ASCII letters and digits",
                              key="vin-prefix")
        if self.vin_offset < 0:
            raise ConfigError(f"--vin-offset {self.vin_offset}: must be >= 0", key="vin-offset")
        if self.vins_per_worker < 1:
            raise ConfigError(f"--vins-per-worker {self.vins_per_worker}: must be >= 1",
                              key="vins-per-worker")
        if not 0 <= self.heartbeat <= 240:
            raise ConfigError(f"--heartbeat {self.heartbeat:g}: 0 (none) or up to 240 s (param 0x09)",
                              key="heartbeat")
        if not self.ack_timeout > 0:
            raise ConfigError(f"--ack-timeout {self.ack_timeout:g}: must be > 0", key="ack-timeout")
        if self.backlog < 0:
            raise ConfigError(f"--backlog {self.backlog}: must be >= 0 (0: keep none)", key="backlog")
        if self.reissue_window < 1:
            raise ConfigError(f"--reissue-window {self.reissue_window}: must be >= 1", key="reissue-window")

    def vin_index(self, worker: int, slot: int) -> int:
        """The fleet-wide VIN index of a worker's ``slot``-th vehicle."""
        if slot >= self.vins_per_worker:
            raise ConfigError(f"worker {worker} runs more than --vins-per-worker {self.vins_per_worker} "
                              "vehicles at once", key="vins-per-worker")
        return self.vin_offset + max(0, worker) * self.vins_per_worker + slot


@dataclass(frozen=True)
class Stage:
    """Hold ``users`` (reached at ``rate`` users/s) for ``seconds``."""

    users: int
    seconds: float
    rate: float


def parse_stages(text: str) -> tuple[Stage, ...]:
    """Parse ``USERS:SECONDS[:RATE],...`` (RATE default: all users within one second)."""
    stages: list[Stage] = []
    for n, item in enumerate(part.strip() for part in text.split(",")):
        fields = item.split(":")
        try:
            if len(fields) not in (2, 3):
                raise ValueError("want USERS:SECONDS[:RATE]")
            users, seconds = int(fields[0]), float(fields[1])
            rate = float(fields[2]) if len(fields) == 3 else float(max(1, users))
        except ValueError as exc:
            raise ConfigError(f"stage {n + 1} {item!r}: {exc}", key="stages") from None
        if users < 0 or not seconds > 0 or not rate > 0:
            raise ConfigError(f"stage {n + 1} {item!r}: users >= 0, seconds > 0 and rate > 0", key="stages")
        stages.append(Stage(users, seconds, rate))
    return tuple(stages)


def stage_at(stages: tuple[Stage, ...], elapsed: float) -> tuple[int, float] | None:
    """(users, spawn rate) wanted ``elapsed`` seconds into the run; None once every stage is over."""
    end = 0.0
    for stage in stages:
        end += stage.seconds
        if elapsed < end:
            return stage.users, stage.rate
    return None


class SlotAllocator:
    """Per-process vehicle slots: the lowest free one, so a ramp down and up reuses the same VINs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[int] = []  # a heap of released slots below ``_next``
        self._next = 0

    def take(self) -> int:
        with self._lock:
            if self._free:
                return heapq.heappop(self._free)
            self._next += 1
            return self._next - 1

    def release(self, slot: int) -> None:
        with self._lock:
            if 0 <= slot < self._next and slot not in self._free:
                heapq.heappush(self._free, slot)

    def __len__(self) -> int:
        return self._next - len(self._free)
