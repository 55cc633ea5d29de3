"""What routes share: the service, JSON answers without re-encoding, the id forms."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from dlq._config import DLQConfig
from dlq._service import AsyncDLQService

__all__ = ["Json", "config", "entry_id", "service"]


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
