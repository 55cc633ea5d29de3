"""Long-lived read connections, one per reading thread, for the hot SQL reads.

A list page, a cursor page or the facet counts take 0.03-0.3 ms of SQL. A pool
checkout costs about 10 µs on top (the pool's bookkeeping and the reset on
return), and on PostgreSQL ``pool_pre_ping`` adds a round trip: as much as the
query itself, and twice the latency to a remote server. A thread that reads
keeps one connection of its own instead, outside the pool.

Those connections come from the pool, so they are set up like every other
(SQLite pragmas and all), then detached from it. They run in
autocommit: a read neither starts nor leaves a transaction open (SQLite's
Python driver starts none for a SELECT; PostgreSQL's is switched to autocommit),
so each statement sees what is committed when it runs, as before.

A connection a server has dropped (restart, idle timeout) is discarded and the
read is retried once through the pool, whose pre-ping hands out a live one: the
check the pool would have done before every read is done after a failure only.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

__all__ = ["ThreadReads", "fetch_all"]


def fetch_all(dbapi_conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    """Execute ``sql`` on a DBAPI connection and fetch every row, closing the cursor."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


class _Held:
    """A thread's detached connection (the thread-local slot holds the only reference)."""

    __slots__ = ("__weakref__", "conn", "finalizer", "generation")

    def __init__(self, conn: Any, generation: int, open_conns: dict[int, Any]) -> None:
        self.conn = conn
        self.generation = generation
        # Runs when the thread ends (its thread-local slot is freed), on dispose, or
        # when the connection is discarded; never twice.
        self.finalizer = weakref.finalize(self, _close, conn, open_conns)
        open_conns[id(conn)] = self.finalizer


class ThreadReads:
    """Per-thread DBAPI connections for the read hot path, at most ``limit`` at once.

    Threads beyond the limit, and engines whose pool is not a ``QueuePool``
    (SQLite ``:memory:``, where a new connection is another database), read
    through the pool as before. Connections are closed when their thread ends
    or when the engine is disposed.

    Args:
        engine: The read model's engine.
        limit: Most connections held at once; the pool's ``pool_size`` if None.
    """

    def __init__(self, engine: Engine, limit: int | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        pool = engine.pool
        self.enabled = isinstance(pool, QueuePool)
        queue_size = pool.size() if isinstance(pool, QueuePool) else 0
        self.limit = limit if limit is not None else queue_size
        self._local = threading.local()
        self._lock = threading.Lock()
        # id(connection) -> the finalizer that closes it; read without the lock
        # (finalizers run in whatever thread the garbage collector is in).
        self._open: dict[int, weakref.finalize[Any, Any]] = {}
        self._generation = 0
        self._pid = os.getpid()
        self._postgresql = engine.dialect.name == "postgresql"
        self._error = engine.dialect.loaded_dbapi.Error
        if self.enabled:
            sa.event.listen(engine, "engine_disposed", self._on_dispose)

    @property
    def held(self) -> int:
        """How many connections are held now (for tests and diagnostics)."""
        return len(self._open)

    def rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Execute ``sql`` and fetch every row, on this thread's connection.

        Raises:
            The driver's error, unless it was a dropped connection (then the
            read is retried once through the pool).
        """
        if not self.enabled:
            return self._pooled(sql, params)
        held = self._local.__dict__.get("held")
        if held is None or held.generation != self._generation or self._pid != os.getpid():
            held = self._acquire()
            if held is None:
                return self._pooled(sql, params)
        cursor = held.conn.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        except self._error as err:
            if not self.dialect.is_disconnect(err, held.conn, cursor):
                raise
            self._discard(held)
            return self._pooled(sql, params)
        finally:
            try:
                cursor.close()
            except self._error:
                pass  # a cursor of a dropped connection

    def _pooled(self, sql: str, params: Sequence[Any]) -> list[Any]:
        # The pool path: its checkout (with pre-ping on PostgreSQL) gives a live connection.
        with self.engine.connect() as conn:
            if self._postgresql:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            return fetch_all(conn.connection, sql, params)

    def _acquire(self) -> _Held | None:
        if self._pid != os.getpid():
            self._forget_parent()
        # A held connection of an earlier generation is closed already (dispose, fork).
        self._local.__dict__.pop("held", None)
        with self._lock:
            if len(self._open) >= self.limit:
                return None
            generation = self._generation
            fairy = self.engine.raw_connection()
            conn = fairy.dbapi_connection
            assert conn is not None  # a checked-out connection has its DBAPI connection
            fairy.detach()  # ours now: no longer counted by the pool, closed by us
            if self._postgresql:
                conn.autocommit = True
            held = _Held(conn, generation, self._open)
        self._local.held = held
        return held

    def _discard(self, held: _Held) -> None:
        self._local.__dict__.pop("held", None)
        held.finalizer()

    def _forget_parent(self) -> None:
        # After a fork the held connections are the parent's sockets and files:
        # forget them without closing them (closing would end the parent's sessions).
        with self._lock:
            if self._pid == os.getpid():
                return
            for finalizer in self._open.values():
                finalizer.detach()
            self._open.clear()
            self._generation += 1
            self._pid = os.getpid()

    def _on_dispose(self, _engine: Engine) -> None:
        if self._pid != os.getpid():
            # A forked child disposing the inherited engine: the held
            # connections are the parent's; forget them, never close them.
            self._forget_parent()
            return
        with self._lock:
            self._generation += 1
            finalizers = list(self._open.values())
        for finalizer in finalizers:
            finalizer()


def _close(conn: Any, open_conns: dict[int, Any]) -> None:
    # No reference to the _Held or the ThreadReads: a finalizer must not keep them alive.
    open_conns.pop(id(conn), None)
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a dead connection; nothing to do
        pass
