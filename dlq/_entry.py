"""Building a validated entry: the one place store input is checked."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from dlq._config import DLQConfig
from dlq._types import EntryInput

__all__ = ["new_dlq_id", "new_entry_input", "request_context"]

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_NAME = 100
MAX_REF = 255
DATA_FIELDS = ("snapshot_data", "request_data", "response_data", "metadata")
TEXT_FIELDS = ("error_code", "error_message", "next_action_hint", "recommended_action")


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


def request_context(request: Any) -> dict[str, Any]:
    """Framework-free forensic context from an HTTP request object.

    Reads what Django, Starlette/FastAPI and Flask requests have in common
    (method, path, a request id header), by duck typing; never the body or
    cookies.
    """
    if request is None:
        return {}
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


def new_entry_input(
    domain: str,
    failure_type: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    user_id: int | None = None,
    error_code: str = "",
    error_message: str = "",
    snapshot_data: dict[str, Any] | None = None,
    request_data: dict[str, Any] | None = None,
    response_data: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    next_action_hint: str = "",
    recommended_action: str = "",
    request: Any = None,
    *,
    config: DLQConfig | None = None,
    dlq_id: str | None = None,
    created_at: datetime | None = None,
    dedup_key: str | None = None,
) -> EntryInput:
    """Validate a failure and build the input of its ``DLQEntryWorkflow``.

    ``store_failure`` uses it; services that run Temporal themselves use it
    to start the entry workflow from their own client or workflow.

    With a ``dedup_key``, stores of the same (domain, failure_type,
    dedup_key) while an entry is open become occurrences of that entry.

    Raises:
        ValueError: Naming the first invalid field.
    """
    config = config or DLQConfig.from_settings()
    _check_name("domain", domain)
    _check_name("failure_type", failure_type)
    for field, value in (("entity_type", entity_type), ("entity_id", entity_id)):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_REF):
            raise ValueError(f"{field} must be a string of at most {MAX_REF} characters "
                             f"or None, got {value!r:.80}")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not dedup_key
                                  or len(dedup_key) > MAX_REF):
        raise ValueError(f"dedup_key must be a non-empty string of at most {MAX_REF} "
                         f"characters or None, got {dedup_key!r:.80}")
    if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int)):
        raise ValueError(f"user_id must be an int or None, got {user_id!r}")
    texts = {}
    for field, value in zip(TEXT_FIELDS, (error_code, error_message, next_action_hint,
                                          recommended_action), strict=True):
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"{field} must be a string, got {type(value).__name__}")
        texts[field] = value
    checked = {field: _check_data(field, value) for field, value in zip(
        DATA_FIELDS, (snapshot_data, request_data, response_data, metadata), strict=True)}
    data = {field: value for field, (value, _) in checked.items()}
    data_bytes = sum(size for _, size in checked.values())
    if data_bytes > config.payload_max_bytes:
        sizes = ", ".join(f"{f} {size / 2**20:.1f} MiB" for f, (_, size) in checked.items())
        raise ValueError(f"entry data is {data_bytes / 2**20:.1f} MiB ({sizes}), over the "
                         f"{config.payload_max_bytes / 2**20:g} MiB limit (DLQ_PAYLOAD_MAX_BYTES)")
    for field, value in (("error_message", texts["error_message"]),
                         ("next_action_hint", texts["next_action_hint"])):
        if len(value.encode()) > config.payload_inline_bytes:
            raise ValueError(f"{field} is {len(value.encode())} bytes, over the "
                             f"{config.payload_inline_bytes} byte limit; put details in "
                             "snapshot_data or metadata")
    context = request_context(request)
    if context:
        data["metadata"] = {**data["metadata"], "request": context}
    return EntryInput(
        dlq_id=dlq_id or new_dlq_id(),
        domain=domain, failure_type=failure_type, entity_type=entity_type,
        entity_id=entity_id, user_id=user_id, **texts, **data, dedup_key=dedup_key,
        data_bytes=data_bytes,
        created_at=created_at or datetime.now(UTC),
        max_retries=config.max_replay_attempts, retry_delay=config.retry_delay,
        expiry_hours=config.expiry_hours, auto_replay=config.auto_replay,
        replay_timeout=config.replay_timeout,
    )
