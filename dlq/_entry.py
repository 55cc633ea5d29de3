"""Building a validated entry: the one place store input is checked."""

from __future__ import annotations

import inspect
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from dlq._boundary import check_failure
from dlq._config import DLQConfig
from dlq._fields import DATA_FIELDS, adopt_store_signature, store_args
from dlq._messages import EntryInput

__all__ = ["build_entry", "new_dlq_id", "new_entry_input", "request_context"]

# Free text that may quote a secret (an exception's message, a hint).
REDACTED_TEXT_FIELDS = ("error_message", "next_action_hint")

def new_dlq_id() -> str:
    """A fresh entry id, assigned by the client before anything is written."""
    return str(uuid.uuid4())


_CONTEXT_KEYS = ("method", "path", "request_id")


def request_context(request: Any) -> dict[str, Any]:
    """Framework-free forensic context from an HTTP request object, as a plain dict.

    Reads what Django, Starlette/FastAPI and Flask requests have in common
    (method, path, a request id header), by duck typing; never the body or
    cookies. A dict (a context taken earlier) gives its ``method``, ``path``
    and ``request_id`` strings.
    """
    if request is None:
        return {}
    # dict, not Mapping: a Starlette request is a Mapping (of its ASGI scope).
    if isinstance(request, dict):
        return {k: request[k] for k in _CONTEXT_KEYS if isinstance(request.get(k), str)}
    context: dict[str, Any] = {}
    method = getattr(request, "method", None)
    if isinstance(method, str):
        context["method"] = method
    path = getattr(request, "path", None)
    if path is None and getattr(request, "url", None) is not None:
        path = getattr(request.url, "path", None) or str(request.url)
    if isinstance(path, str):
        context["path"] = path
    headers = getattr(request, "headers", None)
    if headers is not None and hasattr(headers, "get"):
        request_id = headers.get("X-Request-ID") or headers.get("x-request-id")
        if request_id:
            context["request_id"] = str(request_id)
    return context


def new_entry_input(*args: Any, config: DLQConfig | None = None, dlq_id: str | None = None,
                    created_at: datetime | None = None, **kwargs: Any) -> EntryInput:
    """Validate a failure and build the input of its ``DLQEntryWorkflow``.

    Takes the failure as ``store_failure`` does (without ``mode``).
    ``store_failure`` uses the same validation; services that run Temporal
    themselves use this to start the entry workflow from their own client or
    workflow.

    With a ``dedup_key``, stores of the same (domain, failure_type,
    dedup_key) while an entry is open become occurrences of that entry.

    Args:
        *args: The failure's fields, positionally as for ``store_failure``.
        config: Budget, delays and size limits (from ``DLQ_*`` if None).
        dlq_id: The entry's id (a new one if None).
        created_at: When the failure happened (now if None).
        **kwargs: The failure's fields by name, ``request`` and ``dedup_key``.

    Raises:
        ValueError: Naming the first invalid field.
    """
    if "mode" in kwargs:
        raise TypeError("new_entry_input() got an unexpected keyword argument 'mode'")
    fields, request, _ = store_args(*args, **kwargs)
    return build_entry(fields, request, config=config or DLQConfig.from_settings(),
                       dlq_id=dlq_id, created_at=created_at)


adopt_store_signature(new_entry_input, new_entry_input, drop=("mode",), extra=tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
    for name in ("config", "dlq_id", "created_at")))


def build_entry(fields: dict[str, Any], request: Any, *, config: DLQConfig,
                dlq_id: str | None = None, created_at: datetime | None = None) -> EntryInput:
    """The checks behind :func:`new_entry_input`, on fields bound by ``store_args``.

    Raises:
        ValueError: Naming the first invalid field.
    """
    # The one boundary check (dlq._boundary): what passes fits every store downstream.
    values, data_bytes = check_failure(fields, request_context(request),
                                       max_data_bytes=config.payload_max_bytes)
    # Secrets are replaced here, before the entry exists anywhere (outbox,
    # Temporal, SQL, logs); every store path and new_entry_input pass here.
    redacted = config.redactor.fields(values, data_fields=DATA_FIELDS,
                                      text_fields=REDACTED_TEXT_FIELDS)
    if {path.split(".", 1)[0] for path in redacted} & set(DATA_FIELDS):
        # Filtered values change the size (which decides inline or claim check).
        data_bytes = sum(len(json.dumps(values[field])) for field in DATA_FIELDS)
    return EntryInput(
        dlq_id=dlq_id or new_dlq_id(), **values, data_bytes=data_bytes, redacted_paths=redacted,
        created_at=created_at or datetime.now(UTC),
        max_retries=config.max_replay_attempts, retry_delay=config.retry_delay,
        expiry_hours=config.expiry_hours, auto_replay=config.auto_replay,
        replay_timeout=config.replay_timeout,
    )
