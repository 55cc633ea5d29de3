"""Synthetic DLQ rows and fast bulk seeding for :mod:`bench.query`.

Rows are shaped like the ones the worker writes (see ``tests/seed.py`` and
``dlq._state.new_state``) with a skewed, production-like distribution:

* 8 domains (payment 30 %, webhook 25 %, ...), 5 failure types each, skewed;
* statuses: resolved 45 %, archived 22 %, expired 14.9 %, pending 10 %,
  discarded 5 %, requires_review 3 %, replaying 0.1 %;
* ``created_at`` uniform over the 90 days before ``now``, rows inserted in
  ``created_at`` order (as a live system appends them);
* random uuid4 ids, entity and user ids, short error messages, small JSON blobs.

The generator is deterministic (fixed seed), so SQLite and PostgreSQL get the
same rows. The schema always comes from :func:`dlq._db.migrate`, so the indexes
are the product's.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dlq._db import DLQEntry, create_db_engine, migrate

__all__ = ["CHUNK", "COLUMNS", "DOMAINS", "STATUSES", "generate_rows", "migrate_kept",
           "seed_postgresql", "seed_sqlite"]

CHUNK = 20_000
SPAN = timedelta(days=90)
SEED = 20261128

# (domain, weight %, entity type, failure types with weights)
DOMAINS: tuple[tuple[str, float, str, tuple[tuple[str, float], ...]], ...] = (
    ("payment", 30, "order", (("PG_TIMEOUT", 40), ("CARD_DECLINED", 25),
                              ("GATEWAY_5XX", 15), ("FRAUD_CHECK_FAILED", 12),
                              ("IDEMPOTENCY_CONFLICT", 8))),
    ("webhook", 25, "webhook_event", (("HTTP_5XX", 40), ("HTTP_TIMEOUT", 25),
                                      ("SIGNATURE_INVALID", 15), ("HTTP_4XX", 12),
                                      ("PAYLOAD_TOO_LARGE", 8))),
    ("notification", 12, "user", (("SMS_PROVIDER_DOWN", 40), ("PUSH_TOKEN_INVALID", 25),
                                  ("RATE_LIMITED", 15), ("TEMPLATE_MISSING", 12),
                                  ("OPT_OUT", 8))),
    ("order", 10, "order", (("STOCK_RESERVATION_FAILED", 40), ("PRICE_MISMATCH", 25),
                            ("DB_DEADLOCK", 15), ("VALIDATION_ERROR", 12),
                            ("DUPLICATE_ORDER", 8))),
    ("inventory", 8, "sku", (("SYNC_TIMEOUT", 40), ("NEGATIVE_STOCK", 25),
                             ("WAREHOUSE_API_5XX", 15), ("LOCK_TIMEOUT", 12),
                             ("UNKNOWN_SKU", 8))),
    ("shipping", 7, "shipment", (("CARRIER_API_5XX", 40), ("ADDRESS_INVALID", 25),
                                 ("LABEL_FAILED", 15), ("RATE_QUOTE_TIMEOUT", 12),
                                 ("CUSTOMS_REJECTED", 8))),
    ("email", 5, "user", (("SMTP_TIMEOUT", 40), ("BOUNCED", 25), ("SPAM_REJECTED", 15),
                          ("MAILBOX_FULL", 12), ("TEMPLATE_ERROR", 8))),
    ("auth", 3, "user", (("IDP_TIMEOUT", 40), ("TOKEN_REFRESH_FAILED", 25),
                         ("MFA_PROVIDER_DOWN", 15), ("JWKS_FETCH_FAILED", 12),
                         ("CLOCK_SKEW", 8))),
)
STATUSES: tuple[tuple[str, float], ...] = (
    ("resolved", 45.0), ("archived", 22.0), ("expired", 14.9), ("pending", 10.0),
    ("discarded", 5.0), ("requires_review", 3.0), ("replaying", 0.1),
)
MESSAGES = ("timed out after 30s", "connection reset by peer", "upstream returned 503",
            "retry budget exhausted upstream", "unexpected response body",
            "lock wait timeout exceeded")
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
# Every column of dlq_entries (at the migrations' head), in the order COPY writes them.
COLUMNS = tuple(c.name for c in DLQEntry.__table__.columns)
JSON_COLUMNS = frozenset({"snapshot_data", "request_data", "response_data", "metadata",
                          "attempts"})


def _cum(weights: Any) -> list[float]:
    return list(itertools.accumulate(weights))


def _pick(rng: random.Random, values: Any, cum: list[float]) -> Any:
    return values[bisect.bisect(cum, rng.random() * cum[-1])]


def generate_rows(n: int, *, now: datetime, seed: int = SEED,
                  chunk: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    """Yield ``n`` entry rows (dicts keyed by column name) in chunks, oldest first.

    Args:
        n: Number of rows.
        now: The newest possible ``created_at``; rows span the 90 days before it.
        seed: Random seed (same seed, same rows).
        chunk: Rows per yielded list.
    """
    rng = random.Random(seed)
    span_us = int(SPAN.total_seconds() * 1_000_000)
    start = now - SPAN
    offsets = sorted(rng.randrange(span_us) for _ in range(n))
    domain_cum = _cum(d[1] for d in DOMAINS)
    failure_cums = [_cum(w for _, w in d[3]) for d in DOMAINS]
    status_names = [s for s, _ in STATUSES]
    status_cum = _cum(w for _, w in STATUSES)
    batch: list[dict[str, Any]] = []
    for i, offset in enumerate(offsets):
        created = start + timedelta(microseconds=offset)
        di = bisect.bisect(domain_cum, rng.random() * domain_cum[-1])
        domain, _, entity_type, failures = DOMAINS[di]
        failure_type = _pick(rng, [f for f, _ in failures], failure_cums[di])
        status = _pick(rng, status_names, status_cum)
        batch.append(_row(rng, i, created, domain, entity_type, failure_type, status))
        if len(batch) == chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def _row(rng: random.Random, i: int, created: datetime, domain: str, entity_type: str,
         failure_type: str, status: str) -> dict[str, Any]:
    entry_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    entity_id = f"{entity_type}_{rng.randrange(10_000_000)}"
    message = f"{failure_type.lower().replace('_', ' ')}: {rng.choice(MESSAGES)}"
    closed = status in ("resolved", "archived", "expired", "discarded")
    if status == "requires_review":
        retry_count = 2
    elif status == "replaying":
        retry_count = 1
    elif status in ("resolved", "archived"):
        retry_count = rng.choice((0, 1, 1, 2))
    else:
        retry_count = rng.choice((0, 0, 1))
    attempts = [{"n": k + 1, "at": (created + timedelta(minutes=k + 1)).isoformat(),
                 "ok": False, "error": message} for k in range(retry_count)]
    last_attempt = created + timedelta(minutes=retry_count) if retry_count else None
    resolved_at = closed_at = None
    resolution_type = None
    if status in ("resolved", "archived"):
        resolved_at = created + timedelta(seconds=rng.randrange(60, 86_400))
        closed_at = resolved_at
        resolution_type = "replay" if retry_count and rng.random() < 0.7 else "manual"
    elif status == "discarded":
        closed_at = created + timedelta(seconds=rng.randrange(60, 86_400))
        resolution_type = "discard"
    elif status == "expired":
        closed_at = created + timedelta(hours=72)
    updated = closed_at or last_attempt or created
    return {
        "id": entry_id,
        "workflow_id": f"dlq-{entry_id}",
        "domain": domain,
        "failure_type": failure_type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "user_id": rng.randrange(1, 250_000) if rng.random() < 0.8 else None,
        "error_code": failure_type,
        "error_message": message,
        "snapshot_data": {"order_id": 100_000 + i, "amount_cents": rng.randrange(100, 50_000),
                          "currency": "EUR"},
        "request_data": {"method": "POST", "path": f"/v1/{domain}/{i}"},
        "response_data": {"status": rng.choice((500, 502, 503, 504))},
        "metadata": {"region": rng.choice(REGIONS)},
        "next_action_hint": "",
        "recommended_action": "replay" if rng.random() < 0.7 else "review",
        "status": status,
        "retry_count": retry_count,
        "max_retries": 2,
        "occurrences": 1 if rng.random() < 0.85 else rng.randrange(2, 6),
        "last_error": message if retry_count else None,
        "resolution_type": resolution_type,
        "resolution_notes": "",
        "attempts": attempts,
        "version": 1 + 2 * retry_count + (1 if closed else 0),
        "created_at": created,
        "updated_at": updated,
        "expires_at": created + timedelta(hours=72),
        "resolved_at": resolved_at,
        "closed_at": closed_at,
        "last_attempt_at": last_attempt,
        # Columns of later migrations; seeders drop keys the table does not have.
        "dedup_key": f"{failure_type}:{entity_id}" if rng.random() < 0.3 else None,
        "last_seen_at": created,
        "data_edits": 0,
    }


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"\r  {label}: {done:,}/{total:,} rows ({rate:,.0f} rows/s)", end="", flush=True)


def seed_sqlite(url: str, n: int, *, now: datetime | None = None) -> float:
    """Create the schema with the product's migrations and bulk-insert ``n`` rows.

    Uses SQLAlchemy Core ``insert(DLQEntry)`` executemany in chunks of
    :data:`CHUNK` rows, then ``ANALYZE`` and a WAL checkpoint.

    Returns:
        Seconds spent.
    """
    started = time.perf_counter()
    engine = create_db_engine(url)
    try:
        migrate(engine)
        stmt = sa.insert(DLQEntry)
        done = 0
        with engine.connect() as conn:
            # A big page cache for the load only (per connection, not persisted).
            conn.exec_driver_sql("PRAGMA cache_size=-524288")
            for chunk in generate_rows(n, now=now or datetime.now(UTC)):
                conn.execute(stmt, [{c: row.get(c) for c in COLUMNS} for row in chunk])
                conn.commit()
                done += len(chunk)
                _progress("sqlite seed", done, n, started)
            print()
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _copy_value(name: str, value: Any) -> Any:
    if value is not None and name in JSON_COLUMNS:
        return json.dumps(value, separators=(",", ":"))
    return value


def seed_postgresql(engine: Engine, libpq_url: str, n: int, *,
                    now: datetime | None = None) -> float:
    """Create the schema on ``engine`` and load ``n`` rows with ``COPY ... FROM STDIN``.

    Then ``VACUUM (ANALYZE)``: ANALYZE for the planner's statistics, VACUUM to
    set the visibility map as autovacuum would on a settled table (without it
    no index-only scan is possible right after a bulk load). The counter table
    too: the load's triggers updated its few rows a million times, and the dead
    versions autovacuum would long have removed (its threshold for a 50-row
    table is about 60 dead rows) otherwise make every facet read scan 50 MB.

    Returns:
        Seconds spent.
    """
    import psycopg

    started = time.perf_counter()
    migrate(engine)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    done = 0
    with psycopg.connect(libpq_url) as conn:
        for chunk in generate_rows(n, now=now or datetime.now(UTC)):
            with conn.cursor() as cur, cur.copy(
                    f"COPY dlq_entries ({columns}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(tuple(_copy_value(c, row.get(c)) for c in COLUMNS))
            conn.commit()
            done += len(chunk)
            _progress("postgresql seed", done, n, started)
        print()
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) dlq_entries, dlq_entry_counts")
    return time.perf_counter() - started


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.DBAPIError:
            return None


def migrate_kept(engine: Engine) -> tuple[str | None, str | None]:
    """Bring a kept (reused) database to the migrations' head, re-analysing if it moved.

    The schema evolves between runs; rows of a column added since stay NULL.

    Returns:
        The revision before and after.
    """
    before = _revision(engine)
    migrate(engine)
    after = _revision(engine)
    if after != before:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM (ANALYZE) dlq_entries, dlq_entry_counts")
            else:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
    return before, after
