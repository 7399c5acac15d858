"""Report cadence: periods, the alarm window, post-power-off and post-HV-off rules (injected time)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.protocol.model import (
    AlarmLevel,
    ChargingState,
    Command,
    Edition,
    GeneralAlarmFlag,
    Special,
    VehicleState,
)
from agent.report.alarms import AlarmState
from agent.report.cadence import Outgoing, Reason, ReportingConfig, ReportScheduler
from agent.report.snapshot import Snapshot

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
E16, E25 = Edition.E2016, Edition.E2025
QUIET = AlarmState()


def snap(t: float, *, on: bool = True, charging: bool = False, hv: bool | None = None) -> Snapshot:
    v: dict[str, object] = {
        "vehicle_state": VehicleState.STARTED if on else VehicleState.STOPPED,
        "charging_state": ChargingState.PARKED_CHARGING if charging else ChargingState.NOT_CHARGING,
    }
    if hv is not None:
        v["hv_on"] = hv
    return Snapshot(time=T0 + timedelta(seconds=t), vehicle=MappingProxyType(v))


def level(lv: int, fault_point: float | None = None) -> AlarmState:
    flag = GeneralAlarmFlag.INSULATION
    return AlarmState(
        max_level=AlarmLevel(lv),
        flags=flag if lv else GeneralAlarmFlag(0),
        levels=MappingProxyType({flag: AlarmLevel(lv)} if lv else {}),
        fault_point=None if fault_point is None else T0 + timedelta(seconds=fault_point),
    )


def run(
    sched: ReportScheduler,
    times: Iterable[float],
    snapshot: Callable[[float], Snapshot] = snap,
    alarm: Callable[[float], AlarmState] = lambda t: QUIET,
) -> list[Outgoing]:
    out: list[Outgoing] = []
    for t in times:
        out += sched.on_sample(snapshot(t), alarm(t))
    return out


def secs(items: Iterable[Outgoing], command: Command | None = None) -> list[float]:
    return [(o.time - T0).total_seconds() for o in items if command is None or o.command == command]


@pytest.mark.parametrize("edition", [E16, E25])
def test_normal_period_exact(edition: Edition) -> None:
    out = run(ReportScheduler(ReportingConfig(), edition), range(61))
    assert secs(out) == [0, 10, 20, 30, 40, 50, 60]
    assert all(o.command == Command.REALTIME and o.reason is Reason.PERIODIC for o in out)


def test_normal_period_tolerates_sample_jitter() -> None:
    times = [i + (0.03 if i % 2 else -0.03) for i in range(1, 42)]
    out = run(ReportScheduler(ReportingConfig(normal_period_s=5)), times)
    assert len(out) == 9 and all(4.9 <= b - a <= 5.1 for a, b in itertools.pairwise(secs(out)))


def test_driving_period_capped_at_30s_and_parked_uses_the_parameter() -> None:
    sched = ReportScheduler(ReportingConfig(normal_period_s=60))
    assert secs(run(sched, range(91))) == [0, 30, 60, 90]
    charging_parked = ReportScheduler(ReportingConfig(normal_period_s=60))
    out = run(charging_parked, range(121), lambda t: snap(t, on=False, charging=True))
    assert secs(out) == [0, 30, 60, 90, 120]  # charging counts as on (≤ 30 s)


def test_level_1_and_2_use_the_normal_period_even_at_rest() -> None:
    out = run(ReportScheduler(), range(21), lambda t: snap(t, on=False), lambda t: level(2))
    assert secs(out) == [0, 10, 20]


def test_period_change_takes_effect_at_once() -> None:
    sched = ReportScheduler()
    out = run(sched, range(12))
    assert secs(out) == [0, 10]
    sched.set_periods(normal_period_s=3)
    assert sched.periods == (3, 1.0)
    out = run(sched, range(12, 20))
    assert secs(out) == [13, 16, 19]
    sched.set_periods(normal_period_s=20)
    assert secs(run(sched, range(20, 41))) == [39]


def test_period_limits_per_edition() -> None:
    ReportScheduler(ReportingConfig(), E16).set_periods(normal_period_s=600)
    with pytest.raises(ConfigError):
        ReportScheduler(ReportingConfig(), E25).set_periods(normal_period_s=31)
    with pytest.raises(ConfigError):
        ReportScheduler().set_periods(alarm_period_s=0)


def fault_at(t_fault: float, until: float) -> Callable[[float], AlarmState]:
    return lambda t: level(3, t_fault) if t_fault <= t < until else QUIET


@pytest.mark.parametrize("edition", [E16, E25])
def test_pre_fault_window_reissued_with_collection_times(edition: Edition) -> None:
    sched = ReportScheduler(ReportingConfig(), edition)
    # at rest, no alarm: nothing is sent before the fault, every 1 Hz sample is buffered
    out = run(sched, range(100), lambda t: snap(t, on=False), fault_at(70, 1000))
    reissue = [o for o in out if o.command == Command.REISSUE]
    assert secs(reissue) == [float(t) for t in range(40, 70)]  # exactly the 30 samples before, in order
    assert all(o.reason is Reason.PRE_FAULT and o.alarm.max_level == 0 for o in reissue)
    first_rt = next(o for o in out if o.command == Command.REALTIME)
    assert first_rt.time == T0 + timedelta(seconds=70) and first_rt.reason is Reason.ALARM
    assert out.index(first_rt) == 30  # the reissues come first
    assert secs(out, Command.REALTIME) == [float(t) for t in range(70, 100)]  # 1 Hz while level 3


def test_pre_fault_does_not_duplicate_realtime_samples() -> None:
    sched = ReportScheduler()
    out = run(sched, range(100), snap, fault_at(65, 1000))
    reissue = secs(out, Command.REISSUE)
    assert reissue == [float(t) for t in range(35, 65) if t % 10]  # 40, 50, 60 went out as realtime
    assert not set(reissue) & set(secs(out, Command.REALTIME))
    dup = ReportScheduler(ReportingConfig(pre_fault_include_sent=True))
    assert len(secs(run(dup, range(100), snap, fault_at(65, 1000)), Command.REISSUE)) == 30


def test_pre_fault_window_thinned_to_the_alarm_period_at_10_hz() -> None:
    sched = ReportScheduler()
    times = [i / 10 for i in range(0, 1000)]
    out = run(sched, times, lambda t: snap(t, on=False), fault_at(70, 1000))
    assert secs(out, Command.REISSUE) == pytest.approx([float(t) for t in range(40, 70)])


@pytest.mark.parametrize(("edition", "last_fast"), [(E16, 80.0), (E25, 54.0)])
def test_post_fault_window_per_edition(edition: Edition, last_fast: float) -> None:
    """Level 3 from 50 s to 55 s (cleared at 55): 2016 keeps 1 Hz to fault + 30 s, 2025 until it clears."""
    sched = ReportScheduler(ReportingConfig(), edition)
    out = run(sched, range(121), snap, fault_at(50, 55))
    rt = secs(out, Command.REALTIME)
    fast = [t for t in rt if 50 <= t <= last_fast]
    assert fast == [float(t) for t in range(50, int(last_fast) + 1)]
    after = [t for t in rt if t > last_fast]
    assert all(b - a == 10 for a, b in itertools.pairwise(after))
    assert after[0] - last_fast == 10  # the normal period counts from the last record sent


def test_one_hz_as_long_as_level_3_lasts_and_level_4() -> None:
    sched = ReportScheduler(ReportingConfig(), E25)

    def alarm(t: float) -> AlarmState:
        if t < 5:
            return QUIET
        return AlarmState(max_level=AlarmLevel.LEVEL_4, fault_point=T0 + timedelta(seconds=5))

    out = run(sched, range(200), snap, alarm)
    assert secs(out, Command.REALTIME) == [0.0, *[float(t) for t in range(5, 200)]]


def test_alarm_period_parameter() -> None:
    sched = ReportScheduler(ReportingConfig(alarm_period_s=0.5))
    times = [i / 2 for i in range(0, 40)]
    out = run(sched, times, snap, fault_at(10, 1000))
    rt = secs(out, Command.REALTIME)
    assert rt[rt.index(10.0) :] == [i / 2 for i in range(20, 40)]


def test_new_fault_point_opens_a_new_window() -> None:
    sched = ReportScheduler(ReportingConfig(), E25)

    def alarm(t: float) -> AlarmState:
        if 20 <= t < 25:
            return level(3, 20)
        if 200 <= t < 210:
            return level(3, 200)
        return QUIET

    out = run(sched, range(260), lambda t: snap(t, on=False), alarm)
    assert secs(out, Command.REISSUE) == [float(t) for t in [*range(0, 20), *range(170, 200)]]


def test_post_power_off_2016_three_minutes() -> None:
    sched = ReportScheduler(ReportingConfig(), E16)
    out = run(sched, range(400), lambda t: snap(t, on=t < 100))
    times = secs(out)
    assert times[-1] == 280 and all(
        o.reason is Reason.POST_POWER_OFF for o in out if o.time > T0 + timedelta(seconds=99)
    )
    assert [t for t in times if t >= 100] == [float(t) for t in range(100, 281, 10)]
    assert sched.needs_sampling(T0 + timedelta(seconds=250)) and not sched.needs_sampling(
        T0 + timedelta(seconds=399)
    )


def test_post_hv_off_2025_reports_59_30_to_60_00() -> None:
    sched = ReportScheduler(ReportingConfig(), E25)
    out = run(sched, range(0, 3800), lambda t: snap(t, on=t < 100, hv=t < 100))
    late = [o for o in out if o.time >= T0 + timedelta(seconds=100)]
    assert secs(late) == [float(t) for t in range(100 + 3570, 100 + 3601)]
    assert all(o.reason is Reason.HV_OFF_MONITOR and o.command == Command.REALTIME for o in late)
    assert sched.needs_sampling(T0 + timedelta(seconds=3000))


def test_post_hv_off_uses_power_state_when_hv_unmapped_and_alarm_window_applies() -> None:
    sched = ReportScheduler(ReportingConfig(), E25)
    out = run(sched, range(0, 3800), lambda t: snap(t, on=t < 100), fault_at(1000, 1010))
    assert secs(out, Command.REISSUE) == [float(t) for t in range(970, 1000)]
    # inside the monitoring hour the 30 s after the fault point are reported even though it cleared at 1010
    assert [t for t in secs(out, Command.REALTIME) if 100 < t < 3600] == [float(t) for t in range(1000, 1031)]
    assert len([t for t in secs(out, Command.REALTIME) if t >= 3670]) == 31


def test_at_rest_without_alarm_nothing_is_sent() -> None:
    assert run(ReportScheduler(), range(100), lambda t: snap(t, on=False)) == []


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        ReportingConfig(normal_period_s=0)
    with pytest.raises(ConfigError):
        ReportingConfig(hv_off_report_s=4000)
    with pytest.raises(ConfigError):
        ReportScheduler(ReportingConfig(normal_period_s=45), E25)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([E16, E25]),
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 40)), min_size=1, max_size=12),
    st.lists(st.booleans(), min_size=1, max_size=6),
)
def test_stream_invariants(edition: Edition, episodes: list[tuple[int, int]], power: list[bool]) -> None:
    """Random alarm levels and power states: every sample leaves at most once, realtime records come in
    time order, reissues lie in the 30 s before a fault point, level ≥ 3 is reported every second."""
    levels: list[int] = [lv for lv, n in episodes for _ in range(n)]
    total = len(levels)
    fault: float | None = None
    alarms: list[AlarmState] = []
    for t, lv in enumerate(levels):
        fault = (fault if fault is not None else float(t)) if lv >= 3 else None
        alarms.append(level(lv, fault))
    on = [power[(t * len(power)) // total] for t in range(total)]
    out = run(
        ReportScheduler(ReportingConfig(), edition),
        range(total),
        lambda t: snap(t, on=on[int(t)]),
        lambda t: alarms[int(t)],
    )
    times = secs(out)
    assert len(times) == len(set(times))
    rt = secs(out, Command.REALTIME)
    assert rt == sorted(rt)
    faults = {(a.fault_point - T0).total_seconds() for a in alarms if a.fault_point is not None}
    for o in out:
        if o.command == Command.REISSUE:
            t = (o.time - T0).total_seconds()
            assert any(f - 30 <= t < f for f in faults)
    for t, lv in enumerate(levels):
        if lv >= 3:
            assert float(t) in rt


def test_stale_power_state_holds() -> None:
    sched = ReportScheduler()

    def s(t: float) -> Snapshot:
        if 20 <= t < 60:
            return Snapshot(
                time=T0 + timedelta(seconds=t),
                vehicle=MappingProxyType(
                    {"vehicle_state": Special.INVALID, "charging_state": Special.INVALID}
                ),
            )
        return snap(t)

    assert secs(run(sched, range(61), s)) == [float(t) for t in range(0, 61, 10)]


def test_hv_off_monitoring_ends_when_hv_returns_and_after_the_hour() -> None:
    sched = ReportScheduler(ReportingConfig(), E25)
    run(sched, range(0, 200), lambda t: snap(t, on=t < 100, hv=t < 100))
    assert sched.needs_sampling(T0 + timedelta(seconds=199))
    out = run(sched, range(200, 260), lambda t: snap(t, on=True, hv=True))
    assert secs(out) == [200.0, 210.0, 220.0, 230.0, 240.0, 250.0]
    later = ReportScheduler(ReportingConfig(), E25)
    run(later, range(0, 3800), lambda t: snap(t, on=t < 10, hv=t < 10))
    assert not later.needs_sampling(T0 + timedelta(seconds=3799))
