"""A bounded ring of unsent records in a flash file: fixed-size slots, power-loss tolerant.

File layout (big-endian)::

    0   header copy A (16 bytes)  b"TBR1", tail sequence (4), slots (2), slot size (2), CRC-16 (2), 0 (2)
    16  header copy B (16 bytes)  the same; writes alternate between A and B
    32  slot 0, slot 1, ...       0xA5, sequence (4), length (2), record, CRC-16 of sequence..record (2)

Record ``seq`` lives in slot ``seq % slots``. The head (next sequence) is found by scanning the slots
at open; the tail (oldest unsent record) is the newest valid header copy, raised to ``head - slots``.
A write torn by a power loss leaves a slot whose CRC does not match: it is skipped and counted
(``torn``), the other records survive. A torn header write falls back to the other copy (a record may
then be sent twice, never lost). When the ring is full the oldest record is overwritten and counted
(``overwritten``).
"""

import struct

MAGIC = b"TBR1"
HEADER = 16
BASE = 32
SLOT_OVERHEAD = 9  # marker, sequence, length, CRC


def _crc_table():
    # type: () -> list[int]
    table = []
    for n in range(256):
        c = n << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    # type: (bytes | bytearray | memoryview, int) -> int
    """CRC-16/CCITT-FALSE."""
    table = _TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ b) & 0xFF]
    return crc


class Ring:
    """``push`` / ``peek`` / ``pop`` over a file ``path`` of ``slots`` slots of ``slot_size`` bytes."""

    def __init__(self, path, slots=64, slot_size=256):
        # type: (str, int, int) -> None
        if slots < 2 or slot_size < SLOT_OVERHEAD + 1:
            raise ValueError("ring needs >= 2 slots of > 9 bytes")
        self.path = path
        self.slots = slots
        self.slot_size = slot_size
        self.torn = 0
        self.overwritten = 0
        self.pushed = 0
        self._buf = bytearray(slot_size)
        self._copy = 0
        size = BASE + slots * slot_size
        try:
            f = open(path, "r+b")  # noqa: SIM115 - kept open for the ring's life
        except OSError:
            f = open(path, "w+b")  # noqa: SIM115
        self._f = f
        f.seek(0, 2)
        if f.tell() != size or self._read_tail() is None:
            self._format(size)
        tail = self._read_tail()
        self.tail = tail if tail is not None else 0
        self.head = self._scan_head()
        if self.head - self.tail > slots:
            self.tail = self.head - slots
        if self.tail > self.head:
            self.tail = self.head

    # -- file helpers

    def _format(self, size):
        # type: (int) -> None
        f = self._f
        f.seek(0)
        zero = bytes(256)
        left = size
        while left > 0:
            n = 256 if left > 256 else left
            f.write(zero[:n])
            left -= n
        self._copy = 0
        self._write_tail(0)
        self._write_tail(0)

    def _read_tail(self):
        # type: () -> int | None
        best = None
        f = self._f
        for copy in (0, 1):
            f.seek(copy * HEADER)
            raw = f.read(HEADER)
            if len(raw) != HEADER or raw[0:4] != MAGIC:
                continue
            tail, slots, slot_size, crc = struct.unpack_from(">IHHH", raw, 4)
            if crc != crc16(raw[0:12]) or slots != self.slots or slot_size != self.slot_size:
                continue
            if best is None or tail > best:
                best = tail
                self._copy = 1 - copy  # the next write goes to the other copy
        return best

    def _write_tail(self, tail):
        # type: (int) -> None
        head = MAGIC + struct.pack(">IHH", tail, self.slots, self.slot_size)
        f = self._f
        f.seek(self._copy * HEADER)
        f.write(head + struct.pack(">HH", crc16(head), 0))
        f.flush()
        self._copy = 1 - self._copy

    def _read_slot(self, index):
        # type: (int) -> tuple[int, bytes] | None
        """(sequence, record) of slot ``index``, None when empty or torn."""
        f = self._f
        f.seek(BASE + index * self.slot_size)
        buf = self._buf
        n = f.readinto(buf)
        if n != self.slot_size or buf[0] != 0xA5:
            return None
        seq, length = struct.unpack_from(">IH", buf, 1)
        if length > self.slot_size - SLOT_OVERHEAD:
            return None
        end = 7 + length
        mv = memoryview(buf)
        if crc16(mv[1:end]) != (buf[end] << 8 | buf[end + 1]):
            return None
        return seq, bytes(mv[7:end])

    def _scan_head(self):
        # type: () -> int
        head = self.tail
        for index in range(self.slots):
            slot = self._read_slot(index)
            if slot is not None and slot[0] % self.slots == index and slot[0] >= head:
                head = slot[0] + 1
        return head

    # -- API

    def __len__(self):
        # type: () -> int
        return self.head - self.tail

    @property
    def capacity(self):
        # type: () -> int
        """Largest record a slot holds."""
        return self.slot_size - SLOT_OVERHEAD

    def push(self, record):
        # type: (bytes) -> None
        """Append ``record``; when full, the oldest record is overwritten (counted)."""
        if len(record) > self.capacity:
            raise ValueError("record of " + str(len(record)) + " bytes exceeds the slot capacity")
        if self.head - self.tail >= self.slots:
            self.tail += 1
            self.overwritten += 1
        seq = self.head
        body = struct.pack(">IH", seq, len(record)) + record
        f = self._f
        f.seek(BASE + (seq % self.slots) * self.slot_size)
        f.write(b"\xa5" + body + struct.pack(">H", crc16(body)))
        f.flush()
        self.head = seq + 1
        self.pushed += 1

    def peek(self):
        # type: () -> bytes | None
        """The oldest unsent record (torn slots on the way are skipped and counted), None when empty."""
        while self.tail < self.head:
            slot = self._read_slot(self.tail % self.slots)
            if slot is not None and slot[0] == self.tail:
                return slot[1]
            self.torn += 1
            self.tail += 1
        return None

    def pop(self):
        # type: () -> None
        """Drop the oldest record (it was sent); the new tail is written to flash."""
        if self.tail < self.head:
            self.tail += 1
            self._write_tail(self.tail)

    def close(self):
        # type: () -> None
        self._f.close()
