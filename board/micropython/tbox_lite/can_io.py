"""CAN input adapters: ``recv() -> (key, data, stamp) | None`` without blocking.

``key`` is the CAN id with bit 31 set for a 29-bit id (the table's ``ROUTES`` keys), ``stamp`` the
receive time in milliseconds of the terminal's tick counter (``ticks_ms()``). Both adapters filter in hardware to
the table's ids where the controller can. A test shim replaces them with recorded frames.
"""

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

EXTENDED = 0x80000000
FLAG_EXT_ID = 2  # machine.CAN.FLAG_EXT_ID


class MachineCan:
    """``machine.CAN`` (MicroPython >= 1.25 API: ``recv() -> (id, data, flags, errors)``)."""

    def __init__(self, bus, ticks_ms, ids=None):
        # type: (Any, Callable[[], int], Iterable[int] | None) -> None
        self.bus = bus
        self.ticks_ms = ticks_ms
        self.errors = 0
        filters = None
        if ids is not None:
            filters = []
            for key in ids:
                if key & EXTENDED:
                    filters.append((key & 0x1FFFFFFF, 0x1FFFFFFF, FLAG_EXT_ID))
                else:
                    filters.append((key, 0x7FF, 0))
        try:
            bus.set_filters(filters)
        except (ValueError, OSError):  # more ids than filter banks: receive everything
            bus.set_filters(None)

    def recv(self):
        # type: () -> tuple[int, bytes, int] | None
        try:
            msg = self.bus.recv()
        except OSError:
            self.errors += 1
            return None
        if msg is None:
            return None
        ident, data, flags = msg[0], msg[1], msg[2]
        key = ident | EXTENDED if flags & FLAG_EXT_ID else ident
        return key, bytes(data), self.ticks_ms()


class PybCan:
    """``pyb.CAN`` (STM32 boards): FIFO 0, LIST16 filter banks of 4 standard ids."""

    def __init__(self, bus, ticks_ms, ids=None):
        # type: (Any, Callable[[], int], Iterable[int] | None) -> None
        self.bus = bus
        self.ticks_ms = ticks_ms
        self.errors = 0
        if ids is not None:
            std = [i for i in ids if not i & EXTENDED]
            try:
                for bank in range(0, len(std), 4):
                    group = (std[bank:bank + 4] + std[bank:bank + 1] * 4)[:4]
                    bus.setfilter(bank // 4, bus.LIST16, 0, group)
            except (ValueError, OSError):
                pass  # fewer banks than needed: the table ignores unknown ids anyway

    def recv(self):
        # type: () -> tuple[int, bytes, int] | None
        bus = self.bus
        try:
            if not bus.any(0):
                return None
            msg = bus.recv(0, timeout=0)
        except OSError:
            self.errors += 1
            return None
        extended = len(msg) >= 5 and msg[1] is True  # (id, extended, rtr, fmi, data) since 1.20
        key = msg[0] | EXTENDED if extended else msg[0]
        return key, bytes(msg[-1]), self.ticks_ms()
