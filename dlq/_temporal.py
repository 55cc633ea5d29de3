"""Talking to Temporal: search attributes, entry workflow ids (connecting: :mod:`dlq._connect`)."""

from __future__ import annotations

import hashlib
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from dlq._messages import EntryInput

__all__ = [
    "ENTRY_WORKFLOW",
    "SEARCH_ATTRIBUTES",
    "ensure_search_attributes",
    "workflow_id_for",
]

log = logging.getLogger("dlq")

ENTRY_WORKFLOW = "DLQEntryWorkflow"
MAINTENANCE_WORKFLOW = "DLQMaintenanceWorkflow"
BULK_WORKFLOW = "BulkReplayWorkflow"
MAINTENANCE_SCHEDULE_ID = "dlq-maintenance"
WORKFLOW_ID_PREFIX = "dlq-"

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey, ...] = (
    SearchAttributeKey.for_keyword("DlqStatus"),
    SearchAttributeKey.for_keyword("DlqDomain"),
    SearchAttributeKey.for_keyword("DlqFailureType"),
    SearchAttributeKey.for_int("DlqRetryCount"),
)
_INDEXED = {
    "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def workflow_id_for(dlq_id: str) -> str:
    """The entry workflow id of ``dlq_id`` (entries without a dedup key)."""
    return f"{WORKFLOW_ID_PREFIX}{dlq_id}"


def dedup_workflow_id(domain: str, failure_type: str, dedup_key: str) -> str:
    """The workflow id shared by the successive entries of one dedup key.

    Hashed, because a dedup key is caller data of any length and alphabet.
    """
    digest = hashlib.sha256(f"{domain}\0{failure_type}\0{dedup_key}".encode()).hexdigest()
    return f"{WORKFLOW_ID_PREFIX}dedup-{digest[:40]}"


def entry_workflow_id(entry: EntryInput) -> str:
    """The workflow id an entry is started under."""
    if entry.dedup_key:
        return dedup_workflow_id(entry.domain, entry.failure_type, entry.dedup_key)
    return workflow_id_for(entry.dlq_id)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the DLQ's search attributes that the namespace lacks.

    Idempotent, so every worker calls it at start and the DLQ works against
    any Temporal server. Upserting an unregistered attribute would wedge every
    entry workflow.

    Returns:
        Names of the attributes added now.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        # The time-skipping test server cannot list, only add.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {
        key.name: _INDEXED[key.indexed_value_type.name]
        for key in SEARCH_ATTRIBUTES if key.name not in known
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
            )
        except Exception as err:
            # Two workers starting together race here; the loser sees "already exists".
            if "already exists" not in str(err).lower():
                raise
        log.info("registered search attributes %s", ", ".join(sorted(missing)))
    return sorted(missing)
