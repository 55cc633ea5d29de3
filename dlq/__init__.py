"""Temporal DLQ: a dead-letter queue for failed operations, built on Temporal.

Every failure handed to the DLQ becomes one durable ``DLQEntryWorkflow``;
a SQL read model answers queries about all of them.

The public names are imported on first use, so ``import dlq`` costs next to
nothing in a web or Celery process until it stores its first failure.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlq._alert_rules import AlertRule, AlertWebhook
    from dlq._blocking import DLQService, get_dlq_service, reset_dlq_service, store_to_dlq
    from dlq._config import DLQConfig, DLQSettings
    from dlq._connect import TemporalHooks, connect
    from dlq._entry import new_dlq_id, new_entry_input
    from dlq._errors import (
        DLQCommandPendingError,
        DLQEntryNotFoundError,
        DLQError,
        DLQInvalidInputError,
        DLQKeyError,
        DLQReplayError,
        DLQStateConflictError,
        DLQUnavailableError,
    )
    from dlq._fields import FailureFields
    from dlq._handlers import HandlerRegistry, registry, replay_handler
    from dlq._messages import AuditRecord, BulkReplayProgress, EntryInput
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

# Public name -> the private module that defines it.
_EXPORTS = {
    "AlertRule": "dlq._alert_rules",
    "AlertWebhook": "dlq._alert_rules",
    "DLQService": "dlq._blocking",
    "get_dlq_service": "dlq._blocking",
    "reset_dlq_service": "dlq._blocking",
    "store_to_dlq": "dlq._blocking",
    "DLQConfig": "dlq._config",
    "DLQSettings": "dlq._config",
    "TemporalHooks": "dlq._connect",
    "connect": "dlq._connect",
    "new_dlq_id": "dlq._entry",
    "new_entry_input": "dlq._entry",
    "DLQEntryNotFoundError": "dlq._errors",
    "DLQError": "dlq._errors",
    "DLQKeyError": "dlq._errors",
    "DLQReplayError": "dlq._errors",
    "DLQStateConflictError": "dlq._errors",
    "DLQInvalidInputError": "dlq._errors",
    "DLQCommandPendingError": "dlq._errors",
    "DLQUnavailableError": "dlq._errors",
    "FailureFields": "dlq._fields",
    "HandlerRegistry": "dlq._handlers",
    "registry": "dlq._handlers",
    "replay_handler": "dlq._handlers",
    "AuditRecord": "dlq._messages",
    "BulkReplayProgress": "dlq._messages",
    "EntryInput": "dlq._messages",
    "DLQStatus": "dlq._models",
    "FailedOperationData": "dlq._models",
    "DLQBatchReplayStats": "dlq._results",
    "DLQEntryResult": "dlq._results",
    "DLQThrottleBatchReplayResult": "dlq._results",
    "DLQThrottleReplayResult": "dlq._results",
    "AsyncDLQService": "dlq._service",
    "FailedOperationRepository": "dlq._sql",
    "SQLModelRepository": "dlq._sql",
    "ENTRY_WORKFLOW": "dlq._temporal",
    "workflow_id_for": "dlq._temporal",
    "AdaptiveThrottle": "dlq._throttle",
    "Permit": "dlq._throttle",
    "Refusal": "dlq._throttle",
}

__all__ = [
    "AdaptiveThrottle",
    "AlertRule",
    "AlertWebhook",
    "AsyncDLQService",
    "AuditRecord",
    "BulkReplayProgress",
    "DLQBatchReplayStats",
    "DLQConfig",
    "DLQEntryNotFoundError",
    "DLQEntryResult",
    "DLQError",
    "DLQKeyError",
    "DLQReplayError",
    "DLQService",
    "DLQSettings",
    "DLQStateConflictError",
    "DLQStatus",
    "DLQThrottleBatchReplayResult",
    "DLQThrottleReplayResult",
    "DLQInvalidInputError",
    "DLQCommandPendingError",
    "DLQUnavailableError",
    "ENTRY_WORKFLOW",
    "EntryInput",
    "FailedOperationData",
    "FailedOperationRepository",
    "FailureFields",
    "HandlerRegistry",
    "Permit",
    "Refusal",
    "SQLModelRepository",
    "TemporalHooks",
    "connect",
    "get_dlq_service",
    "new_dlq_id",
    "new_entry_input",
    "registry",
    "replay_handler",
    "reset_dlq_service",
    "store_to_dlq",
    "workflow_id_for",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dlq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
