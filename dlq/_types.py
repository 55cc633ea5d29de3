"""Data shapes shared by the client, the entry workflow and its activities.

Nothing here does I/O, so workflow code may use it (passed through the
sandbox). Pydantic models cross Temporal through the pydantic data converter;
the result dataclasses are the reference API's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "AttemptRecord",
    "BulkFreezeInput",
    "BulkFreezeResult",
    "BulkPageInput",
    "BulkPageResult",
    "BulkReplayInput",
    "BulkReplayProgress",
    "AuditEvent",
    "CaptureInput",
    "CleanupStats",
    "CaptureResult",
    "DLQBatchReplayStats",
    "DLQEntryResult",
    "DLQStatus",
    "DLQThrottleBatchReplayResult",
    "DLQThrottleReplayResult",
    "EntryInput",
    "EntryResult",
    "EntryState",
    "FailedOperationData",
    "ForceRedriveInput",
    "MaintenanceInput",
    "MaintenanceResult",
    "PersistInput",
    "PersistResult",
    "ReplayHandlerInput",
    "ReplayHandlerResult",
    "ReplayResult",
    "ResolveInput",
    "ResolveResult",
    "RetryInput",
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


# --- reference result types --------------------------------------------------


@dataclass
class DLQEntryResult:
    """Outcome of a single DLQ store operation.

    Attributes:
        success: True when the entry exists durably (sync: workflow and SQL row).
        dlq_id: Id of the stored entry.
        error: Why the store failed, if it did.
        fallback_path: Local fallback path when the store failed but the data
            was preserved elsewhere.
    """

    success: bool
    dlq_id: str | None = None
    error: str | None = None
    fallback_path: str | None = None


@dataclass
class DLQBatchReplayStats:
    """Result of a batch replay operation (statistics)."""

    processed: int = 0
    success: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class DLQThrottleBatchReplayResult:
    """Result of a batch throttle-aware DLQ replay operation."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    early_stop_reason: str | None = None


@dataclass
class DLQThrottleReplayResult:
    """Result of a single throttle-aware DLQ replay operation."""

    success: bool
    entry_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass
class CleanupStats:
    """What retention maintenance would find now.

    Attributes:
        retention_days: Closed entries older than this may be archived.
        purge_after_days: Archived entries older than this may be purged.
        closed: Closed, not yet archived entries.
        closed_by_age: ``closed`` split by time since closing
            (``lt_1d``, ``1d_7d``, ``7d_30d``, ``30d_90d``, ``gte_90d``).
        archivable: Closed entries older than ``retention_days``.
        archived: Archived entries.
        purgeable: Archived entries older than ``purge_after_days``.
        expirable: Open entries past ``expires_at`` (the safety net's work).
    """

    retention_days: int
    purge_after_days: int
    closed: int = 0
    closed_by_age: dict[str, int] = field(default_factory=dict)
    archivable: int = 0
    archived: int = 0
    purgeable: int = 0
    expirable: int = 0

    @property
    def can_archive(self) -> bool:
        """Whether ``archive_old_entries`` would archive something."""
        return self.archivable > 0

    @property
    def can_purge(self) -> bool:
        """Whether ``purge_archived`` with the retention would delete something."""
        return self.purgeable > 0


class MaintenanceInput(BaseModel):
    """Input of ``DLQMaintenanceWorkflow`` (and its activity)."""

    retention_days: int = 30
    purge_after_days: int = 90
    dry_run: bool = False


class MaintenanceResult(BaseModel):
    """What a maintenance run changed (or, with ``dry_run``, would change)."""

    dry_run: bool
    expired: int
    archived: int
    purged: int


# --- the entry ---------------------------------------------------------------


class FailedOperationData(BaseModel):
    """A failed operation as replay handlers and readers see it.

    Attributes:
        id: The entry's ``dlq_id``.
        domain: Business domain, e.g. ``payment``.
        failure_type: Specific failure, e.g. ``PG_TIMEOUT``.
        snapshot_data: State snapshot for recovery.
        request_data: Original request payload.
        response_data: External system response.
        metadata: Additional debug context.
        status: Current status.
        retry_count: Replay attempts consumed from the current budget.
        max_retries: Size of the budget.
    """

    id: str
    domain: str
    failure_type: str
    entity_type: str | None = None
    entity_id: str | None = None
    user_id: int | None = None
    error_code: str = ""
    error_message: str = ""
    snapshot_data: dict[str, Any] = Field(default_factory=dict)
    request_data: dict[str, Any] = Field(default_factory=dict)
    response_data: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    next_action_hint: str = ""
    recommended_action: str = ""
    status: DLQStatus = DLQStatus.PENDING
    retry_count: int = 0
    max_retries: int = 2
    occurrences: int = 1
    dedup_key: str | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_seen_at: datetime | None = None
    expires_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def can_retry(self) -> bool:
        """Whether a normal (non-forced) retry is allowed now."""
        return self.status == DLQStatus.PENDING and self.retry_count < self.max_retries


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
    attempts: list[AttemptRecord] = Field(default_factory=list)
    audit: list[AuditEvent] = Field(default_factory=list)
    audit_seq: int = 0
    row_written: bool = False

    def to_data(self) -> FailedOperationData:
        """The entry as replay handlers receive it."""
        return FailedOperationData.model_validate(
            self.model_dump(include=set(FailedOperationData.model_fields))
        )


