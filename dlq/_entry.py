"""Building a validated entry: the one place store input is checked."""

from __future__ import annotations

import inspect
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from dlq._config import DLQConfig
from dlq._fields import DATA_FIELDS, TEXT_FIELDS, adopt_store_signature, store_args
from dlq._messages import EntryInput

__all__ = ["build_entry", "new_dlq_id", "new_entry_input", "request_context"]

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_NAME = 100
MAX_REF = 255
# Free text that may quote a secret (an exception's message, a hint).
REDACTED_TEXT_FIELDS = ("error_message", "next_action_hint")


def new_dlq_id() -> str:
    """A fresh entry id, assigned by the client before anything is written."""
    return str(uuid.uuid4())


def _check_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME:
        raise ValueError(f"{field} must be at most {MAX_NAME} characters, got {len(value)}")
    if not _NAME.match(value):
        raise ValueError(f"{field} may contain only letters, digits and '._-', got {value!r}")
    return value


def _check_data(field: str, value: Any) -> tuple[dict[str, Any], int]:
    """The value as a reader will get it back, and its size in JSON bytes."""
    if value is None:
        return {}, 2
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a dict or None, got {type(value).__name__}")
    try:
        # Round-trip so what is stored is exactly what a reader gets back.
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{field} must be JSON-serialisable: {err}") from None
    return json.loads(text), len(text.encode())


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
    _check_name("domain", fields["domain"])
    _check_name("failure_type", fields["failure_type"])
    for field in ("entity_type", "entity_id"):
        value = fields[field]
        if value is not None and (not isinstance(value, str) or len(value) > MAX_REF):
            raise ValueError(f"{field} must be a string of at most {MAX_REF} characters "
                             f"or None, got {value!r:.80}")
    dedup_key = fields["dedup_key"]
    if dedup_key is not None and (not isinstance(dedup_key, str) or not dedup_key
                                  or len(dedup_key) > MAX_REF):
        raise ValueError(f"dedup_key must be a non-empty string of at most {MAX_REF} "
                         f"characters or None, got {dedup_key!r:.80}")
    user_id = fields["user_id"]
    if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int)):
        raise ValueError(f"user_id must be an int or None, got {user_id!r}")
    values = dict(fields)
    for field in TEXT_FIELDS:
        value = values[field]
        if value is None:
            value = values[field] = ""
        if not isinstance(value, str):
            raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    sizes = {}
    for field in DATA_FIELDS:
        values[field], sizes[field] = _check_data(field, values[field])
    data_bytes = sum(sizes.values())
    if data_bytes > config.payload_max_bytes:
        listed = ", ".join(f"{f} {size / 2**20:.1f} MiB" for f, size in sizes.items())
        raise ValueError(f"entry data is {data_bytes / 2**20:.1f} MiB ({listed}), over the "
                         f"{config.payload_max_bytes / 2**20:g} MiB limit (DLQ_PAYLOAD_MAX_BYTES)")
    for field in ("error_message", "next_action_hint"):
        if len(values[field].encode()) > config.payload_inline_bytes:
            raise ValueError(f"{field} is {len(values[field].encode())} bytes, over the "
                             f"{config.payload_inline_bytes} byte limit; put details in "
                             "snapshot_data or metadata")
    context = request_context(request)
    if context:
        values["metadata"] = {**values["metadata"], "request": context}
    # Secrets are replaced here, before the entry exists anywhere (outbox,
    # Temporal, SQL, logs); every store path and new_entry_input pass here.
    redacted = config.redactor.fields(values, data_fields=DATA_FIELDS,
                                      text_fields=REDACTED_TEXT_FIELDS)
    for field in {path.split(".", 1)[0] for path in redacted} & set(DATA_FIELDS):
        # Filtered values change the size; only the fields that had one are measured again.
        new_size = len(json.dumps(values[field]).encode())
        data_bytes += new_size - sizes[field]
    return EntryInput(
        dlq_id=dlq_id or new_dlq_id(), **values, data_bytes=data_bytes, redacted_paths=redacted,
        created_at=created_at or datetime.now(UTC),
        max_retries=config.max_replay_attempts, retry_delay=config.retry_delay,
        expiry_hours=config.expiry_hours, auto_replay=config.auto_replay,
        replay_timeout=config.replay_timeout,
    )
