"""End to end: malformed input never crashes the agent; it is counted and logged once per kind.

The simulator's bus faults (wrong DLC, bad CRC, bad alive counter, error frames) run together for 30 s,
plus injected unknown ids (11- and 29-bit), remote frames, empty / truncated frames of mapped ids,
CAN FD frames and garbage lines in the log. Every record the agent still sends must hold either the
truth (within resolution) or the invalid code — never a wrong or stale value.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import pytest

from agent.cli import main
from agent.pipeline import MALFORMED_KINDS
from sim.bus_faults import BUS_SCENARIOS
from sim.ecus import RawFrame

from .e2e_support import compare, decode_lines, record, write_config

START_S, DURATION_S = 10.0, 30.0


def _garbage(seed: int = 7) -> object:
    rng = random.Random(seed)

    def inject(frames: list[RawFrame], t0: float, t1: float) -> list[RawFrame]:
        if not START_S <= t0 < START_S + DURATION_S:
            return frames
        extra: list[RawFrame] = [
            (t0 + 0.0101, 0x7FF, bytes(rng.randrange(256) for _ in range(rng.randrange(9)))),  # unknown id
            (t0 + 0.0202, 0x18FF50E5, bytes(8)),  # unknown 29-bit id
            (t0 + 0.0303, 0x180, b""),  # BMS_CellVoltages without its multiplexer byte
            (t0 + 0.0404, 0x121, bytes((rng.randrange(256),))),  # BMS_Status cut to 1 byte
        ]
        return sorted(frames + extra, key=lambda f: f[0])

    return inject


def _faults() -> list[object]:
    common = {"start_s": START_S, "duration_s": DURATION_S}
    return [
        BUS_SCENARIOS["wrong-dlc"].fresh(**common).apply,
        BUS_SCENARIOS["bad-crc"].fresh(every=3, **common).apply,
        BUS_SCENARIOS["bad-counter"].fresh(every=3, **common).apply,
        BUS_SCENARIOS["error-frames"].fresh(**common).apply,
    ]


def _add_garbage_lines(log: Path) -> int:
    lines = log.read_text().splitlines(keepends=True)
    junk = [
        "garbage\n",
        "(1735689620.000000) can0 12G#00\n",
        "(1735689620.000000) can0 123#0011223\n",
        "(not-a-time) can0 123#00\n",
        "(1735689620.000000) can0 123#00112233445566778899\n",
        "\x00\x01\x02\n",
    ]
    out: list[str] = []
    inserted = 0
    for i, line in enumerate(lines):
        out.append(line)
        if i % 5000 == 2500:
            out.append(junk[inserted % len(junk)])
            inserted += 1
    # a remote frame and a CAN FD frame of a mapped id
    out.insert(len(out) // 2, lines[len(lines) // 2].split(")")[0] + ") can0 120#R\n")
    out.insert(len(out) // 2, lines[len(lines) // 2].split(")")[0] + ") can0 7F0##1" + "00" * 64 + "\n")
    log.write_text("".join(out))
    return inserted


@pytest.mark.parametrize("edition", [2016, 2025])
def test_malformed_frames_are_counted_and_logged_once_per_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], edition: int
) -> None:
    rec = record(tmp_path / "bad.log", seconds=60.0, post=[*_faults(), _garbage()])  # type: ignore[list-item]
    junk = _add_garbage_lines(rec.log)
    cfg = write_config(tmp_path, edition, "[report]\nnormal_period_s = 1\n")
    out = tmp_path / "out.hex"
    with caplog.at_level(logging.INFO):
        rc = main(["replay", str(rec.log), "--config", str(cfg), "--out", str(out)])
    assert rc == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("tbox replay: ")

    # every kind was seen, and each was logged exactly once by the pipeline
    pipeline_logs = [r.getMessage() for r in caplog.records if r.name == "agent.pipeline"]
    for kind in ("error-frame", "remote-frame", "unknown-id", "short-frame", "no-mux", "check-failure"):
        text = MALFORMED_KINDS[kind]
        assert sum(text in m for m in pipeline_logs) == 1, (kind, pipeline_logs)
    # the log reader's and the sampler's own once-per-kind messages: not per frame either
    corrupt = [r for r in caplog.records if "corrupt" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(corrupt) == 1, [r.getMessage() for r in corrupt]
    per_message = [r.getMessage() for r in caplog.records if r.name == "agent.canbus.sampler"]
    assert len(per_message) == len(set(per_message))
    assert len(caplog.records) < 40, [r.getMessage() for r in caplog.records]

    # counted (figures in the summary line)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (error|short|no mux|check|unknown id)\b", summary)}
    assert 500 <= counts["error"] <= 700, summary  # 20 per second for 30 s
    # shorter than the mapped signals need: the injected 1-byte BMS_Status and empty BMS_CellVoltages (the
    # DLC-6 VCU_VehicleStatus still carries its mapped signals: its CRC over 6 bytes fails instead)
    assert counts["short"] >= 2 * 300, summary
    assert counts["no mux"] == 300, summary  # one injected empty BMS_CellVoltages per 0.1 s
    # sampled frames failing CRC / counter (1 Hz sampling): VCU_VehicleStatus (wrong DLC) every sample
    assert counts["check"] >= 30, summary
    assert counts["unknown id"] > 2 * 300, summary
    assert junk > 0

    # what was sent is right or invalid, never wrong
    frames = decode_lines(out)
    assert len(frames) >= 58
    _, bad = compare(frames, rec, edition)
    wrong = [b for b in bad if "Special.INVALID" not in b and "reported" not in b]
    assert not wrong, wrong[:20]
    invalid = [b for b in bad if "Special.INVALID" in b]
    assert invalid, "the faults made some fields invalid"
    times = {float(b.split(" at ")[1].split(":")[0]) for b in invalid}
    assert all(START_S <= t <= START_S + DURATION_S + 3 for t in times), sorted(times)


def test_a_log_of_pure_garbage_gives_no_frames_and_no_crash(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "junk.log"
    log.write_text("garbage\n\x00\x01\n(1.0) can0 ZZZ#00\n(2.0) can0 123#00\n")
    out = tmp_path / "out.hex"
    assert main(["replay", str(log), "--config", str(write_config(tmp_path)), "--out", str(out)]) == 0
    assert out.read_text() == ""
    assert "tbox replay: 1 frames read" in capsys.readouterr().err


def test_missing_log_and_bad_config_are_one_line_errors(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["replay", str(tmp_path / "nope.log"), "--config", str(cfg), "--out", "x.hex"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.log" in err and "no such" in err
    log = tmp_path / "a.log"
    log.write_text("(1.0) can0 123#00\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text() + "\n[report]\nperiod = 3\n")
    assert main(["replay", str(log), "--config", str(bad), "--out", str(tmp_path / "o.hex")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.toml:report.period: unknown key" in err
    missing_mapping = tmp_path / "mm.toml"
    missing_mapping.write_text(cfg.read_text().replace("tbox_ev.toml", "nope.toml"))
    assert main(["replay", str(log), "--config", str(missing_mapping), "--out", str(tmp_path / "o.hex")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "can.mapping" in err and "nope.toml" in err


def test_a_silent_ecu_gives_invalid_codes_never_its_last_values(tmp_path: Path) -> None:
    """The BMS stops sending for 10 s: its fields go invalid once stale, the rest stays exact."""
    silent = BUS_SCENARIOS["ecu-silent"].fresh(start_s=20.0, duration_s=10.0)
    rec = record(tmp_path / "silent.log", seconds=45.0, post=[silent.apply])
    out = tmp_path / "out.hex"
    cfg = write_config(tmp_path, 2016, "[report]\nnormal_period_s = 1\n")
    assert main(["replay", str(rec.log), "--config", str(cfg), "--out", str(out)]) == 0
    frames = decode_lines(out)
    _, bad = compare(frames, rec, 2016)
    wrong = [b for b in bad if "Special.INVALID" not in b]
    assert not wrong, wrong[:20]
    invalid_at: dict[float, set[str]] = {}
    for b in bad:
        name, rest = b.split(" at ")
        invalid_at.setdefault(float(rest.split(":")[0]), set()).add(name)
    bms = {"soc", "total_voltage", "total_current", "cell_voltage", "temperature"}
    # stale after 3 cycle times (30 ms .. 1.5 s for the slowest mux sweep), back with the first frames
    for t in range(23, 31):
        assert bms <= invalid_at.get(float(t), set()), (t, invalid_at.get(float(t)))
    assert all(20.0 <= t <= 31.0 for t in invalid_at), sorted(invalid_at)
    assert all(names <= bms for names in invalid_at.values())
