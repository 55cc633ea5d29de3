"""``/api/entries``, facets, stats, SLA breaches: finding and acting on entries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dlq._errors import DLQEntryNotFoundError
from dlq._http.auth import Identity, require
from dlq._http.deps import Json, entry_id, query_filters, service

__all__ = ["ListQuery", "entry_detail", "router"]

router = APIRouter(tags=["entries"])
Viewer = Annotated[Identity, require("viewer")]
Operator = Annotated[Identity, require("operator")]
Admin = Annotated[Identity, require("admin")]


class ListQuery(BaseModel):
    """The ``list_entries`` filters as query parameters, and the page."""

    model_config = ConfigDict(extra="forbid")

    status: list[str] = Field(default_factory=list, description="One or more statuses.")
    domain: str | None = None
    failure_type: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    user_id: int | None = None
    error_code: str | None = None
    error_message: str | None = Field(None, description="Text the error message contains.")
    created_after: str | None = Field(None, description="ISO 8601.")
    created_before: str | None = Field(None, description="ISO 8601.")
    group: str | None = Field(None, description="A failure group's fingerprint.")
    page: int = Field(1, ge=1)
    page_size: int = Field(20, ge=1, le=100)

    @field_validator("status", mode="after")
    @classmethod
    def _drop_empty(cls, value: list[str]) -> list[str]:
        # A console form's "any status" sends status=""; it means no filter.
        return [s for s in value if s]


@router.get("/entries", summary="List entries (newest first)")
async def list_entries(request: Request, _: Viewer,
                       query: Annotated[ListQuery, Query()]) -> Json:
    """One page: ``results``, ``page``, ``page_size``, ``total_pages``, ``total_count``, ...."""
    return Json(await service(request).list_entries(query_filters(query), page=query.page,
                                                    page_size=query.page_size))


async def entry_detail(request: Request, ref: str) -> dict[str, Any]:
    """One entry with attempts and audit trail; a purged one's 404 says who purged it."""
    svc = service(request)
    pk = await entry_id(request, ref)
    entry = await svc.get_entry(pk)
    if entry is not None:
        return entry
    purged = await svc.find_purged_entry(pk)
    if purged is not None:
        p = purged["purge"]
        raise DLQEntryNotFoundError(f"DLQ entry {pk} was purged at {p['at']} by {p['actor']} "
                                    f"(purge {p['purge_id']})")
    raise DLQEntryNotFoundError(f"DLQ entry {ref} not found")


@router.get("/entries/{ref}", summary="One entry with its attempts and audit trail")
async def get_entry(request: Request, ref: str, _: Viewer) -> Json:
    """The entry's fields, data (and ``original_data`` once edited), attempts and audit events."""
    return Json(await entry_detail(request, ref))


@router.get("/facets", summary="Status x domain counts")
async def facets(request: Request, _: Viewer, status: str | None = None,
                 domain: str | None = None) -> Json:
    """``by_status`` scoped by ``domain`` and ``by_domain`` scoped by ``status``."""
    return Json(await service(request).get_facet_counts(status=status, domain=domain))


@router.get("/stats", summary="Counts, oldest open entry, replay success rate")
async def stats(request: Request, _: Viewer) -> Json:
    """What ``get_stats`` returns."""
    return Json(await service(request).get_stats())


@router.get("/sla-breaches", summary="Open entries older than their domain's SLA")
async def sla_breaches(request: Request, _: Viewer,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Json:
    """Entries past ``DLQ_SLA_THRESHOLDS`` (data fields left out)."""
    rows = await service(request).get_sla_breached_entries(limit=limit)
    return Json([e.model_dump(mode="json", exclude={"snapshot_data", "request_data",
                                                    "response_data", "metadata"})
                 for e in rows])


class ForceRedriveBody(BaseModel):
    """Body of a force-redrive: why (required) and a ticket."""

    model_config = ConfigDict(extra="ignore")  # an "actor" sent here is ignored

    reason: str = Field(min_length=1, description="Why (audited).")
    ticket_url: str | None = None


class ResolveBody(BaseModel):
    """Body of a resolve."""

    model_config = ConfigDict(extra="ignore")

    notes: str = ""
    status: Literal["resolved", "discarded"] = "resolved"
    resolution_type: str = "manual"


class BatchResolveBody(ResolveBody):
    """Body of a batch resolve: the ids (any id form)."""

    ids: list[str] = Field(min_length=1, max_length=1000)


class EditBody(BaseModel):
    """Body of an edit before replay: JSON merge patches and why."""

    model_config = ConfigDict(extra="ignore")

    request_data: dict[str, Any] | None = None
    snapshot_data: dict[str, Any] | None = None
    reason: str = ""


@router.post("/entries/{ref}/retry", summary="Replay an entry within its budget (operator)")
async def retry(request: Request, ref: str, who: Operator) -> Json:
    """``success`` is True only if the replay handler succeeded."""
    svc = service(request)
    return Json(await svc.retry_entry(await entry_id(request, ref), actor=who.name))


@router.post("/entries/{ref}/force-redrive", summary="Replay past the cap (admin)")
async def force_redrive(request: Request, ref: str, body: ForceRedriveBody,
                        who: Admin) -> Json:
    """Grants a fresh budget and replays now; audited with the caller's name and the reason."""
    svc = service(request)
    return Json(await svc.force_redrive_entry(await entry_id(request, ref), actor_id=who.name,
                                              reason=body.reason, ticket_url=body.ticket_url))


@router.post("/entries/resolve", summary="Resolve many entries (operator)")
async def resolve_batch(request: Request, body: BatchResolveBody, who: Operator) -> Json:
    """Per-id results; one bad id does not stop the others."""
    svc = service(request)
    ids, bad = [], []
    for ref in body.ids:
        try:
            ids.append(await svc.resolve_entry_id(ref))
        except DLQEntryNotFoundError as err:
            bad.append({"id": ref, "success": False, "error": str(err),
                        "error_type": "DLQEntryNotFoundError"})
    out = await svc.resolve_entries_batch(ids, body.resolution_type, body.status, body.notes,
                                          actor=who.name)
    out["results"] += bad
    out["failed"] += len(bad)
    out["total"] = len(body.ids)
    return Json(out)


@router.post("/entries/{ref}/resolve", summary="Resolve or discard an entry (operator)")
async def resolve(request: Request, ref: str, who: Operator,
                  body: ResolveBody | None = None) -> Json:
    """Closes the entry as ``resolved`` or ``discarded``."""
    body = body or ResolveBody()
    svc = service(request)
    return Json(await svc.resolve_entry(await entry_id(request, ref), body.notes,
                                        body.resolution_type, body.status, actor=who.name))


@router.patch("/entries/{ref}/data", summary="Edit data before replay (operator)")
async def edit_data(request: Request, ref: str, body: EditBody, who: Operator) -> Json:
    """JSON merge patches on ``request_data``/``snapshot_data``; audited with the diff."""
    svc = service(request)
    return Json(await svc.edit_entry_data(
        await entry_id(request, ref), request_data=body.request_data,
        snapshot_data=body.snapshot_data, actor=who.name, reason=body.reason))
