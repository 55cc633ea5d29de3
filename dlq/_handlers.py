"""Registry of replay handlers, keyed by (domain, failure_type)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from dlq._models import FailedOperationData

__all__ = ["HandlerRegistry", "import_handler_modules", "registry", "replay_handler"]

ReplayHandler = Callable[[FailedOperationData], Any | Awaitable[Any]]
F = TypeVar("F", bound=ReplayHandler)


class HandlerRegistry:
    """Maps (domain, failure_type) to a replay handler.

    A handler registered with ``failure_type=None`` serves every failure type
    of its domain that has no handler of its own.
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str | None], ReplayHandler] = {}

    def register(self, domain: str, failure_type: str | None, handler: ReplayHandler) -> None:
        """Register ``handler``; a later registration for the same key replaces it."""
        if not domain:
            raise ValueError("replay_handler needs a domain")
        self._handlers[(domain, failure_type)] = handler

    def find(self, domain: str, failure_type: str) -> ReplayHandler | None:
        """The handler for (domain, failure_type), else the domain-wide one, else None."""
        return self._handlers.get((domain, failure_type)) or self._handlers.get((domain, None))

    def unregister(self, domain: str, failure_type: str | None = None) -> None:
        """Remove a registration (mainly for tests)."""
        self._handlers.pop((domain, failure_type), None)

    def keys(self) -> list[tuple[str, str | None]]:
        """Registered (domain, failure_type) keys."""
        return list(self._handlers)


registry = HandlerRegistry()


def replay_handler(domain: str, failure_type: str | None = None) -> Callable[[F], F]:
    """Register a replay handler for a domain, or one failure type of it.

    The handler takes a :class:`FailedOperationData`. Returning (any value)
    means the replay succeeded; raising means it failed, and the exception's
    text becomes the entry's ``last_error``. Sync handlers run in a thread
    pool, async ones are awaited.

    Example:
        >>> @replay_handler("payment", "PG_TIMEOUT")
        ... def recharge(entry: FailedOperationData) -> None:
        ...     gateway.charge(entry.request_data["order_id"])

    Args:
        domain: Business domain, e.g. ``payment``.
        failure_type: Failure type; None registers the domain-wide fallback.

    Returns:
        A decorator that registers the function and returns it unchanged.
    """

    def decorate(func: F) -> F:
        registry.register(domain, failure_type, func)
        return func

    return decorate


def import_handler_modules(modules: Iterable[str]) -> list[str]:
    """Import the modules that register handlers (``DLQ_HANDLER_MODULES``).

    Raises:
        ImportError: Naming the module that could not be imported.
    """
    imported = []
    for name in modules:
        name = name.strip()
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"cannot import replay handler module {name!r}: {err}") from err
        imported.append(name)
    return imported
