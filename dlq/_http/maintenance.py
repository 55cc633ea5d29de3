"""``/api/cleanup-stats`` and ``/api/maintenance``: retention, by hand and audited (admin)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dlq._errors import DLQEntryNotFoundError
from dlq._http.auth import Identity, require
from dlq._http.deps import Json, service

__all__ = ["router"]

router = APIRouter(tags=["maintenance"])
Viewer = Annotated[Identity, require("viewer")]
Admin = Annotated[Identity, require("admin")]


class ArchiveBody(BaseModel):
    """Archive closed entries; a dry run unless ``dry_run`` is false."""

    model_config = ConfigDict(extra="ignore")

    older_than_days: int | None = Field(None, ge=0, description="Default: DLQ_RETENTION_DAYS.")
    dry_run: bool = True


class PurgeBody(BaseModel):
    """Purge archived entries by age and/or id; a dry run unless ``dry_run`` is false."""

    model_config = ConfigDict(extra="ignore")

    older_than_days: int | None = Field(None, ge=0)
    ids: list[str] | None = Field(None, max_length=10000)
    reason: str = ""
    dry_run: bool = True


@router.get("/cleanup-stats", summary="What retention maintenance would find now")
async def cleanup_stats(request: Request, _: Viewer) -> Json:
    """Age buckets of closed entries, archivable, archived, purgeable, expirable."""
    stats = await service(request).get_cleanup_stats()
    return Json({**dataclasses.asdict(stats), "can_archive": stats.can_archive,
                 "can_purge": stats.can_purge})


@router.post("/maintenance/archive", summary="Archive old closed entries (admin)")
async def archive(request: Request, body: ArchiveBody, who: Admin) -> Json:
    """How many entries were (or, dry run, would be) archived; audited with the caller."""
    svc = service(request)
    days = svc.config.retention_days if body.older_than_days is None else body.older_than_days
    n = await svc.archive_old_entries(days, dry_run=body.dry_run, actor=who.name)
    return Json({"dry_run": body.dry_run, "older_than_days": days, "archived": n})


@router.post("/maintenance/purge", summary="Delete archived entries for good (admin)")
async def purge(request: Request, body: PurgeBody, who: Admin) -> Json:
    """How many were (or would be) purged; the purge record keeps who, when, why, what."""
    svc = service(request)
    ids = None if body.ids is None else [await svc.resolve_entry_id(i) for i in body.ids]
    n = await svc.purge_archived(ids, body.older_than_days, dry_run=body.dry_run,
                                 actor=who.name, reason=body.reason)
    return Json({"dry_run": body.dry_run, "purged": n})


@router.get("/maintenance/purges", summary="The purge record (newest first)")
async def purges(request: Request, _: Viewer,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Json:
    """Each purge: ``purge_id``, ``at``, ``actor``, ``reason``, ``criteria``, ``count``."""
    return Json(await service(request).list_purges(limit))


@router.get("/maintenance/purges/{purge_id}", summary="One purge with its tombstones")
async def purge_detail(request: Request, purge_id: str, _: Viewer,
                       limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> Json:
    """The purge and the entries it deleted (id, domain, failure type, times)."""
    found = await service(request).get_purge(purge_id, limit)
    if found is None:
        raise DLQEntryNotFoundError(f"no purge {purge_id}")
    return Json(found)
