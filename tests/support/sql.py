"""Real SQL databases for tests: fresh PostgreSQL databases, empty migrated read models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dlq._db import (
    DLQAlertRow,
    DLQAuditEventRow,
    DLQEntry,
    DLQGroupMinuteRow,
    DLQGroupRow,
    create_db_engine,
    migrate,
)

PG_ADMIN_URL = os.environ.get("DLQ_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# A missing PostgreSQL fails the suite (its PostgreSQL half would silently not run).
PG_MISSING = (f"PostgreSQL is not reachable at {PG_ADMIN_URL}: the PostgreSQL half of the "
              "suite needs it (README: make test; DLQ_TEST_PG_ADMIN names another server)")


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str | None]:
    """A new PostgreSQL database (dropped afterwards), or None if none is reachable."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_read_model(url: str) -> Iterator[Engine]:
    """Migrate the read model at ``url``, empty it, yield its engine, dispose of it."""
    eng = create_db_engine(url)
    migrate(eng)
    with eng.begin() as conn:  # every test starts from an empty read model
        conn.execute(sa.delete(DLQAuditEventRow))
        conn.execute(sa.delete(DLQEntry))
        for table in (DLQGroupRow, DLQGroupMinuteRow, DLQAlertRow):
            conn.execute(sa.delete(table))
    yield eng
    eng.dispose()
