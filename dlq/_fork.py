"""Fork safety: services built before ``os.fork()`` rebuild what a child does not inherit.

A forked child has only the thread that called ``fork()``: the blocking
service's event-loop thread, the Temporal SDK's runtime (Rust threads) and
any connection made by the parent are unusable there. gunicorn ``--preload``
builds the service in the master and forks the workers; a Celery prefork
worker does the same with a module-level service. Each service registers
itself here, and :func:`_after_fork_in_child` asks every live one to drop
what it inherited (it is rebuilt lazily, in the child, on first use).
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol

__all__ = ["ForkAware", "forks_seen", "keep", "track"]


class ForkAware(Protocol):
    """An object that rebuilds its threads and connections in a forked child."""

    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
# What the children inherited and must never close or drop (closing the
# parent's SQLite or gRPC handles in a child could disturb the parent, and a
# Temporal client dropped on a dead runtime may block): kept referenced here.
_inherited: list[Any] = []
_forks = 0


def track(obj: ForkAware) -> None:
    """Rebuild ``obj`` in every forked child (held weakly)."""
    _live.add(obj)


def keep(obj: Any) -> None:
    """Keep a parent's object alive in the child without using it."""
    if obj is not None:
        _inherited.append(obj)


def forks_seen() -> int:
    """How many forks this process came out of as the child (for tests and diagnostics)."""
    return _forks


def _new_temporal_runtime() -> None:
    # The SDK's default runtime owns Rust threads that the child does not
    # have ("Runtimes do not work across forks"): replace it, if the parent
    # had made one, so clients connected in the child get a live one.
    from temporalio import runtime

    ref = getattr(runtime, "_runtime_ref", None)
    old = getattr(ref, "_default_runtime", None)
    if old is None:
        return
    keep(old)
    try:
        ref._default_runtime = None  # type: ignore[union-attr]  # made again lazily
    except AttributeError:  # an SDK without that attribute: the public way, made now
        runtime.Runtime.set_default(runtime.Runtime(telemetry=runtime.TelemetryConfig()),
                                    error_if_already_set=False)


def _after_fork_in_child() -> None:
    global _forks
    _forks += 1
    _new_temporal_runtime()
    for obj in list(_live):
        obj._after_fork()


def _install() -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


_install()
