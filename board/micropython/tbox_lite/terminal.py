"""The lite terminal: CAN in, GB/T 32960 frames out (the table's edition, 2016 or 2025), unsent
records kept in a flash ring.

``Terminal.poll()`` is called in a loop (every 10-50 ms). Each call:

1. moves received CAN frames (at most ``max_frames``) into the frame slots (no decoding);
2. runs the link: connect, vehicle login (0x01), wait for the platform's success reply, retry after
   ``retry_s`` (1 min, spec §6); replies are split with ``agent.protocol.wire.Framer``;
3. samples once per whole second of ``utc()``; a record is made every ``period_s`` (10 s) or every
   ``alarm_period_s`` (1 s) while the highest alarm level is 3; online it goes out as realtime 0x02,
   else into the ring;
4. online, drains the ring oldest first as reissue 0x03 (``reissue_per_poll`` per call);
5. sends a heartbeat (0x07) after ``heartbeat_s`` without traffic.

Everything external is injected: ``can`` (``recv()``), ``link`` (see link.py), ``ring`` (ring.py),
``utc()`` (integer Unix seconds: record times, periods, timeouts) and ``ticks_ms()`` with ``ticks_diff``
(frame ages: integer milliseconds, as ``time.ticks_ms``/``time.ticks_diff``; floats are single
precision on many boards and cannot hold Unix time).
"""

from agent.protocol import wire
from tbox_lite import report
from tbox_lite.alarm import Alarms
from tbox_lite.signals import Signals

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Protocol

    class CanInput(Protocol):
        """can_io.MachineCan / can_io.PybCan or a test shim."""

        def recv(self) -> "tuple[int, bytes, int] | None": ...

    class Link(Protocol):
        """link.SocketLink / link.UartModemLink or a test shim."""

        def open(self) -> bool: ...
        def write(self, data: bytes) -> bool: ...
        def read(self) -> bytes: ...
        def close(self) -> None: ...

    class Store(Protocol):
        """ring.Ring."""

        @property
        def capacity(self) -> int: ...
        def __len__(self) -> int: ...
        def push(self, record: bytes) -> None: ...
        def peek(self) -> "bytes | None": ...
        def pop(self) -> None: ...

REALTIME = 0x02
REISSUE = 0x03
LOGIN = 0x01
LOGOUT = 0x04
HEARTBEAT = 0x07

DOWN = 0
WAIT_LOGIN = 1
ONLINE = 2

DEFAULTS = {
    "period_s": 10,
    "alarm_period_s": 1,
    "heartbeat_s": 30,
    "reply_timeout_s": 10,
    "retry_s": 60,
    "reissue_per_poll": 2,
    "max_frames": 64,
    "serial_path": "tbox_serial.txt",
    "gnss_max_age_s": 10,
}


