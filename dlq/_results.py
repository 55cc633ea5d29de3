"""Result types of the reference API (plain dataclasses, as the reference returns)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CleanupStats",
    "DLQBatchReplayStats",
    "DLQEntryResult",
    "DLQThrottleBatchReplayResult",
    "DLQThrottleReplayResult",
]


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
    # Sent but not confirmed in time (DLQCommandPendingError): they still run.
    pending: int = 0


@dataclass
class DLQThrottleBatchReplayResult:
    """Result of a batch throttle-aware DLQ replay operation."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    early_stop_reason: str | None = None
    pending: int = 0


@dataclass
class DLQThrottleReplayResult:
    """Result of a single throttle-aware DLQ replay operation."""

    success: bool
    entry_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    # The retry was sent but not confirmed in time; it still runs (not a failure).
    pending: bool = False


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
