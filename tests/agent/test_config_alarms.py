"""agent.config [alarms]: keys and types come from agent.report.alarms.AlarmConfig."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from agent.config import parse_config

from .test_config import MINIMAL, _err

# ----------------------------------------------------------------------------------- [alarms]

alarms = pytest.importorskip("agent.report.alarms", reason="agent.report.alarms (AlarmConfig) not landed yet")


def _scalar_fields() -> list[dataclasses.Field[object]]:
    cls = alarms.AlarmConfig
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if hints[f.name] in (float, int)]


def test_alarm_thresholds_are_built_from_the_alarm_config_fields() -> None:
    fields = _scalar_fields()
    assert fields, "AlarmConfig has no numeric threshold"
    f = fields[0]
    default = getattr(alarms.AlarmConfig(), f.name)
    s = parse_config(MINIMAL + f"[alarms]\n{f.name} = {default + 1}\n", "x.toml")
    cfg = s.alarm_config()
    assert isinstance(cfg, alarms.AlarmConfig)
    assert getattr(cfg, f.name) == default + 1
    assert parse_config(MINIMAL, "x.toml").alarm_config() == alarms.AlarmConfig()


def test_unknown_or_mistyped_alarm_keys_are_errors() -> None:
    err = _err(MINIMAL + "[alarms]\nno_such_threshold = 3\n")
    assert err.key == "alarms.no_such_threshold" and "unknown key" in err.reason
    f = _scalar_fields()[0]
    err = _err(MINIMAL + f"[alarms]\n{f.name} = 'hot'\n")
    assert err.key == f"alarms.{f.name}" and "expected" in err.reason
