"""FastAPI: one AsyncDLQService per process, opened and closed with the app."""

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

import dlq


class DeliveryError(Exception):
    """The receiver refused the webhook."""


async def send_webhook(hook_id: str) -> None:
    """Stands in for the call that fails."""
    raise DeliveryError(f"receiver answered 503 for {hook_id}")


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.dlq = dlq.AsyncDLQService()  # configured by DLQ_* variables
    yield
    # Deliver what is still queued before the process exits (a DLQ worker on the
    # host would deliver it too), then release connections.
    await app.state.dlq.drain_outbox(timeout=5)
    await app.state.dlq.close()


app = FastAPI(lifespan=lifespan)


@app.post("/webhooks/{hook_id}/deliver")
async def deliver(hook_id: str, request: Request) -> dict:
    try:
        await send_webhook(hook_id)
    except DeliveryError as err:
        # mode="async": an append to the local outbox, so the response is not
        # held up by Temporal; method, path and X-Request-ID are kept.
        result = await request.app.state.dlq.store_failure(
            domain="webhook", failure_type="HTTP_503", entity_type="webhook",
            entity_id=hook_id, error_message=str(err), recommended_action="replay",
            request=request, mode="async")
        return {"delivered": False, "dlq_id": result.dlq_id}
    return {"delivered": True}
