"""Messages between the client, the workflows and their activities.

One pydantic model in and one out for every workflow, update, signal and
activity; they cross Temporal through the pydantic data converter. Nothing
here does I/O, so workflow code may use it (passed through the sandbox).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from dlq._fields import FailureFields
from dlq._models import AuditEvent, DLQStatus, EntryState, FailedOperationData

__all__ = [
    "AuditRecord",
    "BulkFreezeInput",
    "BulkFreezeResult",
    "BulkPageInput",
    "BulkPageResult",
    "BulkReplayInput",
    "BulkReplayProgress",
    "CaptureInput",
    "CaptureResult",
    "EditDataInput",
    "EditDataResult",
    "EntryInput",
    "EntryResult",
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


# --- the entry workflow --------------------------------------------------------


class EntryInput(FailureFields):
    """Input of ``DLQEntryWorkflow``: the failure plus how the entry behaves.

    Services that run Temporal themselves build it with :func:`dlq.new_entry_input`.
    ``state`` is set only when the workflow continues as new.
    """

    dlq_id: str
    payload_ref: str | None = None
    data_bytes: int = 0
    created_at: datetime | None = None
    max_retries: int = 2
    retry_delay: float = 60
    expiry_hours: float = 72
    auto_replay: bool = True
    replay_timeout: float = 30
    # Set at capture by the redactor (dlq/_redact.py), not by callers.
    redacted_paths: list[str] = Field(default_factory=list)
    state: EntryState | None = None
    # How the store reached Temporal (sync, async, fallback): recorded in the
    # entry's "created" audit event, which the worker's metrics count.
    capture_mode: str | None = None
    # W3C trace context of the caller of a store that goes through the outbox
    # (DLQ_OTEL_ENABLED), so the relay's delivery continues the caller's trace.
    trace_context: dict[str, str] | None = None


class EntryResult(BaseModel):
    """Result of ``DLQEntryWorkflow`` once the entry is closed.

    The Web UI shows it on an entry's first page, so it says how the entry
    ended in words (``summary``) as well as in fields. Results of runs that
    closed before these fields existed hold only ``dlq_id``, ``status``,
    ``retry_count`` and ``version``.
    """

    dlq_id: str
    status: DLQStatus
    summary: str = ""
    retry_count: int
    version: int
    closed_at: datetime | None = None
    resolution_type: str | None = None
    resolution_notes: str = ""
    last_error: str | None = None
    occurrences: int = 1


class AuditRecord(BaseModel):
    """One audit event as the entry workflow's ``audit`` query returns it.

    The fields an operator reads (when, what, who, why, which ticket) and
    ``text``, the same event on one line; ``get_state`` has the full events.
    """

    seq: int
    at: datetime
    action: str
    actor: str | None = None
    reason: str = ""
    ticket_url: str | None = None
    from_status: DLQStatus | None = None
    to_status: DLQStatus | None = None
    text: str = ""


# --- updates and signals -------------------------------------------------------

# The one actor key of every command, and the reference's name for it.
ACTOR_KEYS = AliasChoices("actor", "actor_id")


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
    and not a later one sharing its dedup workflow id. Every command takes
    ``actor`` (and ``actor_id``, the reference's name for it).
    """

    # Extra keys are kept so the update validator can refuse them by name
    # (an operator's typo in `temporal workflow update` must not vanish).
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    dlq_id: str | None = None
    actor: str | None = Field(default=None, validation_alias=ACTOR_KEYS)
    reason: str = ""
    trigger: Literal["manual", "bulk"] = "manual"


class ForceRedriveInput(BaseModel):
    """Input of the ``force_redrive`` update and signal.

    ``actor`` is the key every command uses; ``actor_id`` (the reference's
    name) is accepted too.
    """

    # Extra keys are kept so the update validator can refuse them by name
    # (an operator's typo in `temporal workflow update` must not vanish).
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    dlq_id: str | None = None
    actor: str | None = Field(default=None, validation_alias=ACTOR_KEYS)
    reason: str = ""
    ticket_url: str | None = None


class ResolveInput(BaseModel):
    """Input of the ``resolve`` update and signal."""

    # Extra keys are kept so the update validator can refuse them by name
    # (an operator's typo in `temporal workflow update` must not vanish).
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    dlq_id: str | None = None
    notes: str = ""
    resolution_type: str = "manual"
    status: str = DLQStatus.RESOLVED.value
    actor: str | None = Field(default=None, validation_alias=ACTOR_KEYS)


class EditDataInput(BaseModel):
    """Input of the ``edit_data`` update and signal: edit before replay.

    ``request_data`` and ``snapshot_data`` are JSON merge patches (RFC 7396) on
    the entry's current data; the next replay uses the result. ``actor`` is
    required (the edit is audited with its diff). ``max_bytes`` bounds the
    edited data (the service sends ``DLQ_PAYLOAD_INLINE_BYTES``).
    """

    # Extra keys are kept so the update validator can refuse them by name
    # (an operator's typo in `temporal workflow update` must not vanish).
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    dlq_id: str | None = None
    request_data: dict[str, Any] | None = None
    snapshot_data: dict[str, Any] | None = None
    actor: str | None = Field(default=None, validation_alias=ACTOR_KEYS)
    reason: str = ""
    max_bytes: int = 256 * 1024

    def patch(self) -> dict[str, dict[str, Any]]:
        """The merge patches by field (fields not sent are left out)."""
        return {name: value for name, value in (("request_data", self.request_data),
                                                ("snapshot_data", self.snapshot_data))
                if value is not None}


class EditDataResult(BaseModel):
    """Result of ``edit_data``."""

    success: bool
    id: str
    status: DLQStatus
    data_edits: int
    diff: list[dict[str, Any]]


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


# --- activities ----------------------------------------------------------------


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
    # The editable data changed since the last write (edit before replay).
    data_changed: bool = False


class PersistResult(BaseModel):
    """Result of ``persist_entry``."""

    applied: bool
    version: int


# --- maintenance -----------------------------------------------------------------


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
    # Retries sent but not confirmed within DLQ_COMMAND_TIMEOUT: Temporal holds
    # them and they still run (never counted as failed).
    pending: int = 0
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
    pending: int = 0
    # The page stopped early because the redrive was paused or cancelled;
    # ``processed`` may then be 0 although the set is not exhausted.
    interrupted: bool = False


BulkReplayInput.model_rebuild()
