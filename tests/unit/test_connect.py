"""Where and how the DLQ connects: Temporal's environment configuration, DLQ_*, hooks.

No server: these check the options every client is built with. The
connections themselves (TLS, mTLS, API key, hooks in every process) are in
``tests/integration/test_connections.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio import client as temporal_client
from temporalio import worker as temporal_worker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from dlq import DLQConfig, DLQSettings, TemporalHooks
from dlq._connect import (
    BUILTIN_HOOKS,
    client_options,
    describe,
    resolve_hooks,
    worker_interceptors,
)
from tests.support.tls import make_pki


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Temporal or DLQ connection variables from the machine; no default TOML file."""
    import os

    for name in list(os.environ):
        if name.startswith("TEMPORAL_") or name.startswith("DLQ_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.config/temporalio/temporal.toml: none
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def test_defaults_are_a_local_plaintext_server() -> None:
    config = DLQConfig.from_settings()
    assert (config.temporal_address, config.namespace) == ("localhost:7233", "default")
    options = client_options(config)
    assert "tls" not in options and "api_key" not in options
    assert options["data_converter"] is pydantic_data_converter
    assert describe(config) == "localhost:7233/default (plaintext)"


def test_temporal_variables_name_the_server_unless_dlq_variables_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "payments")
    config = DLQConfig.from_settings()
    assert (config.temporal_address, config.namespace) == ("temporal.example:7233", "payments")
    monkeypatch.setenv("DLQ_TEMPORAL_ADDRESS", "dlq-temporal:7233")
    config = DLQConfig.from_settings()
    assert (config.temporal_address, config.namespace) == ("dlq-temporal:7233", "payments")
    monkeypatch.setenv("DLQ_TEMPORAL_ENVCONFIG", "false")
    assert DLQConfig.from_settings().namespace == "default"


def test_an_api_key_turns_tls_on_and_is_never_described(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "ns.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_API_KEY", "secret-key")
    config = DLQConfig.from_settings()
    options = client_options(config)
    assert options["api_key"] == "secret-key" and options["tls"] is True
    assert describe(config) == "ns.a1b2c.tmprl.cloud:7233/default (TLS, API key)"
    assert "secret" not in describe(config)
    # DLQ_TEMPORAL_ENVCONFIG=false: Temporal's configuration is not read at all.
    assert "api_key" not in client_options(dataclasses.replace(config,
                                                               temporal_envconfig=False))


