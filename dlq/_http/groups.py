"""``/api/groups`` and ``/api/alerts``: failure groups and the alerts the rules raised."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dlq._errors import DLQEntryNotFoundError
from dlq._http.auth import Identity, require
from dlq._http.deps import Json, query_filters, service

__all__ = ["GroupQuery", "router"]

router = APIRouter(tags=["groups"])
Viewer = Annotated[Identity, require("viewer")]


class GroupQuery(BaseModel):
    """The ``list_groups`` filters as query parameters, and the page."""

    model_config = ConfigDict(extra="forbid")

    domain: str | None = None
    failure_type: str | None = None
    error_code: str | None = None
    open: bool = Field(False, description="Only groups with open entries.")
    page: int = Field(1, ge=1)
    page_size: int = Field(20, ge=1, le=100)

    @field_validator("open", mode="before")
    @classmethod
    def _empty_is_false(cls, value: object) -> object:
        # The console's "all groups" choice sends open=""; it means no filter.
        return False if value == "" else value


@router.get("/groups", summary="Failure groups (most recently seen first)")
async def list_groups(request: Request, _: Viewer,
                      query: Annotated[GroupQuery, Query()]) -> Json:
    """One page: ``results`` (counts, open, last hour and day, first and last seen), paging."""
    return Json(await service(request).list_groups(query_filters(query), page=query.page,
                                                   page_size=query.page_size))


@router.get("/groups/{fingerprint}", summary="One failure group")
async def get_group(request: Request, fingerprint: str, _: Viewer) -> Json:
    """The group; its entries are ``GET /api/entries?group=<fingerprint>``."""
    group = await service(request).get_group(fingerprint)
    if group is None:
        raise DLQEntryNotFoundError(f"failure group {fingerprint} not found")
    return Json(group)


@router.get("/alerts", summary="Alerts raised by the alert rules (newest first)")
async def list_alerts(request: Request, _: Viewer, rule: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Json:
    """What each alert said, its subject, and whether its webhooks took it."""
    return Json(await service(request).list_alerts(limit=limit, rule=rule))
