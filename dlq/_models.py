"""The entry as the DLQ holds it: status, the readers' view, the workflow's state.

Nothing here does I/O, so workflow code may use it (passed through the
sandbox).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from dlq._fields import FailureFields

__all__ = [
    "CLOSED_STATUSES",
    "OPEN_STATUSES",
    "AttemptRecord",
    "AuditEvent",
    "DLQStatus",
    "EntryState",
    "FailedOperationData",
]


class DLQStatus(StrEnum):
    """Status of a DLQ entry (see the state machine in DESIGN.md)."""

    PENDING = "pending"
    REPLAYING = "replaying"
    REQUIRES_REVIEW = "requires_review"
    RESOLVED = "resolved"
    DISCARDED = "discarded"
    EXPIRED = "expired"
    ARCHIVED = "archived"


CLOSED_STATUSES = frozenset(
    {DLQStatus.RESOLVED, DLQStatus.DISCARDED, DLQStatus.EXPIRED, DLQStatus.ARCHIVED}
)
OPEN_STATUSES = frozenset({DLQStatus.PENDING, DLQStatus.REPLAYING, DLQStatus.REQUIRES_REVIEW})


class FailedOperationData(FailureFields):
    """A failed operation as replay handlers and readers see it.

    The failure's own fields come from :class:`~dlq.FailureFields`; the rest
    is the entry's state.

    Attributes:
        id: The entry's ``dlq_id``.
        status: Current status.
        retry_count: Replay attempts consumed from the current budget.
        max_retries: Size of the budget.
        occurrences: How many times a deduplicated failure happened.
        last_error: Why the last replay failed.
        redacted_paths: Dotted paths (``request_data.card.number``,
            ``error_message``) whose values were replaced with ``[Filtered]``
            at capture.
        fingerprint: The entry's failure group (``get_group``), once its row
            is written; None for entries stored with grouping off.
    """

    id: str
    status: DLQStatus = DLQStatus.PENDING
    retry_count: int = 0
    max_retries: int = 2
    occurrences: int = 1
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_seen_at: datetime | None = None
    expires_at: datetime | None = None
    resolved_at: datetime | None = None
    redacted_paths: list[str] = Field(default_factory=list)
    fingerprint: str | None = None

    @property
    def can_retry(self) -> bool:
        """Whether a normal (non-forced) retry is allowed now."""
        from dlq._state import is_retryable  # the rule lives with the state machine

        return is_retryable(self.status, self.retry_count, self.max_retries)


class AttemptRecord(BaseModel):
    """One replay attempt in an entry's history (``at`` is when it started)."""

    number: int
    at: datetime
    trigger: str  # auto | manual | force
    outcome: str  # success | failure | timeout | error | no_handler
    error: str | None = None
    duration_ms: float = 0.0
    actor: str | None = None
    counted: bool = True


class AuditEvent(BaseModel):
    """One entry in an entry's audit trail; ``seq`` is unique per entry."""

    seq: int
    at: datetime
    action: str
    actor: str | None = None
    reason: str = ""
    ticket_url: str | None = None
    from_status: DLQStatus | None = None
    to_status: DLQStatus | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EntryState(FailedOperationData):
    """The full state an entry workflow holds (returned by the ``get_state`` query)."""

    workflow_id: str
    version: int = 0
    retry_delay: float = 60
    auto_replay: bool = True
    replay_timeout: float = 30
    last_attempt_at: datetime | None = None
    next_auto_attempt_at: datetime | None = None
    closed_at: datetime | None = None
    resolution_type: str | None = None
    resolution_notes: str = ""
    payload_ref: str | None = None
    data_edits: int = 0
    data_edited_at: datetime | None = None
    # The data as captured (request_data, snapshot_data), kept at the first edit.
    original_data: dict[str, Any] | None = None
    attempts: list[AttemptRecord] = Field(default_factory=list)
    audit: list[AuditEvent] = Field(default_factory=list)
    audit_seq: int = 0
    row_written: bool = False
    # Why SQL refused the latest write of this entry for good (None once a write
    # succeeds): the entry lives in Temporal but is missing or stale in SQL.
    unprojected: str | None = None

    def to_data(self) -> FailedOperationData:
        """The entry as replay handlers receive it."""
        return FailedOperationData.model_validate(
            self.model_dump(include=set(FailedOperationData.model_fields))
        )
