"""Configuration: one pydantic-settings class read from ``DLQ_*`` variables."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field, fields
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dlq._alert_rules import AlertRule, parse_alert_rules
from dlq._filters import parse_sla_thresholds
from dlq._keys import LOCAL_KEY_FILE, KeyRing, local_key_ring, parse_key_ring
from dlq._redact import Redactor, parse_redact_allow
from dlq._tokens import ApiToken, parse_api_tokens

__all__ = ["DLQConfig", "DLQSettings"]

# The state folder: absolute, so every command finds the same files from any
# working directory (the SQLite read model, the outbox, `make run`'s server).
DEFAULT_HOME = "~/.dlq"
DEFAULT_TEMPORAL_UI_URL = "http://localhost:8233"
# The local Web UI of `temporal server start-dev`, by both of its names.
DEFAULT_CODEC_CORS_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")


def resolve_home(home: str) -> str:
    """``DLQ_HOME`` as an absolute path (``~`` expanded, relative to the working directory)."""
    return os.path.abspath(os.path.expanduser(home or DEFAULT_HOME))


def default_database_url(home: str) -> str:
    """The SQLite read model inside ``home``."""
    return f"sqlite:///{resolve_home(home)}/dlq.db"


def default_outbox_path(home: str) -> str:
    """The outbox file inside ``home``."""
    return os.path.join(resolve_home(home), "outbox.db")


class DLQSettings(BaseSettings):
    """Environment-backed settings (prefix ``DLQ_``).

    Every field has an embedded default that works on a laptop: Temporal at
    ``localhost:7233``, namespace ``default``, task queue ``dlq`` and a SQLite
    file under ``DLQ_HOME`` (``~/.dlq``). An explicit ``DLQ_DATABASE_URL`` or
    ``DLQ_OUTBOX_PATH`` overrides the path derived from ``DLQ_HOME``.
    """

    model_config = SettingsConfigDict(env_prefix="DLQ_", extra="ignore")

    enabled: bool = True
    retention_days: int = Field(30, ge=1)
    max_replay_attempts: int = Field(2, ge=1)
    retry_delay: float = Field(60.0, gt=0)
    expiry_hours: float = Field(72.0, gt=0)
    batch_size: int = Field(10, ge=1)
    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "dlq"
    home: str = DEFAULT_HOME
    database_url: str = ""
    handler_modules: Annotated[tuple[str, ...], NoDecode] = ()
    auto_replay: bool = True
    store_timeout: float = Field(5.0, gt=0)
    replay_timeout: float = Field(30.0, gt=0)
    command_timeout: float = Field(90.0, gt=0)
    sla_thresholds: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    purge_after_days: int = Field(90, ge=1)
    maintenance_interval_hours: float = Field(24.0, gt=0)
    maintenance_enabled: bool = True
    cursor_secret: str = ""
    outbox_enabled: bool = False
    outbox_path: str = ""
    payload_inline_bytes: int = Field(256 * 1024, ge=1024, le=1024 * 1024)
    payload_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    api_tokens: Annotated[tuple[ApiToken, ...], NoDecode] = ()
    debug: bool = False
    temporal_ui_url: str = DEFAULT_TEMPORAL_UI_URL
    temporal_profile: str = ""
    temporal_config_file: str = ""
    temporal_envconfig: bool = True
    temporal_hooks: Annotated[tuple[Any, ...], NoDecode] = ()
    shutdown_grace: float = Field(30.0, ge=0)
    metrics_port: int = Field(9464, ge=0, le=65535)
    sdk_metrics_port: int = Field(9465, ge=0, le=65535)
    otel_enabled: bool = False
    encryption_keys: str = Field("", repr=False)
    codec_cors_origins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CODEC_CORS_ORIGINS

    @field_validator("encryption_keys")
    @classmethod
    def _check_keys(cls, value: str) -> str:
        # A malformed key ring must stop start-up, naming the bad item (never the key).
        parse_key_ring(value)
        return value
    grouping_enabled: bool = True
    alert_rules: Annotated[tuple[AlertRule, ...], NoDecode] = ()
    alerts_interval_seconds: float = Field(60.0, ge=10)
    console_url: str = ""

    @field_validator("alert_rules", mode="before")
    @classmethod
    def _parse_alert_rules(cls, value: Any) -> tuple[AlertRule, ...]:
        # A malformed rule must stop start-up, naming the rule and its field.
        return parse_alert_rules(value)
    redact_enabled: bool = True
    redact_keys: Annotated[tuple[str, ...], NoDecode] = ()
    redact_allow: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(default_factory=dict)

    @field_validator("redact_allow", mode="before")
    @classmethod
    def _parse_allow(cls, value: Any) -> dict[str, tuple[str, ...]]:
        # A malformed allow list must stop start-up, naming what is wrong.
        return parse_redact_allow(value)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: Any) -> tuple[ApiToken, ...]:
        # A malformed token list must stop start-up, naming the bad item.
        return parse_api_tokens(value)

    @field_validator("sla_thresholds", mode="before")
    @classmethod
    def _parse_sla(cls, value: Any) -> dict[str, float]:
        # Malformed thresholds must stop start-up, not surface at query time.
        return parse_sla_thresholds(value)

    @field_validator("handler_modules", "temporal_hooks", "codec_cors_origins",
                     "redact_keys", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        # A comma-separated list is friendlier in an env file than JSON.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


@dataclass(frozen=True)
class DLQConfig:
    """DLQ runtime configuration.

    The first six fields are the reference service's; the rest say where the
    DLQ's Temporal server and SQL store are.

    Attributes:
        enabled: When False, stores return ``success=False, error="DLQ disabled"``.
        retention_days: Age after which closed entries may be archived.
        max_replay_attempts: Retry budget of a new entry (``max_retries``).
        retry_delay: Seconds before the first automatic replay; later ones back off.
        expiry_hours: Hours after creation at which an open entry expires.
        batch_size: Chunk size of batch operations.
        temporal_address: ``host:port`` of the Temporal frontend.
        namespace: Temporal namespace.
        task_queue: Task queue of the DLQ worker.
        home: The state folder (``DLQ_HOME``, default ``~/.dlq``), made
            absolute; the default database URL and outbox path live in it.
        database_url: SQLAlchemy URL of the SQL read model (default: the
            SQLite file ``dlq.db`` in ``home``).
        handler_modules: Modules the worker imports to register replay handlers.
        auto_replay: Whether entries recommending ``replay`` are retried automatically.
        store_timeout: Seconds a sync store may take before it gives up.
        replay_timeout: Seconds a replay handler may run.
        command_timeout: Seconds an operator command (retry, resolve...) waits
            for its answer before reporting it pending
            (``DLQCommandPendingError``: sent, not confirmed); keep it above
            ``replay_timeout``.
        sla_thresholds: Domain -> seconds an open entry may age before it breaches
            its SLA; ``*`` applies to domains not listed. From JSON such as
            ``{"payment": "15m", "*": "24h"}``.
        purge_after_days: Age after which archived entries are purged by the
            scheduled maintenance.
        maintenance_interval_hours: How often the maintenance schedule runs.
        maintenance_enabled: Whether the worker creates the maintenance schedule.
        cursor_secret: Key that signs list cursors; when empty, a random
            secret kept in ``home/cursor.key`` (mode 0600; set this when
            several hosts serve the same cursors).
        outbox_enabled: Whether ``mode=None`` stores go through the outbox.
        outbox_path: The local outbox file (one per host; the worker drains it
            too; default: ``outbox.db`` in ``home``).
        payload_inline_bytes: Data fields larger than this (JSON bytes, all four
            together) wait in SQL and the workflow carries a reference
            (Temporal rejects payloads over 2 MiB).
        payload_max_bytes: Data larger than this is rejected before anything
            is written.
        api_tokens: Who may use ``dlq serve`` and with which role, from
            ``DLQ_API_TOKENS`` (``name:role:token``, comma-separated).
        debug: Debug mode: ``POST /api/test-entries`` exists only then.
        temporal_ui_url: The Temporal Web UI the console links entries to.
        temporal_profile: Profile of Temporal's environment configuration
            (``temporal.toml``) to connect with; empty means ``TEMPORAL_PROFILE``
            or ``default``.
        temporal_config_file: That TOML file; empty means
            ``TEMPORAL_CONFIG_FILE`` or Temporal's default location.
        temporal_envconfig: Whether to read Temporal's environment
            configuration at all (the profile and ``TEMPORAL_*`` variables:
            TLS, mTLS, API key, gRPC metadata; the address and namespace when
            ``DLQ_TEMPORAL_ADDRESS`` / ``DLQ_NAMESPACE`` are not set).
        temporal_hooks: :class:`~dlq.TemporalHooks` (data converter,
            interceptors, plugins) that every Temporal client and worker the
            DLQ builds gets: objects, or ``module:attribute`` paths to one or
            to a callable taking this configuration and returning one.
        shutdown_grace: Seconds a stopping worker gives running replays and
            the outbox relay before it exits.
        metrics_port: Port of the worker's Prometheus ``/metrics`` (the
            ``dlq_*`` metrics); 0 turns it off. ``dlq serve`` answers
            ``/metrics`` on its own port.
        sdk_metrics_port: Port where the worker's Temporal SDK runtime serves
            its own Prometheus metrics (``temporal_*``); 0 turns it off.
        otel_enabled: Trace with OpenTelemetry: every client and worker gets
            temporalio's ``TracingInterceptor`` (needs the ``otel`` extra; the
            standard ``OTEL_*`` variables configure the OTLP exporter).
        encryption_keys: The key ring, ``DLQ_ENCRYPTION_KEYS``: comma-separated
            ``key_id:base64(32 bytes)``; the first encrypts, all decrypt. When
            set, Temporal payloads, outbox records and the SQL data columns are
            encrypted (AES-256-GCM). Empty: no encryption, unless
            ``from_settings`` finds ``make run``'s ring in ``home``
            (``encryption-keys``) and the read model is the one in ``home``.
        codec_cors_origins: Browser origins (Temporal Web UIs) allowed to call
            the codec server of ``dlq serve``.
        grouping_enabled: Give every new entry a fingerprint and count it in
            its failure group (``dlq groups``).
        alert_rules: :class:`~dlq.AlertRule` list from ``DLQ_ALERT_RULES``
            (JSON); the worker schedules their evaluation when there is one.
        alerts_interval_seconds: How often the alerts schedule evaluates the rules.
        console_url: Base URL of ``dlq serve`` (e.g. ``https://dlq.example.com``)
            that notifications link to; empty: they link to the Temporal Web UI.
        redact_enabled: Whether secrets are replaced with ``[Filtered]`` at
            capture (see ``docs/security.md``).
        redact_keys: Key terms redacted besides the default list
            (``DLQ_REDACT_KEYS``, comma-separated).
        redact_allow: Domain -> dotted paths that stay unredacted
            (``DLQ_REDACT_ALLOW``, JSON), for values a replay handler needs.
    """

    enabled: bool = True
    retention_days: int = 30
    max_replay_attempts: int = 2
    retry_delay: float = 60
    expiry_hours: float = 72
    batch_size: int = 10
    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "dlq"
    home: str = DEFAULT_HOME
    database_url: str = ""
    handler_modules: tuple[str, ...] = ()
    auto_replay: bool = True
    store_timeout: float = 5.0
    replay_timeout: float = 30.0
    command_timeout: float = 90.0
    sla_thresholds: dict[str, float] = field(default_factory=dict)
    purge_after_days: int = 90
    maintenance_interval_hours: float = 24.0
    maintenance_enabled: bool = True
    cursor_secret: str = ""
    outbox_enabled: bool = False
    outbox_path: str = ""
    payload_inline_bytes: int = 256 * 1024
    payload_max_bytes: int = 10 * 1024 * 1024
    api_tokens: tuple[ApiToken, ...] = ()
    debug: bool = False
    temporal_ui_url: str = DEFAULT_TEMPORAL_UI_URL
    temporal_profile: str = ""
    temporal_config_file: str = ""
    temporal_envconfig: bool = True
    temporal_hooks: tuple[Any, ...] = ()
    shutdown_grace: float = 30.0
    metrics_port: int = 9464
    sdk_metrics_port: int = 9465
    otel_enabled: bool = False
    encryption_keys: str = field(default="", repr=False)
    codec_cors_origins: tuple[str, ...] = DEFAULT_CODEC_CORS_ORIGINS
    grouping_enabled: bool = True
    alert_rules: tuple[AlertRule, ...] = ()
    alerts_interval_seconds: float = 60.0
    console_url: str = ""
    redact_enabled: bool = True
    redact_keys: tuple[str, ...] = ()
    redact_allow: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Paths are absolute from here on, so a command run from any folder
        # reads the same files as the worker and `make run`.
        home = resolve_home(self.home)
        object.__setattr__(self, "home", home)
        if not self.database_url:
            object.__setattr__(self, "database_url", default_database_url(home))
        if not self.outbox_path:
            object.__setattr__(self, "outbox_path", default_outbox_path(home))
        object.__setattr__(self, "api_tokens", parse_api_tokens(self.api_tokens))
        # Values built in code skip pydantic, so check the ones that would
        # otherwise fail far from where they were set.
        object.__setattr__(self, "sla_thresholds", parse_sla_thresholds(self.sla_thresholds))
        for name in ("max_replay_attempts", "batch_size", "retention_days", "purge_after_days",
                     "payload_inline_bytes", "payload_max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"DLQConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("retry_delay", "expiry_hours", "store_timeout", "replay_timeout",
                     "command_timeout", "maintenance_interval_hours"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DLQConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("metrics_port", "sdk_metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"DLQConfig.{name} must be a port (0-65535) or 0 for off, "
                                 f"got {getattr(self, name)!r}")
        if self.shutdown_grace < 0:
            raise ValueError(f"DLQConfig.shutdown_grace must be >= 0, got {self.shutdown_grace!r}")
        object.__setattr__(self, "temporal_hooks", tuple(self.temporal_hooks))
        object.__setattr__(self, "codec_cors_origins", tuple(self.codec_cors_origins))
        # Parsed now, so a bad ring fails where it was configured.
        object.__setattr__(self, "_key_ring", parse_key_ring(self.encryption_keys))
        object.__setattr__(self, "alert_rules", parse_alert_rules(self.alert_rules))
        if self.alerts_interval_seconds < 10:
            raise ValueError("DLQConfig.alerts_interval_seconds must be >= 10, got "
                             f"{self.alerts_interval_seconds!r}")
        object.__setattr__(self, "redact_keys", tuple(self.redact_keys))
        object.__setattr__(self, "redact_allow", parse_redact_allow(self.redact_allow))

    @property
    def key_ring(self) -> KeyRing | None:
        """The parsed ``encryption_keys``, or None when encryption is off."""
        ring: KeyRing | None = self.__dict__["_key_ring"]
        return ring

    @functools.cached_property  # compiled once: every store runs it
    def redactor(self) -> Redactor:
        """The redaction rules of this configuration."""
        return Redactor(extra_keys=self.redact_keys, allow=self.redact_allow,
                        enabled=self.redact_enabled)

    @functools.cached_property  # hashed once: every cursor page signs with it
    def cursor_key(self) -> bytes:
        """The key that signs list cursors.

        From ``DLQ_CURSOR_SECRET``; without it, a random secret made once and
        kept in ``home/cursor.key`` (mode 0600), never anything derived from
        the configuration (the database URL is no secret).
        """
        if self.cursor_secret:
            return hashlib.sha256(self.cursor_secret.encode()).digest()
        from dlq._local_secret import local_secret

        try:
            secret = local_secret(self.home, "cursor.key")
        except OSError as err:
            raise OSError(f"cannot keep the cursor signing key in {self.home}/cursor.key "
                          f"({err.strerror or err}); set DLQ_CURSOR_SECRET or DLQ_HOME") from err
        return hashlib.sha256(b"dlq-cursor:" + secret).digest()

    @classmethod
    def from_settings(cls, settings: DLQSettings | None = None) -> DLQConfig:
        """Load configuration from ``DLQ_*`` environment variables.

        Args:
            settings: Already-loaded settings; read from the environment if None.

        Returns:
            The configuration.

        Raises:
            pydantic.ValidationError: If a variable has an invalid value.
            ValueError: ``make run``'s key file in ``DLQ_HOME`` is invalid or
                readable by others.
        """
        settings = settings or DLQSettings()
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        if not values["encryption_keys"] and not settings.database_url:
            # The ring `make run` generated in DLQ_HOME, so `dlq` commands and
            # scripts on this machine read what the local stack encrypted. Only
            # with the read model of DLQ_HOME: a DLQ_DATABASE_URL elsewhere is
            # another deployment, which names its own keys.
            local = os.path.join(resolve_home(settings.home), LOCAL_KEY_FILE)
            if os.path.exists(local):
                values["encryption_keys"] = local_key_ring(local)
        if settings.temporal_envconfig:
            # Temporal's own configuration (temporal.toml, TEMPORAL_ADDRESS...)
            # names the server unless a DLQ_* variable says otherwise.
            from dlq._connect import load_profile

            profile = load_profile(settings.temporal_profile, settings.temporal_config_file)
            unset = {"temporal_address", "namespace"} - settings.model_fields_set
            if profile.address and "temporal_address" in unset:
                values["temporal_address"] = profile.address
            if profile.namespace and "namespace" in unset:
                values["namespace"] = profile.namespace
        return cls(**values)
