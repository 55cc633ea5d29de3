"""Seeding the read model directly, for query and maintenance tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq import _sql as repo
from dlq import _state as sm
from dlq._messages import EntryInput
from dlq._models import CLOSED_STATUSES, DLQStatus


def seed_entry(engine: Engine, *, domain: str = "payment", failure_type: str = "PG_TIMEOUT",
               status: str = "pending", age: timedelta = timedelta(minutes=1),
               closed_age: timedelta | None = None, retry_count: int = 0, max_retries: int = 2,
               expires_in: timedelta = timedelta(hours=72), resolution_type: str | None = None,
               attempted: bool = False, **fields: Any) -> str:
    """Write one entry row as the worker would, with the given shape and age (from now)."""
    now = datetime.now(UTC)
    dlq_id = fields.pop("dlq_id", None) or str(uuid.uuid4())
    created = now - age
    entry = EntryInput(dlq_id=dlq_id, domain=domain, failure_type=failure_type,
                       created_at=created, max_retries=max_retries, **fields)
    state = sm.new_state(entry, workflow_id=f"dlq-{dlq_id}", now=created, rand=0.5)
    state.status = DLQStatus(status)
    state.retry_count = retry_count
    state.expires_at = created + expires_in
    state.resolution_type = resolution_type
    if attempted:
        state.last_attempt_at = created
    if state.status in CLOSED_STATUSES:
        state.closed_at = now - (closed_age if closed_age is not None else age)
    with Session(engine) as session:
        repo.upsert_entry(session=session, state=state, include_data=True)
        repo.append_audit_events(session=session, entry_id=dlq_id, events=state.audit)
        session.commit()
    return dlq_id
