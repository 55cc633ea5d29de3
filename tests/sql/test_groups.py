"""Failure groups in SQL: the group row and its trigger-kept counts, on SQLite and PostgreSQL.

Entries are written the way the worker writes them: through the
``persist_entry`` activity's code, with versions, repeats and late writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq import _state as sm
from dlq._db import DLQEntry
from dlq._filters import parse_filters
from dlq._fingerprint import fingerprint
from dlq._groups import parse_group_filters
from dlq._messages import EntryInput, PersistInput
from dlq._models import DLQStatus, EntryState
from dlq._sql import SQLModelRepository, bulk_breakdown, groups
from dlq.activities.entry import EntryActivities


@pytest.fixture
def engine(read_model: Engine) -> Engine:
    return read_model


def new_state(dlq_id: str, message: str, *, code: str = "E42", at: datetime | None = None,
              domain: str = "payment") -> EntryState:
    at = at or datetime.now(UTC)
    entry = EntryInput(dlq_id=dlq_id, domain=domain, failure_type="PG_TIMEOUT", error_code=code,
                       error_message=message, created_at=at)
    return sm.new_state(entry, workflow_id=f"dlq-{dlq_id}", now=at, rand=0.5)


def persist(activities: EntryActivities, state: EntryState, *, first: bool = False) -> bool:
    return activities.persist_entry(PersistInput(state=state, events=[],
                                                 include_data=first)).applied


def bump(state: EntryState, **changes: Any) -> EntryState:
    return state.model_copy(update={"version": state.version + 1, **changes})


def group_row(engine: Engine, fp: str) -> dict[str, Any]:
    with Session(engine) as session:
        found = groups.get_group(session=session, fingerprint=fp, now=datetime.now(UTC))
    assert found is not None
    return found


def truth(engine: Engine, fp: str) -> dict[str, int]:
    """What the counts must be: computed from the entries themselves."""
    with engine.connect() as conn:
        n, occ, open_n = conn.execute(sa.text(
            "SELECT count(*), coalesce(sum(occurrences), 0), coalesce(sum(CASE WHEN status IN "
            "('pending', 'replaying', 'requires_review') THEN 1 ELSE 0 END), 0) "
            "FROM dlq_entries WHERE fingerprint = :fp"), {"fp": fp}).one()
    return {"entries": int(n), "count": int(occ), "open_count": int(open_n)}


def test_similar_failures_share_a_group_whose_counts_follow_every_write(engine: Engine) -> None:
    acts = EntryActivities(engine, metrics=False)  # called directly: no activity context
    states = [new_state(f"g-{i}", f"order {1000 + i} timed out after {i}s") for i in range(3)]
    other = new_state("g-other", "order 1 timed out after 1s", code="E43")
    for s in (*states, other):
        assert persist(acts, s, first=True)
    fp = fingerprint("payment", "PG_TIMEOUT", "E42", "order 1 timed out after 1s")
    fp_other = fingerprint("payment", "PG_TIMEOUT", "E43", "order 1 timed out after 1s")
    assert fp != fp_other
    group = group_row(engine, fp)
    assert (group["entries"], group["count"], group["open_count"]) == (3, 3, 3)
    assert group["message"] == "order <n> timed out after <n>s"
    assert (group["last_hour"], group["last_day"]) == (3, 3)
    assert group_row(engine, fp_other)["entries"] == 1

    # A repeated first write and a late, older write change nothing.
    assert not persist(acts, states[0], first=True)
    resolved = bump(states[0], status=DLQStatus.RESOLVED)
    assert persist(acts, resolved)
    assert not persist(acts, bump(states[0], status=DLQStatus.PENDING).model_copy(
        update={"version": states[0].version}))
    assert not persist(acts, resolved)  # the same version again
    assert group_row(engine, fp)["open_count"] == 2

    # Moves between open statuses keep the open count; reopening a closed one is counted.
    replaying = bump(states[1], status=DLQStatus.REPLAYING)
    assert persist(acts, replaying)
    review = bump(replaying, status=DLQStatus.REQUIRES_REVIEW)
    assert persist(acts, review)
    assert group_row(engine, fp)["open_count"] == 2

    # A deduplicated failure's new occurrences are counted once each, in the last hour too.
    hot = bump(states[2], occurrences=5, last_seen_at=datetime.now(UTC))
    assert persist(acts, hot)
    assert not persist(acts, hot)
    group = group_row(engine, fp)
    assert (group["entries"], group["count"], group["last_hour"]) == (3, 7, 7)
    assert {k: group[k] for k in ("entries", "count", "open_count")} == truth(engine, fp)

    # Deleting an open entry (purge of an orphan, an operator's SQL) leaves the open count exact.
    with engine.begin() as conn:
        conn.execute(sa.delete(DLQEntry).where(DLQEntry.id == "g-2"))  # type: ignore[arg-type]
    assert group_row(engine, fp)["open_count"] == truth(engine, fp)["open_count"] == 1


def test_first_and_last_seen_and_the_hour_and_day_windows(engine: Engine) -> None:
    acts = EntryActivities(engine, metrics=False)  # called directly: no activity context
    now = datetime.now(UTC)
    for i, age in enumerate((timedelta(hours=30), timedelta(hours=5), timedelta(minutes=5))):
        persist(acts, new_state(f"w-{i}", f"job {i} failed", at=now - age), first=True)
    group = group_row(engine, fingerprint("payment", "PG_TIMEOUT", "E42", "job 1 failed"))
    assert group["entries"] == 3
    assert (group["last_hour"], group["last_day"]) == (1, 2)
    assert datetime.fromisoformat(group["first_seen_at"]) == pytest.approx(
        now - timedelta(hours=30), abs=timedelta(seconds=1))
    assert datetime.fromisoformat(group["last_seen_at"]) == pytest.approx(
        now - timedelta(minutes=5), abs=timedelta(seconds=1))
    # Minute counts older than a day go (the maintenance and alerts runs prune them).
    assert SQLModelRepository(engine).prune_group_minutes(now) == 1
    assert SQLModelRepository(engine).prune_group_minutes(now) == 0
    assert group_row(engine, fingerprint("payment", "PG_TIMEOUT", "E42", "job 9 failed"))[
        "entries"] == 3


def test_entries_carry_their_fingerprint_and_filter_by_group(engine: Engine) -> None:
    acts = EntryActivities(engine, metrics=False)  # called directly: no activity context
    for i in range(4):
        persist(acts, new_state(f"f-{i}", f"timeout {i}", code="A" if i < 3 else "B"), first=True)
    fp = fingerprint("payment", "PG_TIMEOUT", "A", "timeout 0")
    repo = SQLModelRepository(engine)
    assert repo.get_detail("f-0")["fingerprint"] == fp
    rows, total = repo.list_page(parse_filters({"group": fp}), 0, 10)
    assert total == 3 and {r["id"] for r in rows} == {"f-0", "f-1", "f-2"}
    assert all(r["fingerprint"] == fp for r in rows)
    after = repo.list_after(parse_filters({"group": fp}), None, 2)
    assert [r["id"] for r in after] == [r["id"] for r in rows][:2]
    with Session(engine) as session:  # what a bulk redrive of the group would take
        assert bulk_breakdown(session=session, filters=parse_filters({"group": fp}))[
            "count"] == 3
    with pytest.raises(ValueError, match="filter 'group' must be a group fingerprint"):
        parse_filters({"group": "not-a-fingerprint"})


def test_list_groups_pages_and_filters(engine: Engine) -> None:
    acts = EntryActivities(engine, metrics=False)  # called directly: no activity context
    now = datetime.now(UTC)
    for i, (domain, code) in enumerate([("payment", "A"), ("payment", "B"), ("webhook", "A")]):
        persist(acts, new_state(f"l-{i}", "boom", code=code, domain=domain,
                                at=now - timedelta(minutes=10 - i)), first=True)
    persist(acts, bump(new_state("l-0", "boom", code="A", at=now - timedelta(minutes=10)),
                       status=DLQStatus.DISCARDED))
    repo = SQLModelRepository(engine)
    rows, total = repo.list_groups(parse_group_filters(None), 0, 10, now)
    assert total == 3
    assert [r["domain"] for r in rows] == ["webhook", "payment", "payment"]  # last seen first
    rows, total = repo.list_groups(parse_group_filters({"domain": "payment"}), 0, 1, now)
    assert total == 2 and len(rows) == 1
    rows, total = repo.list_groups(parse_group_filters({"open": True}), 0, 10, now)
    assert total == 2 and all(r["open_count"] == 1 for r in rows)
    with pytest.raises(ValueError, match="unknown group filter key"):
        parse_group_filters({"colour": "red"})
    with pytest.raises(ValueError, match="'open' must be a bool"):
        parse_group_filters({"open": "yes"})
    # Text values get the entry filters' check: a NUL would be a driver error on
    # PostgreSQL, an over-long domain could match nothing.
    with pytest.raises(ValueError, match="group filter 'domain' contains a NUL"):
        parse_group_filters({"domain": "pay\x00ment"})
    with pytest.raises(ValueError, match="group filter 'error_code' is 300 characters"):
        parse_group_filters({"error_code": "E" * 300})
    with pytest.raises(ValueError, match="group filter 'domain' must be a string, got int"):
        parse_group_filters({"domain": 5})


def test_grouping_off_writes_no_fingerprint_and_no_group(engine: Engine) -> None:
    acts = EntryActivities(engine, grouping=False, metrics=False)
    persist(acts, new_state("n-0", "no group"), first=True)
    repo = SQLModelRepository(engine)
    assert repo.get_detail("n-0")["fingerprint"] is None
    assert repo.list_groups(parse_group_filters(None), 0, 10, datetime.now(UTC))[1] == 0
