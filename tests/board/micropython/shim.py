# Runs under MicroPython (tests/board/test_micropython_firmware.py): the lite firmware with a hardware
# shim. Fake CAN replays recorded frames (frames.bin: big-endian double stamp, uint32 key, uint8 length,
# 8 data bytes), the fake clock steps 50 ms, the fake link captures every frame ("TX <hex>" lines) and
# answers a login like a platform, and is cut between DOWN_FROM and DOWN_UNTIL (params.json).
# The ring file is a real file in MicroPython's filesystem. Ends with "DONE" and the counters.
import gc
import json
import struct
import sys

gc.collect()
BASE_ALLOC = gc.mem_alloc()

import tbox_table  # noqa: E402
from tbox_lite.ring import Ring  # noqa: E402
from tbox_lite.terminal import Terminal  # noqa: E402

from agent.protocol import wire  # noqa: E402

with open("/params.json") as f:
    P = json.load(f)


class Clock:
    """50 ms steps: float time for the recording, integer UTC seconds and ms ticks for the firmware."""

    def __init__(self, start):
        self.step = 0
        self.start = start

    def __call__(self):
        return self.start + self.step / 20

    def utc(self):
        return int(self.start) + self.step // 20

    def ticks_ms(self):
        return self.step * 50


class FakeCan:
    """Delivers the recorded frames whose stamp is before the clock's time."""

    def __init__(self, path, clock):
        self.f = open(path, "rb")  # noqa: SIM115 - read frame by frame as the clock advances
        self.buf = bytearray(21)
        self.clock = clock
        self.pending = None
        self.count = 0
        self._next()

    def _next(self):
        n = self.f.readinto(self.buf)
        if n != 21:
            self.pending = None
            return
        stamp, key, length = struct.unpack_from(">dIB", self.buf, 0)
        self.pending = (key, bytes(self.buf[13:13 + length]), stamp, round((stamp - self.clock.start) * 1000))

    def recv(self):
        p = self.pending
        if p is None or p[2] >= self.clock():
            return None
        self._next()
        self.count += 1
        return p[0], p[1], p[3]


class FakeLink:
    def __init__(self, clock):
        self.clock = clock
        self.up = False
        self.inbox = b""
        self.opens = 0

    def cut(self):
        now = self.clock()
        return P["down_from"] <= now < P["down_until"]

    def open(self):
        self.opens += 1
        if self.cut():
            return False
        self.up = True
        return True

    def write(self, data):
        if not self.up or self.cut():
            self.up = False
            return False
        print("TX", f"{self.clock():.2f}", "".join(f"{b:02x}" for b in data))
        frame = wire.parse_frame(data)
        if frame.command in (0x01, 0x07, 0x04):  # the platform answers login, heartbeat, logout
            self.inbox += wire.build_frame(2016, frame.command, 0x01, frame.vin, 0x01, frame.data[:6])
        return True

    def read(self):
        if not self.up:
            raise OSError("down")
        data, self.inbox = self.inbox, b""
        return data

    def close(self):
        self.up = False


def ring_cases():
    """Ring: survives reopen, overwrites the oldest when full (counted), skips a torn slot (counted)."""
    r = Ring("/ring_case.bin", 4, 32)
    for i in range(6):
        r.push(b"rec" + str(i).encode())
    assert len(r) == 4 and r.overwritten == 2, (len(r), r.overwritten)
    assert r.peek() == b"rec2"
    r.pop()
    r.close()
    r = Ring("/ring_case.bin", 4, 32)  # reopen: tail and head come back from flash
    assert len(r) == 3 and r.peek() == b"rec3", (len(r), r.peek())
    r.close()
    # tear the slot of rec4 (sequence 4 -> slot 0): flip a byte of its record
    with open("/ring_case.bin", "r+b") as f:
        f.seek(32 + 0 * 32 + 8)
        b = f.read(1)
        f.seek(32 + 0 * 32 + 8)
        f.write(bytes((b[0] ^ 0xFF,)))
    r = Ring("/ring_case.bin", 4, 32)
    assert r.peek() == b"rec3"
    r.pop()
    assert r.peek() == b"rec5" and r.torn == 1, (r.peek(), r.torn)
    r.pop()
    assert r.peek() is None and len(r) == 0
    # a torn header copy: the other copy still gives the tail
    r.close()
    with open("/ring_case.bin", "r+b") as f:
        f.write(b"\x00" * 16)
    r = Ring("/ring_case.bin", 4, 32)
    assert len(r) == 0, len(r)
    r.close()
    print("RING OK")


ring_cases()
clock = Clock(P["start"])
can = FakeCan("/frames.bin", clock)
link = FakeLink(clock)
ring = Ring("/ring.bin", P["slots"], 256)
vin = P["vin"].encode()
term = Terminal(
    tbox_table, can, link, ring, clock.utc, clock.ticks_ms, vin, b"89860000000000000001", P["options"]
)
STATE = {"step": 0, "peak": 0, "step_peak": 0, "steps": int((P["end"] - P["start"]) * 20)}


def step():
    """One poll at the next 50 ms; garbage is collected between steps (at top level)."""
    alloc = gc.mem_alloc()  # live heap after the collection at the end of the previous step
    if alloc > STATE["peak"]:
        STATE["peak"] = alloc
    n = STATE["step"]
    if n > STATE["steps"]:
        finish()
        return False
    clock.step = n
    term.poll()
    # nothing is collected inside a call on this port: live heap + everything this poll allocated
    alloc = gc.mem_alloc()
    if alloc > STATE["step_peak"]:
        STATE["step_peak"] = alloc
    STATE["step"] = n + 1
    gc.collect()  # scheduled: runs when this call returns to the top level
    return True


def finish():
    term.stop()
    print("COUNTERS", json.dumps({
        "frames": can.count, "decoded": term.signals.frames, "unknown": term.signals.unknown,
        "realtime": term.sent_realtime, "reissue": term.sent_reissue, "stored": term.stored,
        "dropped": term.dropped, "logins": term.logins, "link_failures": term.link_failures,
        "overwritten": ring.overwritten, "torn": ring.torn, "left": len(ring),
    }))
    print("HEAP", json.dumps({"base": BASE_ALLOC, "peak": STATE["peak"], "step_peak": STATE["step_peak"],
                              "end": gc.mem_alloc(),
                              "total": gc.mem_alloc() + gc.mem_free()}))
    print("IMPL", sys.implementation.name)
    print("DONE")


gc.collect()
