"""Celery (prefork): each pool process builds its own DLQ service on first use."""

import os

from celery import Celery
from celery.signals import worker_process_shutdown

import dlq

app = Celery("shop", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))


class WarehouseError(Exception):
    """The warehouse API is down."""


def adjust_stock(sku: str, delta: int) -> None:
    """Stands in for the call that fails."""
    raise WarehouseError(f"warehouse API answered 503 for {sku}")


@app.task(bind=True, max_retries=2)
def sync_inventory(self, sku: str, delta: int) -> None:
    try:
        adjust_stock(sku, delta)
    except WarehouseError as err:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=err, countdown=2 ** self.request.retries) from err
        # Celery's retries are spent: the DLQ keeps the failure, replays it
        # later within its own budget, and operators see it.
        dlq.store_to_dlq(
            domain="inventory", failure_type="WAREHOUSE_DOWN", entity_type="sku",
            entity_id=sku, error_code="503", error_message=str(err),
            snapshot_data={"delta": delta}, request_data={"task_id": self.request.id},
            recommended_action="replay")


@worker_process_shutdown.connect
def close_dlq(**_: object) -> None:
    dlq.reset_dlq_service()
