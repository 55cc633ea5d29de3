"""Temporal DLQ: a dead-letter queue for failed operations, built on Temporal.

Every failure handed to the DLQ becomes one durable ``DLQEntryWorkflow``;
a SQL read model answers queries about all of them.
"""

from dlq._blocking import DLQService, get_dlq_service, reset_dlq_service, store_to_dlq
from dlq._config import DLQConfig, DLQSettings
from dlq._entry import new_dlq_id, new_entry_input
from dlq._errors import DLQEntryNotFoundError, DLQError, DLQReplayError, DLQStateConflictError
from dlq._fields import FailureFields
from dlq._handlers import HandlerRegistry, registry, replay_handler
from dlq._messages import BulkReplayProgress, EntryInput
from dlq._models import DLQStatus, FailedOperationData
from dlq._results import (
    DLQBatchReplayStats,
    DLQEntryResult,
    DLQThrottleBatchReplayResult,
    DLQThrottleReplayResult,
)
from dlq._service import AsyncDLQService
from dlq._sql import FailedOperationRepository, SQLModelRepository
from dlq._temporal import ENTRY_WORKFLOW, workflow_id_for
from dlq._throttle import AdaptiveThrottle, Permit, Refusal

__all__ = [
    "ENTRY_WORKFLOW",
    "AdaptiveThrottle",
    "AsyncDLQService",
    "DLQBatchReplayStats",
    "DLQConfig",
    "DLQEntryNotFoundError",
    "DLQEntryResult",
    "DLQError",
    "DLQReplayError",
    "DLQService",
    "DLQSettings",
    "DLQStateConflictError",
    "DLQStatus",
    "DLQThrottleBatchReplayResult",
    "DLQThrottleReplayResult",
    "EntryInput",
    "FailedOperationData",
    "FailedOperationRepository",
    "FailureFields",
    "BulkReplayProgress",
    "HandlerRegistry",
    "Permit",
    "Refusal",
    "SQLModelRepository",
    "get_dlq_service",
    "new_dlq_id",
    "new_entry_input",
    "registry",
    "replay_handler",
    "reset_dlq_service",
    "store_to_dlq",
    "workflow_id_for",
]
