"""Uplinks behind one small interface: ``open() -> bool``, ``write(b) -> bool``, ``read() -> bytes``,
``close()``. ``read`` never blocks (b"" when nothing arrived) and raises OSError when the link died.

* ``SocketLink``: TCP over the board's network stack (``socket``/``usocket``).
* ``UartModemLink``: a cellular modem on a UART driven with AT commands into transparent TCP mode
  (SIMCom-style ``AT+CIPMODE=1`` / ``AT+CIPSTART``); after ``CONNECT`` the UART carries the TCP bytes.
"""

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class SocketLink:
    """TCP client; ``connect_timeout`` in seconds."""

    def __init__(self, host, port, connect_timeout=10.0):
        # type: (str, int, float) -> None
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._sock = None  # type: Any

    def open(self):
        # type: () -> bool
        import socket  # here: a board without a network stack still runs the UART modem link

        self.close()
        try:
            addr = socket.getaddrinfo(self.host, self.port)[0][-1]
            s = socket.socket()
            s.settimeout(self.connect_timeout)
            s.connect(addr)
            s.setblocking(False)
        except OSError:
            return False
        self._sock = s
        return True

    def write(self, data):
        # type: (bytes) -> bool
        s = self._sock
        if s is None:
            return False
        view = memoryview(data)
        sent = 0
        try:
            s.setblocking(True)
            while sent < len(data):
                n = s.send(view[sent:])
                if not n:
                    self.close()
                    return False
                sent += n
            s.setblocking(False)
        except OSError:
            self.close()
            return False
        return True

    def read(self):
        # type: () -> bytes
        s = self._sock
        if s is None:
            raise OSError("link closed")
        try:
            data = s.recv(512)  # type: bytes
        except OSError as exc:
            if exc.args and exc.args[0] in (11, 35, 115):  # EAGAIN / EWOULDBLOCK / EINPROGRESS
                return b""
            self.close()
            raise
        if not data:
            self.close()
            raise OSError("closed by the platform")
        return data

    def close(self):
        # type: () -> None
        if self._sock is not None:
            try:  # noqa: SIM105 - MicroPython has no contextlib
                self._sock.close()
            except OSError:
                pass
            self._sock = None


class UartModemLink:
    """A modem on ``uart`` (``machine.UART``-like: ``write``, ``read``, ``any``) in transparent mode.

    ``sleep_ms`` and ``ticks_ms`` are injected (``time.sleep_ms`` / ``time.ticks_ms`` on a board).
    """

    def __init__(self, uart, host, port, sleep_ms, ticks_ms, apn="", timeout_ms=10000):
        # type: (Any, str, int, Callable[[int], Any], Callable[[], Any], str, int) -> None
        self.uart = uart
        self.host = host
        self.port = port
        self.apn = apn
        self.sleep_ms = sleep_ms
        self.ticks_ms = ticks_ms
        self.timeout_ms = timeout_ms
        self.up = False

    def command(self, line, expect=b"OK", timeout_ms=None):
        # type: (str, bytes, int | None) -> bytes | None
        """Send an AT command; the response up to ``expect``, None on ERROR or timeout."""
        uart = self.uart
        while uart.any():
            uart.read()
        uart.write(line.encode() + b"\r\n")
        limit = self.timeout_ms if timeout_ms is None else timeout_ms
        start = self.ticks_ms()
        got = b""
        while self.ticks_ms() - start < limit:
            chunk = uart.read()  # type: bytes | None
            if chunk:
                got += chunk
                if expect in got:
                    return got
                if b"ERROR" in got:
                    return None
            else:
                self.sleep_ms(10)
        return None

    def iccid(self):
        # type: () -> bytes
        """The SIM's ICCID (``AT+CCID``), b"" when the modem does not say."""
        reply = self.command("AT+CCID") or b""
        digits = bytearray()
        for b in reply:
            if 0x30 <= b <= 0x39 or 0x41 <= b <= 0x46:
                digits.append(b)
            elif digits and len(digits) >= 19:
                break
            else:
                digits = bytearray()
        return bytes(digits[:20])

    def open(self):
        # type: () -> bool
        self.up = False
        steps = ["AT", "ATE0", "AT+CIPSHUT", "AT+CIPMODE=1"]
        if self.apn:
            steps.append('AT+CSTT="' + self.apn + '"')
        for line in steps:
            if self.command(line, b"SHUT OK" if line == "AT+CIPSHUT" else b"OK") is None:
                return False
        start = 'AT+CIPSTART="TCP","' + self.host + '",' + str(self.port)
        if self.command(start, b"CONNECT", self.timeout_ms * 3) is None:
            return False
        self.up = True
        return True

    def write(self, data):
        # type: (bytes) -> bool
        if not self.up:
            return False
        self.uart.write(data)
        return True

    def read(self):
        # type: () -> bytes
        if not self.up:
            raise OSError("modem link down")
        data = self.uart.read()
        if data and b"CLOSED" in data:
            self.up = False
            raise OSError("modem reported CLOSED")
        return data or b""

    def close(self):
        # type: () -> None
        if self.up:
            self.sleep_ms(1100)  # guard time around the escape sequence
            self.uart.write(b"+++")
            self.sleep_ms(1100)
            self.command("AT+CIPCLOSE", b"OK", 2000)
        self.up = False
