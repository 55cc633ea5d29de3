"""A checkout view whose payment gateway times out; the failure goes to the DLQ."""

import os

from django.http import HttpRequest, JsonResponse

import dlq


def charge(request: HttpRequest, order_id: str) -> JsonResponse:
    """``POST /orders/<id>/charge?mode=sync|async``: store the failed charge, report the result."""
    mode = request.GET.get("mode", "sync")
    result = dlq.store_to_dlq(
        domain="shop", failure_type="GATEWAY_TIMEOUT", entity_type="order", entity_id=order_id,
        error_code="504", error_message="payment gateway timed out after 30s",
        snapshot_data={"amount": 1299}, recommended_action="manual_check",
        request=request, mode=mode)
    return JsonResponse({"success": result.success, "dlq_id": result.dlq_id,
                         "error": result.error, "pid": os.getpid()})
