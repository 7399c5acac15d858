"""agent.pipeline: time from frame timestamps, tick grid, GNSS positions, counters, callbacks."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import Settings, load_config, parse_config
from agent.pipeline import AgentPipeline, Emitted
from agent.protocol.codec import decode_frame
from agent.protocol.model import Command, Location2025, LocationStatus
from agent.report.snapshot import Position
from sim.run import simulate

from .e2e_support import MAPPING, START, VIN, block, report_of, sim_seconds, write_config


def _settings(tmp: Path, extra: str = "", edition: int = 2025) -> Settings:
    return load_config(write_config(tmp, edition, extra))


_SETTINGS = {
    ed: parse_config(
        f'[vehicle]\nvin = "{VIN}"\nedition = {ed}\n[can]\nmapping = "{MAPPING}"\ninterface = "virtual"\n'
        "[report]\nnormal_period_s = 1\n",
        "fuzz.toml",
    )
    for ed in (2016, 2025)
}


def _messages(seconds: float = 12.0) -> list[can.Message]:
    return list(simulate(None, "wltc3", 1, seconds, start_utc=START))


def test_ticks_on_whole_seconds_with_the_frames_received_before(tmp_path: Path) -> None:
    samples: list[float] = []
    p = AgentPipeline(_settings(tmp_path), on_sample=lambda s, a: samples.append(sim_seconds(s.time)))
    msgs = _messages()
    seen_at_tick: dict[float, float] = {}
    for m in msgs:
        before = len(samples)
        p.feed(m)
        if len(samples) > before:
            seen_at_tick[samples[-1]] = m.timestamp - START.timestamp()
    assert samples == [float(t) for t in range(1, 12)]
    # each tick ran when the first frame at or after it arrived, before that frame was stored
    assert all(t <= at < t + 0.01 for t, at in seen_at_tick.items())
    assert p.stats.samples == 11 and p.stats.frames == len(msgs)
    p.finish()
    assert p.stats.samples == 11  # the last frame (11.99 s) has not reached the 12 s tick


def test_tick_runs_due_samples_without_frames(tmp_path: Path) -> None:
    samples: list[float] = []
    p = AgentPipeline(_settings(tmp_path), on_sample=lambda s, a: samples.append(sim_seconds(s.time)))
    for m in _messages(3.0):
        p.feed(m)
    p.tick(START.timestamp() + 6.5)
    assert samples == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_sampling_period_half_a_second(tmp_path: Path) -> None:
    samples: list[float] = []
    p = AgentPipeline(_settings(tmp_path, "[report]\nsampling_period_s = 0.5\n"),
                      on_sample=lambda s, a: samples.append(sim_seconds(s.time)))
    for m in _messages(4.0):
        p.feed(m)
    assert samples == [0.5 * k for k in range(1, 8)]


def test_emitted_frames_are_encoded_reports_of_the_configured_vin_and_edition(tmp_path: Path) -> None:
    got: list[Emitted] = []
    p = AgentPipeline(_settings(tmp_path), on_emit=got.append)
    returned = [e for m in _messages(25.0) for e in p.feed(m)]
    assert returned == got and len(got) == 3  # at 1, 11, 21 s
    for e in got:
        frame = decode_frame(e.frame)
        assert frame.command is Command.REALTIME and e.command is Command.REALTIME
        assert frame.vin == p.vin and int(frame.edition) == 2025
        assert report_of(frame) == e.report and e.time == e.snapshot.time
    assert p.stats.realtime == 3 and p.stats.reissue == 0


def test_positions_are_attached_and_age_out(tmp_path: Path) -> None:
    p = AgentPipeline(_settings(tmp_path, "[gnss]\nsource = 'serial:/dev/null'\nmax_age_s = 3\n"
                                         "[report]\nnormal_period_s = 1\n"))
    fix = Position(30.25, 120.13, True, time=START + timedelta(seconds=1.5))
    p.feed_position(fix)
    out = [e for m in _messages(8.0) for e in p.feed(m)]
    by_time = {sim_seconds(e.time): e for e in out}
    assert by_time[2.0].snapshot.position == fix
    loc = block(report_of(decode_frame(by_time[2.0].frame)), Location2025)
    assert not loc.status & LocationStatus.INVALID_FIX
    assert abs(loc.latitude - 30.25) < 1e-6 and abs(loc.longitude - 120.13) < 1e-6
    late = by_time[5.0].snapshot.position  # 3.5 s old: the last position, flagged invalid
    assert late is not None and not late.valid and late.latitude == 30.25
    loc = block(report_of(decode_frame(by_time[5.0].frame)), Location2025)
    assert loc.status & LocationStatus.INVALID_FIX


def test_positions_are_ignored_without_gnss(tmp_path: Path) -> None:
    p = AgentPipeline(_settings(tmp_path, "[report]\nnormal_period_s = 1\n"))
    p.feed_position(Position(30.25, 120.13, True, time=START))
    out = [e for m in _messages(3.0) for e in p.feed(m)]
    assert out and all(e.snapshot.position is None for e in out)


def test_error_remote_and_backward_frames_are_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = AgentPipeline(_settings(tmp_path))
    msgs = _messages(5.0)
    t0 = msgs[0].timestamp
    with caplog.at_level(logging.INFO, logger="agent.pipeline"):
        for i, m in enumerate(msgs):
            p.feed(m)
            if i % 100 == 0:
                p.feed(can.Message(timestamp=m.timestamp, is_error_frame=True))
                p.feed(can.Message(timestamp=m.timestamp, arbitration_id=0x120, is_remote_frame=True))
                p.feed(can.Message(timestamp=t0, arbitration_id=0x7FF, data=b"\x01"))  # old and unknown
    p.finish()  # the counters are read from the cache at each tick and at the end
    n = len(msgs[::100])
    assert p.stats.error_frames == n and p.stats.remote_frames == n
    assert p.stats.out_of_order == n - 1  # the first one is not behind anything
    assert p.stats.unknown_frames >= n
    messages = [r.getMessage() for r in caplog.records]
    for text in ("error frames", "remote (RTR)", "going backwards", "ids the mapping does not use"):
        assert sum(text in m for m in messages) == 1, (text, messages)
    assert p.stats.by_kind["error-frame"] == n


_MAPPED_IDS = (0x0A0, 0x0A1, 0x0B0, 0x0B1, 0x100, 0x101, 0x120, 0x121, 0x122, 0x123, 0x125, 0x180, 0x181,
               0x210, 0x2A0, 0x2A1, 0x3F0)


@settings(max_examples=max(50, settings().max_examples // 2))  # HYPOTHESIS_PROFILE=thorough: 1000
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 40.0),
            st.one_of(st.sampled_from(_MAPPED_IDS), st.integers(0, 0x1FFFFFFF)),
            st.binary(max_size=64),
            st.sampled_from(["data", "data", "data", "error", "remote", "extended"]),
        ),
        max_size=400,
    ),
    st.sampled_from([2016, 2025]),
)
def test_arbitrary_frames_never_crash_the_pipeline(
    frames: list[tuple[float, int, bytes, str]], edition: int
) -> None:
    """Random ids, payloads (any length), kinds and timestamps (also backwards): counted, never raised;
    whatever is emitted decodes."""
    p = AgentPipeline(_SETTINGS[edition])
    base = START.timestamp()
    out: list[Emitted] = []
    # a real start so that reports flow, then the noise
    for m in _messages(2.0):
        out += p.feed(m)
    for t, can_id, data, kind in frames:
        ts = base + 2.0 + t
        if kind == "error":
            msg = can.Message(timestamp=ts, is_error_frame=True)
        elif kind == "remote":
            msg = can.Message(timestamp=ts, arbitration_id=can_id & 0x7FF, is_remote_frame=True)
        else:
            ext = kind == "extended" or can_id > 0x7FF
            msg = can.Message(timestamp=ts, arbitration_id=can_id, is_extended_id=ext, data=data,
                              is_fd=len(data) > 8, check=False)
        out += p.feed(msg)
    out += p.finish()
    for e in out:
        assert decode_frame(e.frame).vin == p.vin
