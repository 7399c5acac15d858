# Runs under MicroPython (tests/board/test_micropython_modem.py): the firmware's UartModemLink and
# Terminal over a fake UART that behaves like a SIMCom-style modem (AT commands, then transparent TCP
# after CONNECT) with a platform behind it that answers logins. Prints "AT <line>" for every command,
# "TX <hex>" for every frame the platform received, and "DONE".
import sys

import tbox_table
from tbox_lite.link import UartModemLink
from tbox_lite.ring import Ring
from tbox_lite.terminal import Terminal

from agent.protocol import wire


class Ticks:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def sleep_ms(self, ms):
        self.ms += ms


class FakeModem:
    def __init__(self):
        self.data_mode = False
        self.line = b""
        self.out = b""
        self.framer = wire.Framer()
        self.vin = b""

    def any(self):
        return len(self.out)

    def read(self):
        if not self.out:
            return None
        data, self.out = self.out, b""
        return data

    def hang_up(self):
        self.data_mode = False
        self.out += b"\r\nCLOSED\r\n"

    def write(self, data):
        if self.data_mode:
            if data == b"+++":
                self.data_mode = False
                self.out += b"\r\nOK\r\n"
                return len(data)
            for frame in self.framer.feed(data):
                print("TX", "".join(f"{b:02x}" for b in frame.raw))
                if frame.command in (0x01, 0x07, 0x04):
                    self.out += wire.build_frame(frame.edition, frame.command, 0x01, frame.vin, 0x01,
                                                 frame.data[:6])
            return len(data)
        self.line += data
        while b"\r\n" in self.line:
            line, self.line = self.line.split(b"\r\n", 1)
            self.command(line.decode())
        return len(data)

    def command(self, line):
        print("AT", line)
        if line == "AT+CIPSHUT":
            self.out += b"\r\nSHUT OK\r\n"
        elif line == "AT+CCID":
            self.out += b"\r\n89860000000000000003\r\n\r\nOK\r\n"
        elif line.startswith("AT+CIPSTART="):
            self.out += b"\r\nOK\r\n\r\nCONNECT\r\n"
            self.data_mode = True
        elif line.startswith("AT"):
            self.out += b"\r\nOK\r\n"
        else:
            self.out += b"\r\nERROR\r\n"


class NoCan:
    def recv(self):
        return None


class Clock:
    def __init__(self):
        self.t = 1735689600

    def utc(self):
        return self.t

    def ticks_ms(self):
        return (self.t - 1735689600) * 1000


ticks = Ticks()
modem = FakeModem()
link = UartModemLink(modem, "203.0.113.7", 32960, ticks.sleep_ms, ticks.ticks_ms, "cmnet")
print("ICCID", link.iccid().decode())
clock = Clock()
ring = Ring("/ring.bin", 8, 256)
term = Terminal(tbox_table, NoCan(), link, ring, clock.utc, clock.ticks_ms, b"LTBXLTE0000000003",
                b"89860000000000000003", {"period_s": 2, "retry_s": 3, "serial_path": "/serial.txt"})
for second in range(12):
    clock.t = 1735689600 + second
    term.poll()
    term.poll()  # reads the login reply
    print("STATE", second, term.state)
    if second == 5:
        modem.hang_up()
term.stop()
print("COUNTERS", term.logins, term.sent_realtime, term.stored, term.sent_reissue, len(ring))
print("IMPL", sys.implementation.name)
print("DONE")
