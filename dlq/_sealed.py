"""Encrypted JSON columns of the SQL read model.

The data columns (an entry's four data dicts and its original data, audit
event details, claim-checked payloads) are :class:`EncryptedJSON`: with a
key ring attached to the engine (:func:`attach_key_ring`), a value is written
as one JSON *string*, ``dlqenc:v1:<key id>:<base64>``, the JSON text of the
value sealed with AES-256-GCM under the ring's current key. The column type
stays JSON (JSONB on PostgreSQL), so no migration is needed and rows written
before encryption was switched on, which hold a JSON object, stay readable.
A data value is always an object, so a sealed string is never ambiguous.

Columns used for filtering and facets (status, domain, failure type, entity,
times, counters) stay in clear.

The ring belongs to the engine, not to the process: one process may hold
engines with different rings (a rotation reads with the old ring and writes
with the new one; tests run several configurations).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from dlq._keys import TEXT_PREFIX, KeyRing

__all__ = ["SQL_AAD", "EncryptedJSON", "attach_key_ring", "key_ring_of"]

# Binds a sealed value to the read model (it cannot be replayed as a payload).
SQL_AAD = b"dlq:sql"
_ATTR = "dlq_key_ring"


def attach_key_ring(engine: Engine, ring: KeyRing | None) -> Engine:
    """Make ``engine`` encrypt data columns with ``ring`` (None: write them in clear)."""
    setattr(engine.dialect, _ATTR, ring)
    return engine


def key_ring_of(dialect: sa.Dialect) -> KeyRing | None:
    """The ring attached to the engine of ``dialect``, if any."""
    ring: KeyRing | None = getattr(dialect, _ATTR, None)
    return ring


class EncryptedJSON(sa.TypeDecorator[Any]):
    """A JSON (JSONB on PostgreSQL) column whose values are sealed when the engine has a ring.

    Args:
        none_as_null: None is SQL NULL rather than JSON ``null`` (as ``sa.JSON``).
    """

    impl = sa.JSON
    cache_ok = True

    def __init__(self, none_as_null: bool = False) -> None:
        super().__init__(none_as_null=none_as_null)
        self.none_as_null = none_as_null

    def load_dialect_impl(self, dialect: sa.Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=self.none_as_null))
        return dialect.type_descriptor(sa.JSON(none_as_null=self.none_as_null))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        ring = key_ring_of(dialect)
        if value is None or ring is None:
            return value
        return ring.seal_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False),
                              aad=SQL_AAD)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if not isinstance(value, str) or not value.startswith(TEXT_PREFIX):
            return value
        ring = key_ring_of(dialect)
        if ring is None:
            KeyRing.open_unconfigured(value)  # raises DLQKeyError naming the key
        assert ring is not None
        return json.loads(ring.open_text(value, aad=SQL_AAD))
