"""What routes share: the service, JSON answers without re-encoding, the id forms."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from dlq._config import DLQConfig
from dlq._service import AsyncDLQService

__all__ = ["Json", "config", "entry_id", "query_filters", "query_link", "service"]


class Json(Response):
    """A JSON answer of values that are JSON-safe already (no jsonable_encoder pass)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content`` (dicts and lists of str, numbers, bools, None)."""
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode()


def service(request: Request) -> AsyncDLQService:
    """The app's service."""
    return request.app.state.service


def config(request: Request) -> DLQConfig:
    """The app's configuration."""
    return request.app.state.config


async def entry_id(request: Request, ref: str) -> str:
    """The entry id an ``{id}`` path segment names (bare, ``dlq-<id>``, ``dlq-dedup-<hex>``)."""
    return await service(request).resolve_entry_id(ref)


def query_filters(query: BaseModel) -> dict[str, Any]:
    """The filters of a list query (entries or groups): its set fields but the paging."""
    return {k: v for k, v in query.model_dump(exclude={"page", "page_size"}).items() if v}


def _default(key: str, value: Any) -> bool:
    # Left out of a link: unset filters and the default paging.
    return (value is None or value is False or value == "" or value == []
            or (key == "page" and value == 1) or (key == "page_size" and value == 20))


def query_link(path: str, query: BaseModel, **changes: Any) -> str:
    """A console link to ``path`` with ``query`` changed by ``changes``.

    A change of filters goes back to page 1; list values repeat their key.
    """
    values = {**query.model_dump(), **changes}
    if "page" not in changes:
        values["page"] = 1
    flat = [(k, item) for k, v in values.items() if not _default(k, v)
            for item in (v if isinstance(v, list) else [v])]
    return f"{path}?{urlencode(flat)}" if flat else path
