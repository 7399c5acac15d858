"""agent.config [alarms]: keys and types come from agent.report.alarms.AlarmConfig (no config code)."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.protocol.model import AlarmLevel, GeneralAlarmFlag
from agent.report import alarms

from .test_config import MINIMAL, _err

F = GeneralAlarmFlag


def test_without_alarms_the_engine_gets_the_nmc_defaults() -> None:
    assert parse_config(MINIMAL, "x.toml").alarm_config() == alarms.AlarmConfig.nmc()


def test_overrides_reach_nested_rules_thresholds_and_debounce() -> None:
    s = parse_config(
        MINIMAL
        + """
[alarms]
charge_current = 3
[alarms.rules.cell_overvoltage]
thresholds = [{ level = 2, set = 4.20, clear = 4.15 }, { level = 3, set = 4.3, clear = 4.25 }]
debounce = { set_samples = 3 }
[alarms.rules.insulation]
enabled = false
[alarms.thermal]
rise_rate = 2
""",
        "x.toml",
    )
    cfg = s.alarm_config()
    nmc = alarms.AlarmConfig.nmc()
    assert cfg.charge_current == 3.0
    rule = cfg.rules[F.CELL_OVERVOLTAGE]
    assert [(t.level, t.set, t.clear) for t in rule.thresholds] == [
        (AlarmLevel.LEVEL_2, 4.20, 4.15),
        (AlarmLevel.LEVEL_3, 4.3, 4.25),
    ]
    assert rule.debounce.set_samples == 3
    assert rule.debounce.clear_samples == nmc.rules[F.CELL_OVERVOLTAGE].debounce.clear_samples
    assert rule.fault_level == nmc.rules[F.CELL_OVERVOLTAGE].fault_level
    assert cfg.rules[F.INSULATION].enabled is False
    assert cfg.rules[F.INSULATION].thresholds == nmc.rules[F.INSULATION].thresholds
    assert cfg.thermal.rise_rate == 2.0 and cfg.thermal.rise_seconds == nmc.thermal.rise_seconds
    assert cfg.rules[F.LOW_SOC] == nmc.rules[F.LOW_SOC]


def test_preset_selects_the_base() -> None:
    s = parse_config(MINIMAL + "[alarms]\npreset = 'lfp'\n", "x.toml")
    assert s.alarm_config() == alarms.AlarmConfig.lfp()


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ("[alarms]\nno_such_threshold = 3", "alarms.no_such_threshold", "unknown key"),
        ("[alarms]\ncharge_current = 'lots'", "alarms.charge_current", "expected a number"),
        ("[alarms]\npreset = 'lead-acid'", "alarms.preset", "nmc"),
        ("[alarms.rules.sunburn]\nenabled = false", "alarms.rules.sunburn", "expected one of"),
        ("[alarms.rules.low_soc]\nthresholds = [{ level = 1 }]", "alarms.rules.low_soc.thresholds[0]",
         "missing set, clear"),
        ("[alarms.rules.low_soc.debounce]\nset_samples = 'two'", "alarms.rules.low_soc.debounce.set_samples",
         "expected an integer"),
        ("[alarms.rules.low_soc]\nfault_level = 'extreme'", "alarms.rules.low_soc.fault_level", "level_3"),
        # the engine's own validation (AlarmConfig.__post_init__) runs at load time, with the file named
        ("[alarms.rules.cell_overvoltage]\nthresholds = [{ level = 2, set = 4.0, clear = 4.1 }]",
         "alarms.cell_overvoltage", "clear 4.1 above set 4.0"),
    ],
)
def test_alarm_errors_name_the_key(table: str, key: str, words: str) -> None:
    err = _err(MINIMAL + table)
    assert err.key == key
    assert words in err.reason
    assert err.file == "/etc/tbox/agent.toml"
