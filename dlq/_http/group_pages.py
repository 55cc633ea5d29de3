"""Console pages of failure groups: the group list (with recent alerts) and one group.

A group page shows the group's counts and its newest entries, and offers a
bulk redrive of the group (the redrive flow with the ``group`` filter).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from dlq._errors import DLQEntryNotFoundError
from dlq._http.auth import Identity, require
from dlq._http.deps import query_filters, query_link, service
from dlq._http.groups import GroupQuery
from dlq._http.pages import _render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Page = Annotated[Identity, require("viewer")]


@router.get("/groups")
async def groups_page(request: Request, me: Page, query: Annotated[GroupQuery, Query()]
                      ) -> Response:
    """Failure groups, most recently seen first, and the newest alerts."""
    svc = service(request)
    page = await svc.list_groups(query_filters(query), page=query.page,
                                 page_size=query.page_size)
    alerts = await svc.list_alerts(limit=10)
    return _render(request, "groups.html", me, page=page, query=query, alerts=alerts,
                   link=lambda **c: query_link("/groups", query, **c))


@router.get("/groups/{fingerprint}")
async def group_page(request: Request, fingerprint: str, me: Page) -> Response:
    """One group: counts, first and last seen, its newest entries, redrive the group."""
    svc = service(request)
    group = await svc.get_group(fingerprint)
    if group is None:
        raise DLQEntryNotFoundError(f"failure group {fingerprint} not found")
    entries = await svc.list_entries({"group": fingerprint}, page_size=50)
    return _render(request, "group.html", me, group=group, entries=entries,
                   redrive_link="/redrives/new?" + urlencode({"group": fingerprint}))
