"""Latest CAN frames by table group, and the mapped fields decoded from them at sampling time.

The hot path (``put``) only stores a frame's bytes and timestamp in the slot of its group (a CAN id,
or one page of a multiplexed message); decoding happens in ``sample`` for the mapped signals only.
Times are integer milliseconds of a wrapping tick counter
(``time.ticks_ms``; differences through ``ticks_diff``), never float Unix seconds: boards with
single-precision floats could not resolve them. A field whose frame is missing, stale or too short, or whose raw value is an SNA code, is ``None``
(invalid), never its last value. Same rules as the CPython sampler (agent/canbus/sampler.py) minus
nothing: the counter/checksum checks of the table (``CHECKS``, as ``agent.canbus.checks``) run at
sampling time, once per frame group; a frame failing them makes its group's fields invalid.
"""

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable
CONST = 0
NUMBER = 1
CODED = 2
BOOL_EXPR = 3
BOOL_SIGNAL = 4


def _sub(a, b):
    # type: (int, int) -> int
    return a - b


def _crc_table(poly):
    # type: (int) -> list[int]
    """The 256-entry table of a non-reflected CRC8 with polynomial ``poly``."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


def extract(data, start, length, big):
    # type: (bytes, int, int, int) -> int | None
    """Unsigned raw value of a signal (DBC start bit and byte order); None when ``data`` is too short."""
    first = start >> 3
    if big:
        top = 7 - (start & 7)
        nbytes = (top + length + 7) >> 3
        end = first + nbytes
        if end > len(data):
            return None
        value = 0
        for i in range(first, end):
            value = (value << 8) | data[i]
        value >>= nbytes * 8 - top - length
    else:
        shift = start & 7
        end = first + ((shift + length + 7) >> 3)
        if end > len(data):
            return None
        value = 0
        for i in range(end - 1, first - 1, -1):
            value = (value << 8) | data[i]
        value >>= shift
    return value & ((1 << length) - 1)


class Signals:
    """Frame slots + the table's rules -> snapshot dicts (``None`` = invalid)."""

    def __init__(self, table, ticks_diff=None):
        # type: (Any, Callable[[int, int], int] | None) -> None
        self.table = table
        self.diff = ticks_diff if ticks_diff is not None else _sub
        if getattr(table, "FORMAT", None) != 1:
            raise ValueError("signal table format " + str(getattr(table, "FORMAT", None)) + ", want 1")
        self.routes = table.ROUTES
        self.specs = table.SIGNALS
        count = len(table.GROUPS)
        self.data = [b""] * count  # type: list[bytes]
        self.stamp = [0] * count  # type: list[int]
        self.seen = bytearray(count)  # ever received (optional motors, expression terms)
        self.live = bytearray(count)  # received within the last minute: ages stay inside the ticks range
        self.prev = [b""] * count  # type: list[bytes]
        self.checks = getattr(table, "CHECKS", {})  # type: dict[int, tuple[Any, ...]]
        self.check_ok = bytearray(b"\x01" * count)
        self.check_failures = 0
        self.plain = bytearray(count)  # groups of a whole (not multiplexed) message
        for route in self.routes.values():
            if isinstance(route, int):
                self.plain[route] = 1
        self._crc = {}  # type: dict[int, list[int]]
        for spec in self.checks.values():
            if spec[0] == "crc" and spec[2] not in self._crc:
                self._crc[spec[2]] = _crc_table(spec[2])
        self.frames = 0
        self.unknown = 0
        self.no_mux = 0
        self._now = 0
        self._memory = {}  # type: dict[str, dict[int, int]]

    # -- hot path

    def put(self, key, data, stamp):
        # type: (int, bytes, int) -> None
        """Store one frame (``key``: CAN id, bit 31 set for a 29-bit id) received at tick ``stamp`` (ms)."""
        route = self.routes.get(key)
        if route is None:
            self.unknown += 1
            return
        if isinstance(route, int):
            group = route
        else:
            mux = extract(data, route[0], route[1], route[2])
            group = route[3].get(mux, -1) if mux is not None else -1
            if group < 0:
                self.no_mux += 1
                return
        self.frames += 1
        self.prev[group] = self.data[group]
        self.data[group] = data
        self.stamp[group] = stamp
        self.seen[group] = 1
        self.live[group] = 1

    # -- decoding

    def value(self, index):
        # type: (int) -> Any
        """Physical value of table signal ``index`` at the sampling time, None when invalid."""
        spec = self.specs[index]
        group = spec[0]
        if not self.live[group] or not self.check_ok[group]:
            return None
        age = self.diff(self._now, self.stamp[group])
        if age < 0 or age > spec[8]:
            return None
        length = spec[2]
        raw = extract(self.data[group], spec[1], length, spec[3])
        if raw is None:
            return None
        if spec[4] and raw >> (length - 1):
            raw -= 1 << length
        if raw in spec[7]:
            return None
        scale, offset = spec[5], spec[6]
        if scale != 1 or offset != 0:
            return raw * scale + offset
        return raw

    def raw_of(self, index, physical):
        # type: (int, float | int) -> Any
        spec = self.specs[index]
        scale, offset = spec[5], spec[6]
        if scale == 1 and offset == 0:
            return int(physical)
        return round((physical - offset) / scale)

    def rule(self, rule):
        # type: (tuple[Any, ...]) -> Any
        kind = rule[0]
        if kind == CONST:
            return rule[1]
        if kind == BOOL_EXPR:
            return self._expr(rule[1])
        x = self.value(rule[1])
        if x is None:
            return None
        if kind == NUMBER:
            scale, offset = rule[2], rule[3]
            if scale != 1 or offset != 0:
                x = x * scale + offset
            return round(x) if rule[4] else x
        if kind == CODED:
            return rule[2].get(self.raw_of(rule[1], x), rule[3])
        return x != 0  # BOOL_SIGNAL

    def _expr(self, terms):
        # type: (tuple[Any, ...]) -> bool | None
        """OR of ANDs, three-valued: a decided term wins over an undecidable one (None)."""
        unknown = False
        present = False
        for term in terms:
            skip = False
            for atom in term:
                if not self.seen[self.specs[atom[0]][0]]:
                    skip = True
                    break
            if skip:
                continue
            present = True
            result = True  # type: bool | None
            for atom in term:
                x = self.value(atom[0])
                if x is None:
                    result = None
                    continue
                v = self.raw_of(atom[0], x) if atom[4] else x
                if atom[1] >= 0:
                    v = int(v) & atom[1]
                op = atom[2]
                rhs = atom[3]
                if op == "":
                    ok = v != 0
                elif op == "==":
                    ok = v == rhs
                elif op == "!=":
                    ok = v != rhs
                elif op == "<":
                    ok = v < rhs
                elif op == "<=":
                    ok = v <= rhs
                elif op == ">":
                    ok = v > rhs
                else:
                    ok = v >= rhs
                if not ok:
                    result = False
                    break
            if result is True:
                return True
            if result is None:
                unknown = True
        return None if unknown or not present else False

    def _checked(self, group):
        # type: (int) -> bool
        """Checksum and alive counter of the latest frame of ``group`` (and the one before it)."""
        kind, at, poly, init, xorout, prefix, counter, modulo, jump = self.checks[group]
        data = self.data[group]
        if at >= 0 and kind != "none":
            if len(data) <= at:
                return False
            if kind == "crc":
                table = self._crc[poly]
                crc = init
                for b in prefix:
                    crc = table[crc ^ b]
                for i in range(len(data)):
                    if i != at:
                        crc = table[crc ^ data[i]]
                value = crc ^ xorout
            elif kind == "xor":
                value = init
                for i in range(len(data)):
                    if i != at:
                        value ^= data[i]
            else:  # sum
                value = init
                for i in range(len(data)):
                    if i != at:
                        value += data[i]
                value &= 0xFF
            if data[at] != value:
                return False
        if counter:
            now = extract(data, counter[0], counter[1], counter[2])
            if now is None or now >= modulo:
                return False
            previous = self.prev[group]
            if previous and self.plain[group]:  # the counter runs across pages: mux pages are not compared
                before = extract(previous, counter[0], counter[1], counter[2])
                if before is not None and before < modulo:
                    step = (now - before) % modulo
                    if not 1 <= step <= jump:
                        return False
        return True

    def _fields(self, rules):
        # type: (dict[str, Any]) -> dict[str, Any]
        out = {}
        for name in rules:
            out[name] = self.rule(rules[name])
        return out

    def _codes(self, name, sources):
        # type: (str, tuple[Any, ...]) -> list[int]
        codes = []  # type: list[int]
        for src in sources:
            x = self.value(src[0])
            if src[1] < 0:
                if x is not None:
                    code = self.raw_of(src[0], x)
                    if code and code not in codes:
                        codes.append(code)
                continue
            memory = self._memory.setdefault(name + str(src[0]), {})
            n = self.value(src[1])
            i = self.value(src[2])
            if n is None or i is None or x is None:
                memory.clear()
                continue
            count = round(n)
            index = round(i)
            for k in [k for k in memory if k >= count]:
                del memory[k]
            code = self.raw_of(src[0], x)
            if count and index < count and code:
                memory[index] = code
            for k in sorted(memory):
                if memory[k] not in codes:
                    codes.append(memory[k])
        return codes

    def sample(self, now):
        # type: (int) -> dict[str, Any]
        """The snapshot at tick ``now`` (ms, the frames' clock): vehicle, motors, extremes, faults, codes."""
        self._now = now
        live = self.live
        for g in range(len(live)):  # a frame older than a minute is dead until the next one arrives
            if live[g]:
                age = self.diff(now, self.stamp[g])
                if age < 0 or age > 60000:
                    live[g] = 0
                elif g in self.checks:
                    ok = self._checked(g)
                    self.check_ok[g] = ok
                    if not ok:
                        self.check_failures += 1
        t = self.table
        motors = []
        for number, optional, groups, rules in t.MOTORS:
            if optional:
                seen = False
                for g in groups:
                    if self.seen[g]:
                        seen = True
                        break
                if not seen:
                    continue
            motors.append((number, self._fields(rules)))
        faults = []
        for bit, level, rule in t.FAULTS:
            if self.rule(rule) is True:
                faults.append((bit, level))
        codes = {}
        for name in t.CODES:
            codes[name] = self._codes(name, t.CODES[name])
        return {
            "vehicle": self._fields(t.VEHICLE),
            "motors": motors,
            "extremes": self._fields(t.EXTREMES),
            "faults": faults,
            "codes": codes,
        }
