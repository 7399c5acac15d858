"""The strict array fast path of the codec (a platform speedup) answers exactly like the per-value path."""

from __future__ import annotations

import random

from agent.protocol import codec
from agent.protocol.errors import ProtocolError
from agent.protocol.model import Special


def _slow(values: list[object], f: codec._Field) -> list[int] | None:
    try:
        return [codec._raw_of(f, v, "x", True) for v in values]
    except ProtocolError:
        return None


def test_fast_path_agrees_with_the_per_value_path() -> None:
    rng = random.Random(7)
    mv = codec._millivolt_tables()[1]
    cell = codec._Field("cell", "H", "lin", div=1000, hi=60000)
    temp = codec._Field("temperature", "B", "off", off=40, hi=250, sentinel=True)
    probe = codec._Field("temperature", "B", "off", off=40, hi=240, sentinel=False)
    odd: list[object] = [True, False, float("nan"), float("inf"), -0.0, 3.6000001, 60.0, 60.001, 65.533,
                         65.534, -0.001, 3, 70, Special.ABNORMAL, Special.INVALID, "3.6", None, 200, 210, 211,
                         213, 214, 215, 216, -40, -41, 25.0]
    for _ in range(3000):
        n = rng.randint(1, 6)
        cells = [rng.choice(odd) if rng.random() < 0.3 else rng.randint(0, 0xFFFD) / 1000 for _ in range(n)]
        fast = codec._strict_fast(cells, mv, codec._MV_TYPES, 60000, 0xFFFE)
        assert fast is None or fast == _slow(cells, cell), cells
        temps = [rng.choice(odd) if rng.random() < 0.3 else rng.randint(-40, 213) for _ in range(n)]
        fast = codec._strict_fast(temps, codec._TEMP_ENC, codec._TEMP_TYPES, 250, 0xFE)
        assert fast is None or fast == _slow(temps, temp), temps
        fast = codec._strict_fast(temps, codec._TEMP_ENC_PLAIN, codec._TEMP_TYPES, 240, 0x100)
        assert fast is None or fast == _slow(temps, probe), temps
    good = [rng.randint(0, 60000) / 1000 for _ in range(100)]  # the common case takes the fast path
    assert codec._strict_fast(good, mv, codec._MV_TYPES, 60000, 0xFFFE) == _slow(good, cell)


def test_record_check_memo_keeps_every_error() -> None:
    import pytest

    from tests.platform.support import vehicle

    rec = codec._VEHICLE_2016
    good = vehicle(soc=80)
    for _ in range(3):  # validated once, then remembered: still accepted
        rec.check(good, "vehicle", strict=True)
    from dataclasses import replace

    for bad in (replace(good, soc=101), replace(good, soc=True), replace(good, speed=float("nan")),
                replace(good, speed=220.1)):
        for _ in range(2):
            with pytest.raises(ProtocolError):
                rec.check(bad, "vehicle", strict=True)
    rec.check(replace(good, soc=101), "vehicle", strict=False)  # in range of the BYTE: fine when lax
    with pytest.raises(ProtocolError):
        rec.check(replace(good, soc=101), "vehicle", strict=True)  # the lax entry does not leak into strict