def _toml(path: Path, pki_dir: Path, *, client_cert: bool = True) -> Path:
    pki = make_pki(pki_dir)
    lines = ["[profile.prod]", 'address = "temporal.prod:7233"', 'namespace = "prod"',
             "[profile.prod.tls]", f'server_ca_cert_path = "{pki.ca}"',
             'server_name = "temporal.prod"']
    if client_cert:
        lines += [f'client_cert_path = "{pki.client_cert}"',
                  f'client_key_path = "{pki.client_key}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_profile_gives_mtls_with_the_files_it_names(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    toml = _toml(tmp_path / "temporal.toml", tmp_path)
    monkeypatch.setenv("DLQ_TEMPORAL_PROFILE", "prod")
    monkeypatch.setenv("DLQ_TEMPORAL_CONFIG_FILE", str(toml))
    config = DLQConfig.from_settings()
    assert (config.temporal_address, config.namespace) == ("temporal.prod:7233", "prod")
    tls = client_options(config)["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == "temporal.prod"
    assert tls.server_root_ca_cert == (tmp_path / "ca.pem").read_bytes()
    assert tls.client_cert == (tmp_path / "client.pem").read_bytes()
    assert tls.client_private_key == (tmp_path / "client-key.pem").read_bytes()
    assert describe(config) == "temporal.prod:7233/prod (TLS, mTLS client certificate)"
    # TEMPORAL_PROFILE and TEMPORAL_CONFIG_FILE do the same.
    monkeypatch.delenv("DLQ_TEMPORAL_PROFILE")
    monkeypatch.delenv("DLQ_TEMPORAL_CONFIG_FILE")
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    assert DLQConfig.from_settings().namespace == "prod"


@pytest.mark.parametrize(("setup", "message"), [
    ("missing_profile", "cannot load Temporal profile 'staging'"),
    ("missing_file", "does not exist"),
    ("missing_cert", "cannot read a TLS file"),
])
def test_a_broken_connection_configuration_is_a_clear_error(
        setup: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = _toml(tmp_path / "temporal.toml", tmp_path)
    monkeypatch.setenv("DLQ_TEMPORAL_CONFIG_FILE", str(toml))
    monkeypatch.setenv("DLQ_TEMPORAL_PROFILE", "prod")
    if setup == "missing_profile":
        monkeypatch.setenv("DLQ_TEMPORAL_PROFILE", "staging")
    elif setup == "missing_file":
        monkeypatch.setenv("DLQ_TEMPORAL_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ValueError, match=message):
        config = DLQConfig.from_settings()
        if setup == "missing_cert":
            (tmp_path / "client.pem").unlink()
        client_options(config)


class _ClientOnly(temporal_client.Interceptor):
    pass


class _WorkerOnly(temporal_worker.Interceptor):
    pass


class _Both(temporal_client.Interceptor, temporal_worker.Interceptor):
    pass


def _tag(name: str):
    def convert(converter: DataConverter) -> DataConverter:
        tags = getattr(converter, "tags", ())
        converter = dataclasses.replace(converter)
        object.__setattr__(converter, "tags", (*tags, name))
        return converter
    return convert


FIRST = TemporalHooks(data_converter=_tag("first"), interceptors=[_ClientOnly(), _Both()],
                      plugins=["plugin-a"])


def second_hooks(config: DLQConfig) -> TemporalHooks:
    """A hook factory: gets the configuration."""
    return TemporalHooks(data_converter=_tag(f"second:{config.namespace}"),
                         interceptors=[_WorkerOnly()])


def test_hooks_combine_in_order_and_each_side_gets_its_interceptors() -> None:
    config = DLQConfig(temporal_envconfig=False, namespace="ns",
                       temporal_hooks=(FIRST, "tests.unit.test_connect:second_hooks"))
    options = client_options(config)
    assert options["data_converter"].tags == ("first", "second:ns")
    assert [type(i) for i in options["interceptors"]] == [_ClientOnly, _Both]
    assert options["plugins"] == ["plugin-a"]
    # _Both reaches workers through the client; the worker adds only _WorkerOnly.
    assert [type(i) for i in worker_interceptors(config)] == [_WorkerOnly]


def test_the_projects_own_hooks_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dlq._connect.BUILTIN_HOOKS",
                        [*BUILTIN_HOOKS, lambda config: TemporalHooks(
                            data_converter=_tag("builtin")), lambda config: None])
    config = DLQConfig(temporal_envconfig=False, temporal_hooks=(FIRST,))
    assert resolve_hooks(config).convert(pydantic_data_converter).tags == ("builtin", "first")


def test_hooks_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_TEMPORAL_HOOKS", "tests.unit.test_connect:FIRST, "
                                             "tests.unit.test_connect:second_hooks")
    config = DLQConfig.from_settings()
    assert len(config.temporal_hooks) == 2
    assert client_options(config)["data_converter"].tags == ("first", "second:default")


@pytest.mark.parametrize(("spec", "message"), [
    ("tests.unit.test_connect", "must be 'module:attribute'"),
    ("tests.no_such_module:hooks", "cannot load Temporal hooks"),
    ("tests.unit.test_connect:nothing_here", "cannot load Temporal hooks"),
    ("tests.unit.test_connect:_Both", "must be a dlq.TemporalHooks"),
])
def test_a_bad_hook_is_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_options(DLQConfig(temporal_envconfig=False, temporal_hooks=(spec,)))


def test_settings_fields_match_the_config() -> None:
    settings = DLQSettings(temporal_hooks="a:b, c:d", shutdown_grace=5)
    assert settings.temporal_hooks == ("a:b", "c:d") and settings.shutdown_grace == 5
    with pytest.raises(ValueError, match="shutdown_grace"):
        DLQConfig(shutdown_grace=-1)
