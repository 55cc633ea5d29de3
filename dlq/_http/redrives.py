"""``/api/redrives``: bulk redrives, previewed, started, followed and controlled."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from dlq._http.auth import Identity, require
from dlq._http.deps import Json, service

__all__ = ["RedriveBody", "router"]

router = APIRouter(tags=["redrives"])
Viewer = Annotated[Identity, require("viewer")]
Operator = Annotated[Identity, require("operator")]


class RedriveBody(BaseModel):
    """A bulk redrive: which entries (the list filters) and how."""

    model_config = ConfigDict(extra="ignore")  # an "actor_id" sent here is ignored

    status: list[str] = Field(default_factory=list,
                              description="Statuses; default: the replayable entries.")
    domain: str | None = None
    failure_type: str | None = None
    entity_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    group: str | None = Field(None, description="Only this failure group (fingerprint).")
    dry_run: bool = Field(False, description="Only preview: count, breakdown, sample.")
    reason: str = Field("", description="Why (audited on every entry; required to start).")
    rate_per_second: float | None = Field(None, gt=0)
    throttle: bool = True
    canary: int = Field(0, ge=0)
    canary_min_success: float = Field(0.9, ge=0, le=1)
    page_size: int = Field(50, ge=1, le=1000)

    def filters(self) -> dict[str, object]:
        """The list filters of this redrive."""
        keys = ("status", "domain", "failure_type", "entity_type", "error_code",
                "error_message", "created_after", "created_before", "group")
        return {k: getattr(self, k) for k in keys if getattr(self, k)}


@router.post("/redrives", summary="Preview (dry_run) or start a bulk redrive (operator)")
async def start(request: Request, body: RedriveBody, who: Operator) -> Json:
    """A preview (``dry_run``) or the started run (``workflow_id``, ``bulk_id``, ``total``)."""
    out = await service(request).bulk_replay(
        body.filters(), rate_per_second=body.rate_per_second, throttle=body.throttle,
        dry_run=body.dry_run, canary=body.canary, canary_min_success=body.canary_min_success,
        actor_id=who.name, reason=body.reason, page_size=body.page_size)
    return Json(out, status_code=200 if body.dry_run else 202)


@router.get("/redrives/{ref}", summary="Progress of a bulk redrive")
async def progress(request: Request, ref: str, _: Viewer) -> Json:
    """Counts (including the running page's), status, rate; also after it ended."""
    return Json((await service(request).get_bulk_replay(ref)).model_dump(mode="json"))


@router.post("/redrives/{ref}/{command}", summary="Pause, resume or cancel (operator)")
async def control(request: Request, ref: str, command: Literal["pause", "resume", "cancel"],
                  _: Operator) -> Json:
    """Acts within a second, also in the middle of a page."""
    svc = service(request)
    await svc.signal_bulk_replay(ref, command)
    return Json({"workflow_id": svc.bulk_workflow_id(ref), "sent": command})
