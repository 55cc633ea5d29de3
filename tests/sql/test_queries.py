"""List, queries, facets, stats and retention over the read model (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq import DLQConfig, DLQService, SQLModelRepository
from dlq._db import DLQEntry
from dlq._sql import get_entry_row, list_audit_events
from tests.support.seed import seed_entry

STATUSES = ["pending", "replaying", "requires_review", "resolved", "discarded", "expired",
            "archived"]


@pytest.fixture
def engine(read_model: Engine) -> Engine:
    return read_model


@pytest.fixture
def svc(engine: Engine) -> Iterator[DLQService]:
    config = DLQConfig(database_url=str(engine.url.render_as_string(hide_password=False)),
                       batch_size=10,
                       sla_thresholds={"payment": "15m", "webhook": "2h", "*": "24h"})
    with DLQService(config, repository=SQLModelRepository(engine)) as service:
        yield service


@pytest.fixture
def seeded(engine: Engine) -> dict[str, list[str]]:
    """Every status in three domains, one hour apart, newest first in each list."""
    ids: dict[str, list[str]] = {}
    hour = 0
    for domain in ("payment", "webhook", "inventory"):
        for status in STATUSES:
            hour += 1
            ids.setdefault(domain, []).append(seed_entry(
                engine, domain=domain, status=status, age=timedelta(hours=hour),
                failure_type="PG_TIMEOUT" if domain == "payment" else "HTTP_500",
                entity_type="order", entity_id=f"o-{hour}", user_id=hour % 3,
                error_code=f"E{hour % 2}", error_message=f"Gateway TIMEOUT #{hour}"))
    return ids


# --- list_entries --------------------------------------------------------------------

def test_no_filter_spans_every_status_newest_first(svc: DLQService, seeded: dict) -> None:
    page = svc.list_entries(page_size=100)
    assert page["total_count"] == 21 and len(page["results"]) == 21
    assert {r["status"] for r in page["results"]} == set(STATUSES)
    created = [r["created_at"] for r in page["results"]]
    assert created == sorted(created, reverse=True)
    assert "snapshot_data" not in page["results"][0]  # list rows leave the blobs out


@pytest.mark.parametrize(("filters", "expected"), [
    ({"status": "pending"}, 3),
    ({"status": ["pending", "requires_review"]}, 6),
    ({"domain": "payment"}, 7),
    ({"domain": "payment", "status": "resolved"}, 1),
    ({"failure_type": "HTTP_500"}, 14),
    ({"entity_type": "order", "entity_id": "o-3"}, 1),
    ({"user_id": 0}, 7),
    ({"error_code": "E1"}, 11),
    ({"error_message": "gateway timeout #1"}, 11),  # #1, #10..#19
    ({"error_message": "%"}, 0),  # a literal percent sign, not a wildcard
])
def test_filters(svc: DLQService, seeded: dict, filters: dict, expected: int) -> None:
    assert svc.list_entries(filters, page_size=100)["total_count"] == expected


def test_created_range_filters_accept_datetimes_and_iso(svc: DLQService, seeded: dict) -> None:
    now = datetime.now(UTC)
    after = now - timedelta(hours=5, minutes=30)
    before = (now - timedelta(hours=1, minutes=30)).isoformat()
    page = svc.list_entries({"created_after": after, "created_before": before})
    assert page["total_count"] == 4  # hours 2, 3, 4, 5


def test_paging_edges(svc: DLQService, engine: Engine) -> None:
    empty = svc.list_entries()
    assert empty == {"results": [], "page": 1, "page_size": 20, "total_pages": 0,
                     "total_count": 0, "has_next": False, "has_previous": False}
    for n in range(25):
        seed_entry(engine, age=timedelta(minutes=n + 1))
    last = svc.list_entries(page=3, page_size=10)
    assert (len(last["results"]), last["total_pages"], last["has_next"], last["has_previous"]) \
        == (5, 3, False, True)
    beyond = svc.list_entries(page=9, page_size=10)
    assert beyond["results"] == [] and beyond["has_previous"] and not beyond["has_next"]
    assert svc.list_entries(page=0)["page"] == 1 and svc.list_entries(page=-4)["page"] == 1
    assert svc.list_entries(page_size=0)["page_size"] == 1
    assert svc.list_entries(page_size=101)["page_size"] == 100
    pages = [svc.list_entries(page=p, page_size=10)["results"] for p in (1, 2, 3)]
    assert len({r["id"] for page in pages for r in page}) == 25


@pytest.mark.parametrize(("filters", "key"), [
    ({"colour": "red"}, "colour"),
    ({"status": 5}, "status"),
    ({"status": "lost"}, "status"),
    ({"user_id": "7"}, "user_id"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": 12}, "created_before"),
    ({"domain": ["payment"]}, "domain"),
])
def test_bad_filters_name_the_key(svc: DLQService, filters: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        svc.list_entries(filters)
    with pytest.raises(ValueError, match=key):
        svc.iter_entries(filters)


def test_bad_page_types(svc: DLQService) -> None:
    with pytest.raises(ValueError, match="page_size"):
        svc.list_entries(page_size="20")


# --- keyset cursor ----------------------------------------------------------------------

def test_cursor_visits_each_entry_once_in_order(svc: DLQService, seeded: dict) -> None:
    seen, cursor = [], None
    while True:
        page = svc.iter_entries({"domain": "webhook"}, cursor=cursor, limit=3)
        seen += page["results"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["id"] for r in seen] == seeded["webhook"]  # seeded newest first


def test_forged_or_foreign_cursor_is_rejected(svc: DLQService, seeded: dict) -> None:
    cursor = svc.iter_entries({"domain": "payment"}, limit=2)["next_cursor"]
    forged = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    with pytest.raises(ValueError, match="invalid cursor"):
        svc.iter_entries({"domain": "payment"}, cursor=forged)
    with pytest.raises(ValueError, match="other filters"):
        svc.iter_entries({"domain": "webhook"}, cursor=cursor)
    with pytest.raises(ValueError, match="invalid cursor"):
        svc.iter_entries({"domain": "payment"}, cursor="not-a-cursor")


def test_cursor_traverses_10000_rows_once_while_rows_are_inserted(svc: DLQService,
                                                                  engine: Engine) -> None:
    now = datetime.now(UTC)
    rows = [dict(id=f"bulk-{i:05d}", workflow_id=f"dlq-bulk-{i:05d}", domain="bulk",
                 failure_type="X", status="pending", created_at=now - timedelta(seconds=i % 5000),
                 updated_at=now, snapshot_data={}, request_data={}, response_data={},
                 extra_metadata={}, attempts=[]) for i in range(10_000)]
    with Session(engine) as session:
        session.execute(sa.insert(DLQEntry), rows)  # ties on created_at exercise the id tiebreak
        session.commit()
    stop = threading.Event()
    inserted: list[str] = []

    def insert_more() -> None:
        while not stop.is_set():
            inserted.append(seed_entry(engine, domain="bulk", age=timedelta(0)))
            time.sleep(0.005)

    writer = threading.Thread(target=insert_more)
    writer.start()
    try:
        seen, cursor = [], None
        while True:
            page = svc.iter_entries({"domain": "bulk"}, cursor=cursor, limit=500)
            seen += [r["id"] for r in page["results"]]
            if not (cursor := page["next_cursor"]):
                break
    finally:
        stop.set()
        writer.join()
    assert inserted, "the writer inserted nothing during the traversal"
    assert len(seen) == len(set(seen))
    assert {s for s in seen if s.startswith("bulk-")} == {r["id"] for r in rows}


# --- queries ---------------------------------------------------------------------------------

def test_pending_and_replayable(svc: DLQService, engine: Engine) -> None:
    fresh = seed_entry(engine, domain="payment", age=timedelta(minutes=5))
    capped = seed_entry(engine, domain="payment", retry_count=2, age=timedelta(minutes=9))
    other = seed_entry(engine, domain="webhook", failure_type="HTTP_500")
    seed_entry(engine, domain="payment", status="requires_review")
    pending = svc.get_pending_entries()
    assert [e.id for e in pending] == [capped, fresh, other]  # oldest first
    assert [e.id for e in svc.get_pending_entries(domain="payment")] == [capped, fresh]
    assert [e.id for e in svc.get_pending_entries(failure_type="HTTP_500")] == [other]
    assert [e.id for e in svc.get_pending_entries(limit=1)] == [capped]
    assert {e.id for e in svc.get_replayable_entries()} == {fresh, other}
    assert svc.get_entry_by_id(fresh).domain == "payment"
    assert svc.get_entry_by_id("missing") is None


def test_expired_entries_are_open_and_past_expiry(svc: DLQService, engine: Engine) -> None:
    overdue = seed_entry(engine, expires_in=timedelta(hours=-1), age=timedelta(hours=80))
    seed_entry(engine, status="expired", expires_in=timedelta(hours=-1))
    seed_entry(engine, expires_in=timedelta(hours=1))
    assert [e.id for e in svc.get_expired_entries()] == [overdue]


def test_sla_breaches_use_domain_thresholds_and_the_default(svc: DLQService,
                                                            engine: Engine) -> None:
    late_payment = seed_entry(engine, domain="payment", age=timedelta(minutes=20))
    seed_entry(engine, domain="payment", age=timedelta(minutes=10))
    seed_entry(engine, domain="webhook", age=timedelta(hours=1))
    late_webhook = seed_entry(engine, domain="webhook", age=timedelta(hours=3))
    seed_entry(engine, domain="inventory", age=timedelta(hours=23))
    late_other = seed_entry(engine, domain="inventory", age=timedelta(hours=25))
    seed_entry(engine, domain="payment", status="resolved", age=timedelta(days=3))
    breached = {e.id for e in svc.get_sla_breached_entries()}
    assert breached == {late_payment, late_webhook, late_other}
    no_default = DLQService(DLQConfig(sla_thresholds={"payment": "15m"}),
                            repository=svc.repository)
    with no_default:
        assert {e.id for e in no_default.get_sla_breached_entries()} == {late_payment}


def test_malformed_sla_thresholds_fail_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_SLA_THRESHOLDS", '{"payment": "fifteen minutes"}')
    with pytest.raises(ValueError, match="payment"):
        DLQConfig.from_settings()
    monkeypatch.setenv("DLQ_SLA_THRESHOLDS", "not json")
    with pytest.raises(ValueError, match="JSON"):
        DLQConfig.from_settings()
    with pytest.raises(ValueError, match="webhook"):
        DLQConfig(sla_thresholds={"webhook": "-2h"})


# --- counts ------------------------------------------------------------------------------------

def test_stats(svc: DLQService, seeded: dict, engine: Engine) -> None:
    seed_entry(engine, domain="payment", status="resolved", resolution_type="replay",
               attempted=True, age=timedelta(minutes=10))
    seed_entry(engine, domain="payment", status="requires_review", attempted=True,
               age=timedelta(minutes=20))
    stats = svc.get_stats()
    assert stats["total"] == 23
    assert stats["by_status"]["pending"] == 3 and stats["by_status"]["resolved"] == 4
    assert stats["by_domain"] == {"payment": 9, "webhook": 7, "inventory": 7}
    assert stats["open"] == 10
    # the oldest open entry is inventory/requires_review, 17 hours old
    assert 17 * 3600 - 60 < stats["oldest_open_age_seconds"] < 17 * 3600 + 600
    assert (stats["replay_attempted"], stats["replay_succeeded"]) == (2, 1)
    assert stats["replay_success_rate"] == 0.5
    assert (stats["stored_last_hour"], stats["stored_last_day"]) == (2, 23)


def test_facets_are_cross_scoped_and_drop_zero_buckets(svc: DLQService, seeded: dict,
                                                       engine: Engine) -> None:
    seed_entry(engine, domain="payment", status="pending")
    everything = svc.get_facet_counts()
    assert everything["by_status"]["pending"] == 4 and sum(everything["by_domain"].values()) == 22
    scoped = svc.get_facet_counts(status="pending", domain="payment")
    assert scoped["by_status"] == {s: (2 if s == "pending" else 1) for s in STATUSES}
    assert scoped["by_domain"] == {"payment": 2, "webhook": 1, "inventory": 1}
    only = svc.get_facet_counts(domain="nowhere")
    assert only["by_status"] == {} and sum(only["by_domain"].values()) == 22
    with pytest.raises(ValueError, match="status"):
        svc.get_facet_counts(status="lost")


# --- maintenance ---------------------------------------------------------------------------------

def _row(engine: Engine, dlq_id: str):
    with Session(engine) as session:
        return get_entry_row(session=session, entry_id=dlq_id)


def test_archive_moves_only_old_closed_entries(svc: DLQService, engine: Engine) -> None:
    old = {s: seed_entry(engine, status=s, age=timedelta(days=45))
           for s in ("resolved", "discarded", "expired")}
    recent = seed_entry(engine, status="resolved", age=timedelta(days=45),
                        closed_age=timedelta(days=2))
    ancient_open = [seed_entry(engine, status=s, age=timedelta(days=400))
                    for s in ("pending", "replaying", "requires_review")]
    assert svc.archive_old_entries(older_than_days=30, dry_run=True) == 3
    assert _row(engine, old["resolved"]).status == "resolved"
    assert svc.archive_old_entries(older_than_days=30) == 3
    for dlq_id in old.values():
        row = _row(engine, dlq_id)
        assert row.status == "archived" and row.version == 2
        with Session(engine) as session:
            events = list_audit_events(session=session, entry_id=dlq_id)
        assert [(e.seq, e.action, e.to_status) for e in events][-1] == (2, "archive", "archived")
    assert _row(engine, recent).status == "resolved"
    assert [_row(engine, i).status for i in ancient_open] == ["pending", "replaying",
                                                             "requires_review"]
    assert svc.archive_old_entries(older_than_days=30) == 0


def test_purge_deletes_only_archived_and_refuses_without_arguments(svc: DLQService,
                                                                   engine: Engine) -> None:
    old = [seed_entry(engine, status="archived", age=timedelta(days=200)) for _ in range(3)]
    young = seed_entry(engine, status="archived", age=timedelta(days=10))
    open_one = seed_entry(engine, status="pending", age=timedelta(days=300))
    closed = seed_entry(engine, status="resolved", age=timedelta(days=300))
    with pytest.raises(ValueError, match="refusing"):
        svc.purge_archived()
    assert svc.count_archived_older_than(90) == 3
    assert svc.purge_archived(older_than_days=90, dry_run=True) == 3
    assert svc.purge_archived(ids=[old[0], open_one, closed]) == 1
    assert _row(engine, old[0]) is None and _row(engine, open_one) and _row(engine, closed)
    with Session(engine) as session:
        assert list_audit_events(session=session, entry_id=old[0]) == []
    assert svc.purge_archived(older_than_days=90) == 2
    assert svc.count_archived_older_than(90) == 0 and _row(engine, young).status == "archived"
    assert svc.purge_archived(ids=[young], older_than_days=90) == 0


def test_cleanup_and_cleanup_stats(svc: DLQService, engine: Engine) -> None:
    for days in (0.5, 3, 10, 45, 100):
        seed_entry(engine, status="resolved", age=timedelta(days=days))
    seed_entry(engine, status="archived", age=timedelta(days=120))
    seed_entry(engine, status="archived", age=timedelta(days=5))
    stats = svc.get_cleanup_stats()
    assert stats.closed_by_age == {"lt_1d": 1, "1d_7d": 1, "7d_30d": 1, "30d_90d": 1,
                                   "gte_90d": 1}
    assert (stats.closed, stats.archivable, stats.archived, stats.purgeable) == (5, 2, 2, 1)
    assert stats.can_archive and stats.can_purge
    assert svc.cleanup_old_entries(30, dry_run=True) == {"expired": 0, "archived": 2}
    assert svc.cleanup_old_entries(30) == {"expired": 0, "archived": 2}
    after = svc.get_cleanup_stats()
    assert not after.can_archive and after.archived == 4
