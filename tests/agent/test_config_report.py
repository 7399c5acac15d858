"""agent.config [report]: its own keys plus the cadence's ReportingConfig fields, generically."""

from __future__ import annotations

from agent.config import parse_config
from agent.report.cadence import ReportingConfig

from .test_config import MINIMAL, _err


def test_report_builds_the_cadence_config() -> None:
    s = parse_config(MINIMAL + "[report]\nnormal_period_s = 5\npre_fault_include_sent = true\n"
                     "post_power_off_s = 60\n", "x.toml")
    cfg = s.reporting_config()
    assert isinstance(cfg, ReportingConfig)
    assert (cfg.normal_period_s, cfg.alarm_period_s, cfg.alarm_window_s) == (5.0, 1.0, 30.0)
    assert cfg.pre_fault_include_sent is True and cfg.post_power_off_s == 60.0
    assert parse_config(MINIMAL, "x.toml").reporting_config() == ReportingConfig()


def test_cadence_keys_are_type_checked_and_unknown_ones_refused() -> None:
    err = _err(MINIMAL + "[report]\npre_fault_include_sent = 'yes'\n")
    assert err.key == "report.pre_fault_include_sent" and "true or false" in err.reason
    err = _err(MINIMAL + "[report]\nperiod = 3\n")
    assert err.key == "report.period" and "unknown key" in err.reason
    err = _err(MINIMAL + "[report]\nalarm_level = 7\n")  # the cadence's own check, at load time
    assert err.file == "/etc/tbox/agent.toml" and "alarm_level" in (err.key or "") + err.reason
