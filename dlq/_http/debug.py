"""``POST /api/test-entries``: a synthetic entry through the production path (DLQ_DEBUG only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from dlq._http.auth import Identity, require
from dlq._http.deps import Json, service

__all__ = ["router"]

router = APIRouter(tags=["debug"])
Operator = Annotated[Identity, require("operator")]


class TestEntryBody(BaseModel):
    """The reference's ``create_test_entry`` arguments (``created_by`` is the caller)."""

    model_config = ConfigDict(extra="ignore")

    domain: str = "test"
    failure_type: str = "TEST_FAILURE"
    entity_type: str | None = "test"
    entity_id: str | None = ""
    error_message: str = "Test failure for load testing"
    snapshot_data: dict[str, Any] | None = None
    request_data: dict[str, Any] | None = None


@router.post("/test-entries", status_code=201, summary="Create a test entry (DLQ_DEBUG only)")
async def create_test_entry(request: Request, who: Operator,
                            body: TestEntryBody | None = None) -> Json:
    """201 with the new entry's ``dlq_id`` (the route exists only with ``DLQ_DEBUG=true``)."""
    body = body or TestEntryBody()
    out = await service(request).create_test_entry(
        body.domain, body.failure_type, entity_type=body.entity_type, entity_id=body.entity_id,
        error_message=body.error_message, snapshot_data=body.snapshot_data,
        request_data=body.request_data, created_by=who.name)
    if not out["success"]:
        return Json({"error": out["error"], "type": "DLQUnavailableError"}, status_code=503)
    return Json(out, status_code=201)
