"""General alarm flags and the highest alarm level of a lite snapshot.

Two sources, ORed: the ECU fault inputs of the table (``FAULTS``: flag bit, level, expression), and a
few threshold rules on fields the snapshot already has (``THRESHOLDS``: flag bit, metric, direction,
levels with set/clear hysteresis, values from the agent's NMC preset). Unlike the CPython alarm
engine there is no debounce, no SOC-jump or pack over/under-voltage rule: see docs/micropython.md.
A metric that is invalid keeps the level it had.
"""

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def _metric(name, snap):
    # type: (str, dict[str, Any]) -> Any
    v = snap["vehicle"]
    e = snap["extremes"]
    if name == "soc":
        return v.get("soc")
    if name == "insulation":
        kohm = v.get("insulation_resistance")
        volts = v.get("total_voltage")
        if kohm is None or volts is None or volts <= 0:
            return None
        return kohm * 1000.0 / volts  # ohm per volt
    if name == "temp_spread":
        hi = e.get("max_temperature")
        lo = e.get("min_temperature")
        if hi is None or lo is None:
            return None
        return hi - lo
    if name in ("max_temperature", "max_cell_voltage", "min_cell_voltage"):
        return e.get(name)
    if name in ("controller_temperature", "motor_temperature"):
        key = "temperature" if name == "motor_temperature" else name
        best = None
        for _, fields in snap["motors"]:
            x = fields.get(key)
            if x is not None and (best is None or x > best):
                best = x
        return best
    return None


class Alarms:
    """Keeps the threshold levels between samples (hysteresis)."""

    def __init__(self, table):
        # type: (Any) -> None
        self.rules = getattr(table, "THRESHOLDS", ())
        self.levels = [0] * len(self.rules)

    def update(self, snap):
        # type: (dict[str, Any]) -> tuple[int, int, dict[int, int]]
        """(highest level, flags DWORD, {bit: level}) of ``snap``; the edition masks and caps them."""
        flags = 0
        top = 0
        levels = {}  # type: dict[int, int]
        for bit, level in snap["faults"]:
            flags |= 1 << bit
            if level > levels.get(bit, 0):
                levels[bit] = level
        for i in range(len(self.rules)):
            bit, metric, high, steps = self.rules[i]
            x = _metric(metric, snap)
            current = self.levels[i]
            if x is not None:
                new = 0
                for level, set_at, clear_at in steps:
                    if high:
                        hit = x >= set_at or (current >= level and x >= clear_at)
                    else:
                        hit = x <= set_at or (current >= level and x <= clear_at)
                    if hit:
                        new = level
                current = new
                self.levels[i] = new
            if current:
                flags |= 1 << bit
                if current > levels.get(bit, 0):
                    levels[bit] = current
        for bit in levels:
            if levels[bit] > top:
                top = levels[bit]
        return top, flags, levels
