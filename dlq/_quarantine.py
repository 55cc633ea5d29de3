"""The outbox's quarantine: records Temporal refuses for good, kept for an operator.

The relay retries a failed delivery with backoff, which is right for an
outage and wrong for a record Temporal will never take (a field over the
gRPC message limit, an argument the server calls invalid): such a record
would stay in the relay's way forever. :func:`permanent_rejection` tells the
two apart; the relay moves a permanently refused record into the outbox's
``outbox_quarantine`` table with the reason. Operators see the count in
``get_capture_stats()["quarantined"]`` and ``dlq outbox stats``, and list,
inspect or delete the records (``dlq outbox quarantine list|show|delete``).

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from temporalio.service import RPCError, RPCStatusCode

from dlq._errors import DLQEntryNotFoundError
from dlq._outbox import QuarantinedRecord

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["delete_quarantined", "get_quarantined", "list_quarantined", "permanent_rejection"]

# Errors raised before anything is sent: the record itself cannot be encoded.
_UNENCODABLE = (RecursionError, UnicodeError, TypeError, OverflowError)
_TOO_LARGE = ("larger than max", "too large", "size exceeds")


def permanent_rejection(err: BaseException) -> str | None:
    """Why a delivery that raised ``err`` can never succeed, or None if it may.

    Permanent: Temporal answered ``INVALID_ARGUMENT``, refused the message as
    too large (``RESOURCE_EXHAUSTED`` about size; rate limits stay
    retryable), or the record cannot be encoded at all. Everything else
    (unreachable, timeouts, a busy server) is retried.
    """
    if isinstance(err, RPCError):
        message = err.message or str(err)
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            return f"Temporal refused the record as invalid: {message[:500]}"
        if err.status == RPCStatusCode.RESOURCE_EXHAUSTED and \
                any(marker in message.lower() for marker in _TOO_LARGE):
            return f"Temporal refused the record as too large: {message[:500]}"
        return None
    if isinstance(err, _UNENCODABLE):
        return f"the record cannot be encoded: {type(err).__name__}: {str(err)[:500]}"
    return None


def _summary(record: QuarantinedRecord, *, with_entry: bool) -> dict[str, Any]:
    try:
        entry: dict[str, Any] = json.loads(record.payload)
    except ValueError:
        entry = {}
    out: dict[str, Any] = {
        "dlq_id": record.dlq_id, "domain": entry.get("domain"),
        "failure_type": entry.get("failure_type"),
        "created_at": _iso(record.created_at), "quarantined_at": _iso(record.quarantined_at),
        "attempts": record.attempts, "reason": record.reason,
        "size_bytes": len(record.payload.encode("utf-8", "surrogatepass")),
    }
    if with_entry:
        out["entry"] = entry if entry else {"unreadable_payload": record.payload}
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def list_quarantined(service: AsyncDLQService, limit: int = 100) -> list[dict[str, Any]]:
    """The outbox records Temporal refused for good, newest first.

    Args:
        service: The service.
        limit: At most this many (1 to 10,000).

    Returns:
        One dict per record: ``dlq_id``, ``domain``, ``failure_type``,
        ``created_at``, ``quarantined_at``, ``attempts``, ``reason`` and
        ``size_bytes`` (without the entry's data; see :meth:`get_quarantined`).

    Raises:
        ValueError: ``limit`` is not an int from 1 to 10,000.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be an int from 1 to 10000, got {limit!r}")
    records = await asyncio.to_thread(service.outbox.quarantined, limit=limit)
    return [_summary(r, with_entry=False) for r in records]


async def get_quarantined(service: AsyncDLQService, dlq_id: str) -> dict[str, Any]:
    """One quarantined record with its entry's fields (``entry``), for inspection.

    Raises:
        ValueError: ``dlq_id`` is not a string.
        DLQEntryNotFoundError: No quarantined record has this id.
    """
    record = await asyncio.to_thread(service.outbox.get_quarantined, _check_id(dlq_id))
    if record is None:
        raise DLQEntryNotFoundError(f"no quarantined outbox record {dlq_id!r}")
    return _summary(record, with_entry=True)


async def delete_quarantined(service: AsyncDLQService, dlq_id: str) -> dict[str, Any]:
    """Delete a quarantined record (an operator decided it is not wanted).

    Returns:
        ``{"deleted": True, "dlq_id": ...}``.

    Raises:
        ValueError: ``dlq_id`` is not a string.
        DLQEntryNotFoundError: No quarantined record has this id.
    """
    if not await asyncio.to_thread(service.outbox.delete_quarantined, _check_id(dlq_id)):
        raise DLQEntryNotFoundError(f"no quarantined outbox record {dlq_id!r}")
    return {"deleted": True, "dlq_id": dlq_id}


def _check_id(dlq_id: object) -> str:
    if not isinstance(dlq_id, str) or not dlq_id or len(dlq_id) > 200:
        raise ValueError(f"dlq_id must be a non-empty string of at most 200 characters, "
                         f"got {type(dlq_id).__name__}")
    return dlq_id