class EntryInput(BaseModel):
    """Input of ``DLQEntryWorkflow``.

    Services that run Temporal themselves build it with :func:`dlq.new_entry_input`.
    ``state`` is set only when the workflow continues as new.
    """

    dlq_id: str
    domain: str
    failure_type: str
    entity_type: str | None = None
    entity_id: str | None = None
    user_id: int | None = None
    error_code: str = ""
    error_message: str = ""
    snapshot_data: dict[str, Any] = Field(default_factory=dict)
    request_data: dict[str, Any] = Field(default_factory=dict)
    response_data: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    next_action_hint: str = ""
    recommended_action: str = ""
    dedup_key: str | None = None
    payload_ref: str | None = None
    data_bytes: int = 0
    created_at: datetime | None = None
    max_retries: int = 2
    retry_delay: float = 60
    expiry_hours: float = 72
    auto_replay: bool = True
    replay_timeout: float = 30
    state: EntryState | None = None


class EntryResult(BaseModel):
    """Result of ``DLQEntryWorkflow`` once the entry is closed."""

    dlq_id: str
    status: DLQStatus
    retry_count: int
    version: int


# --- messages ----------------------------------------------------------------


class CaptureInput(BaseModel):
    """Input of the ``capture`` update sent with the start (read-your-writes).

    ``dlq_id`` is the id the caller assigned. When it differs from the entry's
    (a dedup key matched an open entry), the capture is one more occurrence.
    """

    dlq_id: str


class CaptureResult(BaseModel):
    """Result of ``capture``: the entry exists and its SQL row is readable."""

    dlq_id: str
    status: DLQStatus
    version: int
    occurrences: int = 1


class RetryInput(BaseModel):
    """Input of the ``retry`` update and signal.

    ``dlq_id`` (set by the service) makes sure the command reaches that entry
    and not a later one sharing its dedup workflow id.
    """

    dlq_id: str | None = None
    actor: str | None = None
    reason: str = ""
    trigger: Literal["manual", "bulk"] = "manual"


class ForceRedriveInput(BaseModel):
    """Input of the ``force_redrive`` update and signal."""

    dlq_id: str | None = None
    actor_id: str | None = None
    reason: str = ""
    ticket_url: str | None = None


class ResolveInput(BaseModel):
    """Input of the ``resolve`` update and signal."""

    dlq_id: str | None = None
    notes: str = ""
    resolution_type: str = "manual"
    status: str = DLQStatus.RESOLVED.value
    actor: str | None = None


class ReplayResult(BaseModel):
    """Result of ``retry`` and ``force_redrive`` (the reference's dict shape)."""

    success: bool
    id: str
    retry_count: int
    previous_retry_count: int
    status: DLQStatus
    message: str
    error: str | None = None


class ResolveResult(BaseModel):
    """Result of ``resolve`` (the reference's dict shape)."""

    success: bool
    id: str
    previous_status: DLQStatus
    current_status: DLQStatus
    resolved_at: datetime
    notes: str


# --- activities --------------------------------------------------------------


class ReplayHandlerInput(BaseModel):
    """Input of the ``run_replay_handler`` activity.

    ``payload_ref`` set means the data fields were too large for Temporal and
    wait in SQL (a claim check); the activity loads them for the handler.
    """

    entry: FailedOperationData
    timeout: float = 30
    payload_ref: str | None = None


class ReplayHandlerResult(BaseModel):
    """Result of ``run_replay_handler``; handler errors are data, not failures."""

    outcome: str  # success | failure | timeout | no_handler
    error: str | None = None
    duration_ms: float = 0.0


class PersistInput(BaseModel):
    """Input of ``persist_entry``: the row at ``state.version`` plus new audit events.

    ``include_data`` is False once the row exists, so the (possibly large)
    immutable fields travel through history only once.
    """

    state: EntryState
    events: list[AuditEvent] = Field(default_factory=list)
    include_data: bool = True


class PersistResult(BaseModel):
    """Result of ``persist_entry``."""

    applied: bool
    version: int


# --- bulk redrive -------------------------------------------------------------


class BulkReplayInput(BaseModel):
    """Input of ``BulkReplayWorkflow``.

    ``frozen`` is set once the filter was resolved to a fixed set of ids
    (kept in SQL), so a continued-as-new run never re-resolves it.
    """

    bulk_id: str
    filters: dict[str, Any] = Field(default_factory=dict)
    actor_id: str
    reason: str
    rate_per_second: float | None = None
    throttle: bool = True
    canary: int = 0
    canary_min_success: float = 0.9
    page_size: int = 50
    frozen: bool = False
    progress: BulkReplayProgress | None = None


class BulkReplayProgress(BaseModel):
    """Progress of a bulk redrive (the ``get_progress`` query and the result)."""

    bulk_id: str
    status: str = "resolving"  # resolving | running | paused | completed | stopped | cancelled
    total: int = 0
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0
    current_rate: float = 0.0
    early_stop_reason: str | None = None
    cursor: str = ""
    started_at: datetime | None = None
    active_seconds: float = 0.0


class BulkFreezeInput(BaseModel):
    """Input of ``freeze_bulk_set``: resolve the filter to a fixed id set."""

    bulk_id: str
    filters: dict[str, Any] = Field(default_factory=dict)


class BulkFreezeResult(BaseModel):
    """Result of ``freeze_bulk_set``."""

    total: int


class BulkPageInput(BaseModel):
    """Input of ``replay_bulk_page``: the next page of the frozen set after ``after``."""

    bulk_id: str
    after: str
    limit: int
    actor_id: str
    reason: str
    rate_per_second: float | None = None
    throttle: bool = True


class BulkPageResult(BaseModel):
    """Result of ``replay_bulk_page``."""

    last: str
    processed: int
    succeeded: int
    failed: int
    skipped: int
    early_stop_reason: str | None = None
    errors: list[str] = Field(default_factory=list)


BulkReplayInput.model_rebuild()
