"""The id forms operators paste, resolved once for the CLI and the HTTP service.

An entry is named by its bare id (``3f2a…``), its workflow id
(``dlq-3f2a…``) or, for a deduplicated failure, the workflow id its
successive entries share (``dlq-dedup-<hex>``: the newest entry stored under
it). A bulk redrive is named by its workflow id (``dlq-bulk-<hex>``) or the
bare ``bulk_id`` that ``bulk_replay`` returns.

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dlq._checks import check_entry_id
from dlq._errors import DLQEntryNotFoundError

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["bulk_workflow_id", "resolve_entry_id"]

ENTRY_PREFIX = "dlq-"
DEDUP_PREFIX = "dlq-dedup-"
BULK_PREFIX = "dlq-bulk-"


async def resolve_entry_id(service: AsyncDLQService, ref: str) -> str:
    """The entry id that ``ref`` names (bare id, ``dlq-<id>`` or ``dlq-dedup-<hex>``).

    Ids the DLQ generates never start with ``dlq-``; a ``dlq-`` prefix is
    taken as the entry workflow's. Only the dedup form needs SQL.

    Raises:
        DLQEntryNotFoundError: Empty, a bulk redrive's id, or a dedup
            workflow id under which no entry is stored.
        ValueError: Longer than any id, or with a NUL or a lone surrogate.
    """
    ref = (ref or "").strip() if isinstance(ref, str) else ""
    if not ref:
        raise DLQEntryNotFoundError("no entry id given")
    check_entry_id(ref, "id")  # a NUL or a lone surrogate is no id SQL could look up
    if ref.startswith(BULK_PREFIX):
        raise DLQEntryNotFoundError(f"{ref} is a bulk redrive, not an entry; see "
                                    "`dlq redrive-status` or GET /api/redrives/{id}")
    if ref.startswith(DEDUP_PREFIX):
        found = await asyncio.to_thread(service.repository.current_entry_id, ref)
        if found is None:
            raise DLQEntryNotFoundError(f"no DLQ entry is stored under workflow id {ref}")
        return found
    if ref.startswith(ENTRY_PREFIX) and len(ref) > len(ENTRY_PREFIX):
        return ref[len(ENTRY_PREFIX):]
    return ref


def bulk_workflow_id(service: AsyncDLQService | None, ref: str) -> str:
    """The workflow id of a bulk redrive named by ``ref`` (``dlq-bulk-<hex>`` or ``<hex>``).

    Raises:
        DLQEntryNotFoundError: Empty.
    """
    ref = (ref or "").strip() if isinstance(ref, str) else ""
    if not ref:
        raise DLQEntryNotFoundError("no bulk redrive id given")
    return ref if ref.startswith(BULK_PREFIX) else f"{BULK_PREFIX}{ref}"