class Terminal:
    """One vehicle's lite terminal; the report edition is the table's ``EDITION``."""

    def __init__(self, table, can, link, ring, utc, ticks_ms, vin, iccid, options=None, ticks_diff=None):
        # type: (Any, CanInput, Link, Store, Callable[[], int], Callable[[], int], bytes, bytes, dict[str, Any] | None, Callable[[int, int], int] | None) -> None
        if len(vin) != 17:
            raise ValueError("VIN must be 17 bytes")
        self.opts = dict(DEFAULTS)  # type: dict[str, Any]
        if options:
            self.opts.update(options)
        self.table = table
        self.signals = Signals(table, ticks_diff)
        self.alarms = Alarms(table)
        self.subsystems = getattr(table, "SUBSYSTEMS", 1)
        self.edition = getattr(table, "EDITION", 2016)
        self.can = can
        self.link = link
        self.ring = ring
        self.utc = utc
        self.ticks_ms = ticks_ms
        self.vin = vin
        self.iccid = iccid
        self.framer = wire.Framer(1024)
        self.state = DOWN
        self.position = None  # type: tuple[float, float, bool] | None
        self._position_at = 0
        self.serial = 0
        self.level = 0
        self.flags = 0
        self._next_tick = -1
        self._next_report = -1
        self._next_connect = 0
        self._deadline = 0
        self._last_tx = 0
        # counters
        self.sent_realtime = 0
        self.sent_reissue = 0
        self.stored = 0
        self.dropped = 0
        self.store_errors = 0
        self.logins = 0
        self.link_failures = 0

    # -- inputs

    def set_position(self, longitude, latitude, valid=True):
        # type: (float, float, bool) -> None
        """The latest GNSS fix (degrees, WGS-84); kept as the last position when the fix is lost.

        A fix older than ``gnss_max_age_s`` (a silent receiver) is reported with the invalid bit."""
        self.position = (longitude, latitude, valid)
        self._position_at = self.utc()

    # -- link

    def _send(self, command, data):
        # type: (int, bytes) -> bool
        frame = wire.build_frame(self.edition, command, 0xFE, self.vin, 0x01, data)
        try:
            ok = self.link.write(frame)
        except OSError:
            ok = False
        if ok:
            self._last_tx = self.utc()
            return True
        self._drop_link()
        return False

    def _drop_link(self):
        # type: () -> None
        if self.state != DOWN:
            self.link_failures += 1
        try:  # noqa: SIM105 - MicroPython has no contextlib
            self.link.close()
        except OSError:
            pass
        self.state = DOWN
        self.framer = wire.Framer(1024)
        self._next_connect = self.utc() + self.opts["retry_s"]

    def _login_serial(self, now):
        # type: (int) -> int
        """+1 per login, back to 1 each (Beijing) day; kept in a small file across restarts."""
        y, m, d = report.beijing_fields(now)[:3]
        day = y * 10000 + m * 100 + d
        path = self.opts["serial_path"]
        last_day, last = 0, 0
        try:
            with open(path) as f:
                parts = f.read().split()
                last_day, last = int(parts[0]), int(parts[1])
        except (OSError, ValueError, IndexError):
            pass
        serial = last + 1 if last_day == day and last < 65531 else 1
        try:
            with open(path, "w") as f:
                f.write(str(day) + " " + str(serial))
        except OSError:
            pass
        return serial

    def _run_link(self, now):
        # type: (int) -> None
        if self.state == DOWN:
            if now < self._next_connect:
                return
            try:
                opened = self.link.open()
            except OSError:
                opened = False
            if not opened:
                self.link_failures += 1
                self._next_connect = now + self.opts["retry_s"]
                return
            self.serial = self._login_serial(now)
            self.state = WAIT_LOGIN
            self._deadline = now + self.opts["reply_timeout_s"]
            self.logins += 1
            codes = [c.encode() if isinstance(c, str) else c for c in self.opts.get("pack_codes") or ()]
            body = report.login(self.edition, now, self.serial, self.iccid, self.subsystems, codes)
            self._send(LOGIN, body)
            return
        try:
            data = self.link.read()
        except OSError:
            self._drop_link()
            return
        if data:
            for frame in self.framer.feed(data):
                self._on_reply(frame)
        if self.state == WAIT_LOGIN and now >= self._deadline:
            self._drop_link()  # no login reply: reconnect after retry_s

    def _on_reply(self, frame):
        # type: (wire.RawFrame) -> None
        if not frame.bcc_ok or frame.vin != self.vin:
            return
        if frame.command == LOGIN and self.state == WAIT_LOGIN:
            if frame.response == 0x01:
                self.state = ONLINE
            else:
                self._drop_link()

    # -- sampling and records

    def _record(self, t, ms):
        # type: (int, int) -> None
        snap = self.signals.sample(ms)
        alarm = self.alarms.update(snap)
        self.level, self.flags = alarm[0], alarm[1]
        period = self.opts["alarm_period_s"] if self.level >= 3 else self.opts["period_s"]
        if self._next_report < 0 or t + period < self._next_report:
            self._next_report = t
        if t < self._next_report:
            return
        self._next_report = t + period
        position = self.position
        if position is not None and position[2] and t - self._position_at > self.opts["gnss_max_age_s"]:
            position = (position[0], position[1], False)
        body = report.realtime(self.edition, t, snap, alarm, position, self.subsystems)
        if self.state == ONLINE and self._send(REALTIME, body):
            self.sent_realtime += 1
            return
        if len(body) > self.ring.capacity:
            self.dropped += 1
            return
        try:
            self.ring.push(body)
        except OSError:  # flash full or failing: the record is lost, the terminal goes on
            self.store_errors += 1
            return
        self.stored += 1

    def _drain(self):
        # type: () -> None
        for _ in range(self.opts["reissue_per_poll"]):
            try:
                record = self.ring.peek()
            except OSError:
                self.store_errors += 1
                return
            if record is None:
                return
            if not self._send(REISSUE, record):
                return
            try:
                self.ring.pop()
            except OSError:  # the tail could not be written: the record may be sent again, not lost
                self.store_errors += 1
                return
            self.sent_reissue += 1

    def poll(self):
        # type: () -> None
        """One pass of the main loop (see the module docstring)."""
        now = self.utc()
        ms = self.ticks_ms()
        put = self.signals.put
        recv = self.can.recv
        for _ in range(self.opts["max_frames"]):
            frame = recv()
            if frame is None:
                break
            put(frame[0], frame[1], frame[2])
        self._run_link(now)
        if self._next_tick < 0 or not -60 <= now - self._next_tick <= 60:  # start, or the clock was set
            self._next_tick = now + 1
        while self._next_tick <= now:
            self._record(self._next_tick, ms)
            self._next_tick += 1
        if self.state == ONLINE:
            if len(self.ring):
                self._drain()
            elif now - self._last_tx >= self.opts["heartbeat_s"]:
                self._send(HEARTBEAT, b"")

    def stop(self):
        # type: () -> None
        """Vehicle logout (0x04) when online, then close the link."""
        if self.state == ONLINE:
            self._send(LOGOUT, report.logout(self.utc(), self.serial))
        try:  # noqa: SIM105 - MicroPython has no contextlib
            self.link.close()
        except OSError:
            pass
        self.state = DOWN
