"""Connecting to Temporal: where, how securely, and with which extensions.

Every Temporal client the DLQ builds (the service's, the worker's, the relay's,
the CLI's, ``make run``'s, the benchmarks') comes from :func:`connect`, and
every worker and history replayer from a client made here, so a deployment
configures the connection once:

* **Where and how securely** comes from Temporal's environment configuration
  (``temporalio.envconfig``): a profile of ``temporal.toml`` and the
  ``TEMPORAL_*`` variables give the address, namespace, TLS, mTLS, API key
  and gRPC metadata, exactly as for the ``temporal`` CLI.
  ``DLQ_TEMPORAL_ADDRESS`` and ``DLQ_NAMESPACE`` override address and
  namespace when set.
* **Extensions** are :class:`TemporalHooks`: a data converter (e.g. with a
  payload codec), client and worker interceptors (e.g. tracing) and
  temporalio plugins, named by ``DLQ_TEMPORAL_HOOKS``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

if TYPE_CHECKING:
    from temporalio.envconfig import ClientConfigProfile
    from temporalio.worker import Replayer

    from dlq._config import DLQConfig

__all__ = ["BUILTIN_HOOKS", "TemporalHooks", "client_options", "connect", "describe",
           "environment_hooks", "environment_keys", "load_profile", "replayer", "resolve_hooks",
           "worker_interceptors"]

log = logging.getLogger("dlq")


@dataclasses.dataclass(frozen=True)
class TemporalHooks:
    """What every Temporal client and worker the DLQ builds gets besides its connection.

    Name them once, in ``DLQ_TEMPORAL_HOOKS`` (``module:attribute``, comma
    separated; the attribute is a ``TemporalHooks`` or a callable taking the
    :class:`~dlq.DLQConfig` and returning one) or in ``DLQConfig.temporal_hooks``;
    the service, the worker, the relay, the CLI and ``make run`` all apply them.

    Example:
        >>> hooks = TemporalHooks(
        ...     data_converter=lambda c: dataclasses.replace(c, payload_codec=MyCodec()),
        ...     interceptors=[TracingInterceptor()],
        ... )

    Attributes:
        data_converter: Called with the DLQ's data converter (the pydantic one,
            or what earlier hooks made of it); returns the one to use. Applies to
            clients, workers (through their client) and history replayers.
        interceptors: Client and worker interceptors. One implementing both
            (like OpenTelemetry's ``TracingInterceptor``) serves the client and
            every worker built on it.
        plugins: temporalio plugins (``temporalio.plugin.SimplePlugin`` and the
            like): given to every client, and through it to its workers, and to
            history replayers.
    """

    data_converter: Callable[[DataConverter], DataConverter] | None = None
    interceptors: Sequence[Any] = ()
    plugins: Sequence[Any] = ()

    def convert(self, converter: DataConverter) -> DataConverter:
        """``converter`` as this hook's ``data_converter`` makes it."""
        return self.data_converter(converter) if self.data_converter else converter


def _encryption_hooks(config: DLQConfig) -> TemporalHooks | None:
    """The payload codec of ``DLQ_ENCRYPTION_KEYS``, when a key ring is configured."""
    if config.key_ring is None:
        return None
    from dlq._codec import encryption_hooks

    return encryption_hooks(config.key_ring)


# The project's own hooks, each called with the configuration (None: nothing to
# add). Encryption (the payload codec) and telemetry register theirs here, so
# they reach every client and worker the same way a user's hooks do.
def _tracing(config: DLQConfig) -> TemporalHooks | None:
    # DLQ_OTEL_ENABLED: temporalio's TracingInterceptor (dlq/_tracing.py).
    if not config.otel_enabled:
        return None
    from dlq._tracing import tracing_hooks

    return tracing_hooks(config)


BUILTIN_HOOKS: list[Callable[[DLQConfig], TemporalHooks | None]] = [_encryption_hooks, _tracing]


def _load_hook(spec: Any, config: DLQConfig) -> TemporalHooks:
    """One entry of ``temporal_hooks``: an object, or a ``module:attribute`` path."""
    obj = spec
    if isinstance(spec, str):
        module, _, attribute = spec.strip().partition(":")
        if not module or not attribute:
            raise ValueError(f"DLQ_TEMPORAL_HOOKS entry {spec!r} must be 'module:attribute'")
        try:
            obj = importlib.import_module(module)
            for part in attribute.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot load Temporal hooks {spec!r}: {err}") from err
    if callable(obj) and not isinstance(obj, (TemporalHooks, type)):
        obj = obj(config)
    if not isinstance(obj, TemporalHooks):
        raise ValueError(f"Temporal hooks {spec!r} must be a dlq.TemporalHooks or a callable "
                         f"returning one, got {type(obj).__name__}")
    return obj


def resolve_hooks(config: DLQConfig) -> TemporalHooks:
    """The project's hooks, then the configuration's, combined into one (in that order)."""
    parts = [hooks for provider in BUILTIN_HOOKS if (hooks := provider(config)) is not None]
    parts += [_load_hook(spec, config) for spec in config.temporal_hooks]
    if len(parts) == 1:
        return parts[0]
    converters = [p.data_converter for p in parts if p.data_converter]

    def convert(converter: DataConverter) -> DataConverter:
        for step in converters:
            converter = step(converter)
        return converter

    return TemporalHooks(data_converter=convert if converters else None,
                         interceptors=tuple(i for p in parts for i in p.interceptors),
                         plugins=tuple(p for part in parts for p in part.plugins))


def load_profile(profile: str = "", config_file: str = "") -> ClientConfigProfile:
    """The Temporal environment configuration profile (``temporal.toml`` + ``TEMPORAL_*``).

    Args:
        profile: Profile name; empty means ``TEMPORAL_PROFILE`` or ``default``.
        config_file: TOML file; empty means ``TEMPORAL_CONFIG_FILE`` or the
            default location (``~/.config/temporalio/temporal.toml``). A
            missing default file is no error.

    Raises:
        ValueError: The file or profile cannot be read (the message says which).
    """
    from temporalio.envconfig import ClientConfigProfile

    if config_file and not Path(config_file).is_file():
        # The SDK would silently read nothing from a missing file.
        raise ValueError(f"Temporal config file {config_file} does not exist "
                         "(DLQ_TEMPORAL_CONFIG_FILE)")
    try:
        return ClientConfigProfile.load(profile=profile or None,
                                        config_source=Path(config_file) if config_file else None)
    except Exception as err:
        where = config_file or os.environ.get("TEMPORAL_CONFIG_FILE") or "the default file"
        raise ValueError(f"cannot load Temporal profile {profile or 'default'!r} from "
                         f"{where}: {err}") from err


def _security(config: DLQConfig) -> dict[str, Any]:
    """TLS, API key and gRPC metadata from the environment configuration."""
    if not config.temporal_envconfig:
        return {}
    profile = load_profile(config.temporal_profile, config.temporal_config_file)
    try:
        # Reads certificate files named by the profile.
        options = dict(profile.to_client_connect_config())
    except OSError as err:
        raise ValueError(f"cannot read a TLS file of the Temporal profile: {err}") from err
    return {key: options[key] for key in ("tls", "api_key", "rpc_metadata") if key in options}


def client_options(config: DLQConfig) -> dict[str, Any]:
    """Keyword arguments of ``Client.connect`` for ``config`` (its hooks included)."""
    hooks = resolve_hooks(config)
    options: dict[str, Any] = {
        "target_host": config.temporal_address, "namespace": config.namespace,
        "data_converter": hooks.convert(pydantic_data_converter), **_security(config),
    }
    interceptors = [i for i in hooks.interceptors if isinstance(i, ClientInterceptor)]
    if interceptors:
        options["interceptors"] = interceptors
    if hooks.plugins:
        options["plugins"] = list(hooks.plugins)
    return options


def describe(config: DLQConfig) -> str:
    """``address/namespace`` and how the connection is secured, for logs (no secrets)."""
    security = _security(config)
    tls = security.get("tls")
    parts = ["TLS" if tls else "plaintext"]
    if tls is not True and getattr(tls, "client_cert", None):
        parts.append("mTLS client certificate")
    if security.get("api_key"):
        parts.append("API key")
    return f"{config.temporal_address}/{config.namespace} ({', '.join(parts)})"


def environment_hooks() -> tuple[str, ...]:
    """The hooks ``DLQ_TEMPORAL_HOOKS`` names (for clients and workers built without settings)."""
    value = os.environ.get("DLQ_TEMPORAL_HOOKS", "")
    return tuple(part.strip() for part in value.split(",") if part.strip())


def environment_keys() -> str:
    """``DLQ_ENCRYPTION_KEYS`` (for clients and workers built without settings)."""
    return os.environ.get("DLQ_ENCRYPTION_KEYS", "")


async def connect(target: DLQConfig | str | None = None, namespace: str = "default", *,
                  lazy: bool = False, runtime: Any = None) -> Client:
    """A Temporal client as the DLQ builds them: pydantic data converter, hooks, security.

    Args:
        target: The configuration to connect with (``DLQ_*`` variables if
            None), or the ``host:port`` of a plain local server such as a dev
            server (no environment configuration; ``DLQ_TEMPORAL_HOOKS`` and
            ``DLQ_ENCRYPTION_KEYS`` still apply).
        namespace: Namespace, when ``target`` is an address.
        lazy: Connect on first use instead of now.
        runtime: A ``temporalio.runtime.Runtime`` (the worker's, with SDK
            metrics); the SDK's default runtime if None.

    Raises:
        ValueError: The environment configuration or a hook cannot be loaded.
        RuntimeError: The server cannot be reached (from the SDK).
    """
    from dlq._config import DLQConfig

    if target is None:
        config = DLQConfig.from_settings()
    elif isinstance(target, str):
        config = DLQConfig(temporal_address=target, namespace=namespace,
                           temporal_envconfig=False, temporal_hooks=environment_hooks(),
                           encryption_keys=environment_keys())
    else:
        config = target
    options = client_options(config)
    if runtime is not None:
        options["runtime"] = runtime
    return await Client.connect(**options, lazy=lazy)


def worker_interceptors(config: DLQConfig) -> list[Any]:
    """Worker interceptors of the hooks that the client does not already pass to workers."""
    # Imported here: a producer process never loads temporalio.worker.
    from temporalio.worker import Interceptor as WorkerInterceptor

    return [i for i in resolve_hooks(config).interceptors
            if isinstance(i, WorkerInterceptor) and not isinstance(i, ClientInterceptor)]


def replayer(config: DLQConfig, workflows: Iterable[type], **options: Any) -> Replayer:
    """A history ``Replayer`` with the data converter, interceptors and plugins of ``config``."""
    from temporalio.worker import Interceptor as WorkerInterceptor
    from temporalio.worker import Plugin as WorkerPlugin
    from temporalio.worker import Replayer

    hooks = resolve_hooks(config)
    interceptors = [i for i in hooks.interceptors if isinstance(i, WorkerInterceptor)]
    plugins = [p for p in hooks.plugins if isinstance(p, WorkerPlugin)]
    return Replayer(workflows=list(workflows),
                    data_converter=hooks.convert(pydantic_data_converter),
                    interceptors=interceptors, plugins=plugins, **options)
