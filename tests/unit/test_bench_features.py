"""The benchmarks' features on/off settings (bench/_features.py): what each side turns on."""

from __future__ import annotations

import pytest

from bench._features import FEATURES, feature_settings, side_config
from dlq import DLQConfig


def _config(settings: dict[str, str]) -> DLQConfig:
    return side_config(DLQConfig(temporal_envconfig=False), settings)


def test_all_on_is_what_production_runs() -> None:
    config = _config(feature_settings(FEATURES, metrics_port=9999))
    assert config.metrics_port == 9999
    assert config.grouping_enabled is True
    assert config.redact_enabled is True
    assert config.key_ring is not None


def test_all_off_turns_every_feature_off() -> None:
    settings = feature_settings(())
    config = _config(settings)
    assert "DLQ_ENCRYPTION_KEYS" not in settings
    assert config.metrics_port == 0
    assert config.grouping_enabled is False
    assert config.redact_enabled is False
    assert config.key_ring is None


def test_one_feature_alone_leaves_the_others_off() -> None:
    config = _config(feature_settings(("grouping",)))
    assert (config.grouping_enabled, config.redact_enabled, config.metrics_port) == (True, False, 0)


def test_scope_leaves_features_outside_it_at_the_defaults() -> None:
    settings = feature_settings(("security",), scope=("security",))
    assert set(settings) == {"DLQ_REDACT_ENABLED", "DLQ_ENCRYPTION_KEYS"}
    assert _config(settings).metrics_port == DLQConfig().metrics_port


def test_each_side_gets_its_own_key_ring() -> None:
    first = feature_settings(("security",))["DLQ_ENCRYPTION_KEYS"]
    assert first != feature_settings(("security",))["DLQ_ENCRYPTION_KEYS"]


@pytest.mark.parametrize(("on", "scope", "port", "message"), [
    (("tracing",), FEATURES, 0, "tracing"),
    (("grouping",), ("security",), 0, "grouping"),
    (("metrics",), FEATURES, 0, "metrics_port"),
])
def test_bad_features_are_refused(on: tuple[str, ...], scope: tuple[str, ...], port: int,
                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        feature_settings(on, scope=scope, metrics_port=port)
