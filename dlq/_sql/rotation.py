"""Re-encrypting the read model's data columns with the current key (``dlq keys rotate``).

Every sealed value names its key (see :mod:`dlq._sealed`). A rotation reads
each row's data columns as stored, skips rows whose values are all sealed
with the ring's current key already, and writes the others back sealed with
it (values written in clear before encryption was switched on are sealed
too). It works in keyset-paged batches, one transaction each, so it can run
beside a live worker and be interrupted and run again.

An entry row is rewritten only at the version it was read at: a worker that
changed the row in between (an edit writes new data) wins, and the row is
read again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dlq._db import DLQAuditEventRow, DLQEntry, DLQPayloadRow
from dlq._errors import DLQError
from dlq._keys import TEXT_PREFIX, KeyRing, sealed_text_key_id
from dlq._sealed import SQL_AAD, key_ring_of

__all__ = ["RotationResult", "reencrypt_read_model"]

_ENTRIES: sa.Table = DLQEntry.__table__  # type: ignore[attr-defined]
_AUDIT: sa.Table = DLQAuditEventRow.__table__  # type: ignore[attr-defined]
_PAYLOADS: sa.Table = DLQPayloadRow.__table__  # type: ignore[attr-defined]
# (table, primary key, sealed columns); entries also carry a version.
_TABLES: tuple[tuple[sa.Table, tuple[str, ...], tuple[str, ...]], ...] = (
    (_ENTRIES, ("id",),
     ("snapshot_data", "request_data", "response_data", "metadata", "original_data")),
    (_AUDIT, ("id",), ("details",)),
    (_PAYLOADS, ("entry_id",), ("data",)),
)
_RETRIES = 5


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did.

    Attributes:
        key_id: The key everything is now sealed with.
        scanned: Rows read, per table.
        rewritten: Rows re-encrypted, per table.
    """

    key_id: str
    scanned: dict[str, int]
    rewritten: dict[str, int]


def _open(raw: Any, ring: KeyRing) -> Any:
    """A stored value in clear (``raw`` as read without the sealing type)."""
    if isinstance(raw, str) and raw.startswith(TEXT_PREFIX):
        return json.loads(ring.open_text(raw, aad=SQL_AAD))
    return raw


def _current(raw: Any, ring: KeyRing) -> bool:
    """Whether a stored value needs no rewrite (sealed with the current key, or SQL NULL)."""
    if raw is None:
        return True
    return isinstance(raw, str) and sealed_text_key_id(raw) == ring.current


def reencrypt_read_model(*, engine: Engine, batch: int = 500) -> RotationResult:
    """Seal every data column of the read model with the current key of ``engine``'s ring.

    Args:
        engine: The read model, with a key ring attached (``create_db_engine(url,
            key_ring=...)``) that holds the current key and every key still in use.
        batch: Rows per transaction.

    Returns:
        Rows scanned and rewritten per table.

    Raises:
        DLQError: ``engine`` has no key ring.
        DLQKeyError: A value is sealed with a key not in the ring (names it).
    """
    ring = key_ring_of(engine.dialect)
    if ring is None:
        raise DLQError("DLQ_ENCRYPTION_KEYS is not set: there is no key to rotate to")
    scanned: dict[str, int] = {}
    rewritten: dict[str, int] = {}
    for table, keys, columns in _TABLES:
        scanned[table.name], rewritten[table.name] = _rotate_table(
            engine, ring, table, keys, columns, batch)
    return RotationResult(key_id=ring.current, scanned=scanned, rewritten=rewritten)


def _rotate_table(engine: Engine, ring: KeyRing, table: sa.Table, keys: tuple[str, ...],
                  columns: tuple[str, ...], batch: int) -> tuple[int, int]:
    key = table.c[keys[0]]
    versioned = "version" in table.c
    # Read the stored text as it is: the plain JSON type does not unseal it.
    raw = [sa.type_coerce(table.c[name], sa.JSON()).label(name) for name in columns]
    select = sa.select(key, *([table.c.version] if versioned else []), *raw)
    where = [key == sa.bindparam("b_key", type_=key.type)]
    if versioned:
        where.append(table.c.version == sa.bindparam("b_version", type_=table.c.version.type))
    update = (sa.update(table).where(*where)
              .values({name: sa.bindparam(name, type_=table.c[name].type) for name in columns}))
    scanned = rewritten = 0
    last: Any = None
    while True:
        page = select.order_by(key).limit(batch)
        if last is not None:
            page = page.where(key > last)
        with engine.begin() as conn:
            rows = conn.execute(page).mappings().all()
            if not rows:
                return scanned, rewritten
            scanned += len(rows)
            last = rows[-1][key.name]
            stale = [row for row in rows if not all(_current(row[c], ring) for c in columns)]
            for row in stale:
                rewritten += _rewrite(conn, ring, update, select, key, row, columns, versioned)


def _rewrite(conn: sa.Connection, ring: KeyRing, update: Any, select: Any, key: Any,
             row: Any, columns: tuple[str, ...], versioned: bool) -> int:
    """Write one row back sealed with the current key; re-read it if a writer got there first."""
    for _ in range(_RETRIES):
        params = {name: _open(row[name], ring) for name in columns}
        params["b_key"] = row[key.name]
        if versioned:
            params["b_version"] = row["version"]
        if conn.execute(update, params).rowcount:
            return 1
        fresh = conn.execute(select.where(key == row[key.name])).mappings().first()
        if fresh is None:  # purged meanwhile
            return 0
        row = fresh
    raise DLQError(f"row {row[key.name]} of {key.table.name} kept changing during the rotation; "
                   "run `dlq keys rotate` again")
