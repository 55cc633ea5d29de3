"""Alert and grouping settings from DLQ_* variables: parsed at start, errors name the rule."""

from __future__ import annotations

import json

import pydantic
import pytest
from typer.testing import CliRunner

from dlq import AlertRule, DLQConfig, DLQSettings
from dlq._cli import app

RULES = [{"name": "new", "kind": "new_group",
          "webhooks": [{"url": "https://hooks.example.com/x", "format": "slack"}]},
         {"name": "backlog", "kind": "review_backlog", "threshold": 10, "domain": "payment",
          "cooldown_seconds": 60, "webhooks": [{"url": "http://127.0.0.1:9/a",
                                                "headers": {"Authorization": "Bearer t"}}]}]


def test_rules_and_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_ALERT_RULES", json.dumps(RULES))
    monkeypatch.setenv("DLQ_ALERTS_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("DLQ_CONSOLE_URL", "https://dlq.example.com")
    monkeypatch.setenv("DLQ_GROUPING_ENABLED", "false")
    config = DLQConfig.from_settings(DLQSettings(temporal_envconfig=False))
    assert [r.name for r in config.alert_rules] == ["new", "backlog"]
    assert all(isinstance(r, AlertRule) for r in config.alert_rules)
    backlog = config.alert_rules[1]
    assert (backlog.limit, backlog.domain, backlog.cooldown_seconds) == (10, "payment", 60)
    assert backlog.webhooks[0].headers == {"Authorization": "Bearer t"}
    assert config.alert_rules[0].webhooks[0].format == "slack"
    assert config.alert_rules[0].limit == 0 and config.alert_rules[0].window_minutes == 15
    assert (config.alerts_interval_seconds, config.console_url) == (30, "https://dlq.example.com")
    assert config.grouping_enabled is False
    assert DLQConfig().alert_rules == () and DLQConfig().grouping_enabled is True


def test_rules_built_in_code_are_checked_too() -> None:
    config = DLQConfig(alert_rules=tuple(RULES))  # type: ignore[arg-type]
    assert config.alert_rules[1].name == "backlog"
    with pytest.raises(ValueError, match=r"alert rule 0 \('x'\): threshold"):
        DLQConfig(alert_rules=({"name": "x", "kind": "outbox", "threshold": -1,  # type: ignore
                                "webhooks": [{"url": "http://h"}]},))


def test_a_malformed_rule_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_ALERT_RULES", json.dumps([{**RULES[0], "name": "bad name!"}]))
    with pytest.raises(pydantic.ValidationError, match=r"alert rule 0 \('bad name!'\): name"):
        DLQSettings()
    monkeypatch.setenv("DLQ_ALERT_RULES", json.dumps([{**RULES[0], "colour": "red"}]))
    with pytest.raises(pydantic.ValidationError, match="colour: Extra inputs"):
        DLQSettings()


def test_the_cli_says_which_rule_is_wrong_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_ALERT_RULES", '[{"name": "r", "kind": "group_rate", '
                                          '"webhooks": [{"url": "http://x"}]}]')
    out = CliRunner().invoke(app, ["alerts"])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.output
    assert "DLQ_ALERT_RULES" in lines[0] and "needs 'threshold'" in lines[0]
