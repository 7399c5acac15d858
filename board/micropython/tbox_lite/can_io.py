"""CAN input adapters: ``recv() -> (key, data, stamp) | None`` without blocking.

``key`` is the CAN id with bit 31 set for a 29-bit id (the table's ``ROUTES`` keys), ``stamp`` the
receive time in seconds on the terminal's clock. A test shim replaces this with recorded frames.
"""


class MachineCan:
    """``machine.CAN`` (or ``pyb.CAN``) in normal mode, filtered to the table's CAN ids if it can be.

    ``bus`` is the opened CAN object; ``clock()`` returns the current time in seconds.
    """

    def __init__(self, bus, clock, ids=None):
        # type: (object, object, object) -> None
        self.bus = bus
        self.clock = clock
        self.errors = 0
        if ids is not None:
            self._filters(ids)

    def _filters(self, ids):
        # type: (object) -> None
        bus = self.bus
        setfilter = getattr(bus, "setfilter", None)
        if setfilter is None:
            return
        std = [i for i in ids if not i & 0x80000000]  # type: ignore[attr-defined]
        try:  # pyb.CAN: LIST16 banks of 4 ids; stop quietly where the port differs
            for bank in range(0, len(std), 4):
                group = (std[bank:bank + 4] + std[bank:bank + 1] * 4)[:4]
                setfilter(bank // 4, 1, 0, group)  # bank, CAN.LIST16, FIFO 0
        except (TypeError, ValueError, OSError, AttributeError):
            pass

    def recv(self):
        # type: () -> tuple[int, bytes, float] | None
        bus = self.bus
        try:
            if not bus.any(0):  # type: ignore[attr-defined]
                return None
            msg = bus.recv(0, timeout=0)  # type: ignore[attr-defined]
        except OSError:
            self.errors += 1
            return None
        ident, extended = msg[0], msg[1]
        data = bytes(msg[-1])
        if len(msg) < 5:  # older pyb.CAN: (id, rtr, fmi, data), standard ids only
            extended = False
        key = ident | 0x80000000 if extended else ident
        return key, data, self.clock()  # type: ignore[operator]
