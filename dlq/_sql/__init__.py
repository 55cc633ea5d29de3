"""SQL behind the DLQ: keyword-only functions over a session, and the repository.

The entry workflow's ``persist_entry`` activity writes through
:func:`upsert_entry` and :func:`append_audit_events`; the service reads
through :class:`SQLModelRepository`. Tests call both directly.

Modules: :mod:`~dlq._sql.writes` (what the workflow projects),
:mod:`~dlq._sql.lists` (list pages and their SQL), :mod:`~dlq._sql.queries`
(single entries, finders, stats, facets), :mod:`~dlq._sql.maintenance`
(retention), :mod:`~dlq._sql.purges` (the purge record),
:mod:`~dlq._sql.bulk` (redrive sets) and
:mod:`~dlq._sql.repository` (the contract and its implementation).
"""

from dlq._sql.bulk import bulk_breakdown, bulk_page_ids, drop_bulk_set, freeze_bulk_set
from dlq._sql.groups import ensure_group
from dlq._sql.lists import (
    DATETIME_COLUMNS,
    LIST_COLUMNS,
    NEWEST_FIRST,
    conditions,
    count_entries,
    find_entries,
    find_entries_after,
    list_page,
)
from dlq._sql.maintenance import (
    archive_closed,
    cleanup_counts,
    count_archived_older_than,
    mark_expired,
    purge_archived,
)
from dlq._sql.purges import find_purged_entry, get_purge, list_purges
from dlq._sql.queries import (
    OPEN,
    current_entry_id,
    entry_to_data,
    entry_to_dict,
    expired_entry_ids,
    facet_counts,
    find_expired,
    find_open,
    find_sla_breached,
    get_entry,
    get_entry_detail,
    get_entry_row,
    list_audit_events,
    stats,
)
from dlq._sql.repository import FailedOperationRepository, SQLModelRepository
from dlq._sql.writes import (
    PAYLOAD_FIELDS,
    append_audit_events,
    load_payload,
    save_payload,
    upsert_entry,
)

__all__ = [
    "DATETIME_COLUMNS",
    "LIST_COLUMNS",
    "NEWEST_FIRST",
    "OPEN",
    "PAYLOAD_FIELDS",
    "FailedOperationRepository",
    "SQLModelRepository",
    "append_audit_events",
    "archive_closed",
    "bulk_breakdown",
    "bulk_page_ids",
    "cleanup_counts",
    "conditions",
    "count_archived_older_than",
    "count_entries",
    "current_entry_id",
    "drop_bulk_set",
    "ensure_group",
    "entry_to_data",
    "entry_to_dict",
    "expired_entry_ids",
    "facet_counts",
    "find_entries",
    "find_entries_after",
    "find_expired",
    "find_open",
    "find_purged_entry",
    "find_sla_breached",
    "freeze_bulk_set",
    "get_entry",
    "get_entry_detail",
    "get_entry_row",
    "get_purge",
    "list_audit_events",
    "list_page",
    "list_purges",
    "load_payload",
    "mark_expired",
    "purge_archived",
    "save_payload",
    "stats",
    "upsert_entry",
]
