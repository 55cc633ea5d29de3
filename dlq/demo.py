"""A small, realistic demo: three failures and the replay handlers that settle them.

Importing this module registers the demo replay handlers, so the worker picks
them up with ``python worker.py --handlers dlq.demo``. :func:`produce` stores
the failures through the public API; ``make run`` (see ``dlq._devstack``)
does both for you. Against a stack that is already running, store a fresh set
with ``python -m dlq.demo``.

The three entries show the three ways an entry settles:

* a webhook delivery that timed out; the receiver is back, so the first
  automatic replay succeeds and the entry ends ``resolved``;
* a payment the gateway rejects for a reason a retry cannot fix (a poison
  pill); every automatic replay fails and the entry ends ``requires_review``
  once its budget of ``max_replay_attempts`` is spent;
* an inventory stock update that lost a concurrency check; it recommends
  ``manual_check``, so it stays ``pending`` until an operator retries or
  resolves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from dlq._blocking import DLQService
from dlq._config import DLQConfig
from dlq._handlers import replay_handler
from dlq._models import FailedOperationData

__all__ = [
    "DEMO_RETRY_DELAY",
    "DemoEntry",
    "PaymentGatewayError",
    "adjust_stock",
    "charge_payment",
    "produce",
    "redeliver_webhook",
]

log = logging.getLogger("dlq.demo")

DEMO_RETRY_DELAY = 3.0
"""Seconds before the first automatic replay of a demo entry (60 by default)."""

# The currencies the demo merchant account settles in; the poison pill asks for another.
_SETTLEMENT_CURRENCIES = frozenset({"USD", "CAD"})


class PaymentGatewayError(Exception):
    """The (simulated) payment gateway refused a charge.

    Args:
        code: The gateway's error code.
        message: The gateway's explanation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# --- replay handlers (registered at import time) --------------------------------


@replay_handler("webhook", "DELIVERY_TIMEOUT")
def redeliver_webhook(entry: FailedOperationData) -> dict[str, Any]:
    """Deliver the webhook event again; the receiving endpoint is healthy now.

    Args:
        entry: The failed delivery; ``request_data`` holds the endpoint and the event.

    Returns:
        The (simulated) response of the receiving endpoint.
    """
    url = entry.request_data["url"]
    event_id = entry.request_data["body"]["id"]
    log.info("redelivered webhook %s to %s: 200 OK", event_id, url)
    return {"status": 200, "event_id": event_id}


@replay_handler("payment", "GATEWAY_REJECTED")
def charge_payment(entry: FailedOperationData) -> dict[str, Any]:
    """Charge the order again through the (simulated) payment gateway.

    The demo order asks for a currency the merchant account does not settle
    in, so the gateway rejects it every time: a poison pill that only a human
    can fix.

    Args:
        entry: The failed charge; ``request_data`` holds the charge request.

    Returns:
        The gateway's charge record when the charge goes through.

    Raises:
        PaymentGatewayError: The gateway rejected the charge.
    """
    charge = entry.request_data
    currency = str(charge["currency"]).upper()
    if currency not in _SETTLEMENT_CURRENCIES:
        raise PaymentGatewayError(
            "currency_not_supported",
            f"merchant account {charge['merchant_account']} cannot settle {currency} "
            f"(settles in {', '.join(sorted(_SETTLEMENT_CURRENCIES))})",
        )
    log.info("charged %s %s for order %s", charge["amount"], currency, charge["order_id"])
    return {"id": f"ch_{charge['order_id']}", "status": "succeeded"}


@replay_handler("inventory", "STOCK_UPDATE_CONFLICT")
def adjust_stock(entry: FailedOperationData) -> dict[str, Any]:
    """Apply the stock adjustment again, after an operator checked the counts.

    Args:
        entry: The failed adjustment; ``request_data`` holds the adjustment.

    Returns:
        The (simulated) new stock level.
    """
    adjustment = entry.request_data
    on_hand = entry.snapshot_data["on_hand"] + adjustment["delta"]
    log.info("adjusted %s at %s by %+d: %d on hand", adjustment["sku"],
             adjustment["warehouse"], adjustment["delta"], on_hand)
    return {"sku": adjustment["sku"], "on_hand": on_hand}


# --- the producer ------------------------------------------------------------------


@dataclass(frozen=True)
class DemoEntry:
    """One stored demo entry.

    Attributes:
        label: Short description for people.
        dlq_id: Id of the stored entry (its workflow id is ``dlq-<dlq_id>``).
        domain: Business domain of the entry.
        expected_status: The status the entry settles in.
    """

    label: str
    dlq_id: str
    domain: str
    expected_status: str


def _failures(order: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, expected status, store_failure arguments) of the demo failures."""
    return [
        ("webhook delivery timed out; the receiver is back", "resolved", dict(
            domain="webhook", failure_type="DELIVERY_TIMEOUT",
            entity_type="webhook_endpoint", entity_id="we_1PqT8x",
            error_code="ETIMEDOUT",
            error_message="POST https://hooks.acme-logistics.example/orders timed out after "
                          "10.0s (attempt 5 of 5)",
            snapshot_data={"endpoint_id": "we_1PqT8x", "endpoint_status": "enabled",
                           "consecutive_failures": 5, "last_success_at": "2026-11-28T13:02:11Z"},
            request_data={
                "method": "POST", "url": "https://hooks.acme-logistics.example/orders",
                "headers": {"Content-Type": "application/json",
                            "Webhook-Id": f"msg_{order}_shipped",
                            "Webhook-Signature": "v1,<redacted>"},
                "body": {"id": f"evt_{order}_shipped", "type": "order.shipped",
                         "data": {"order_id": order, "carrier": "UPS",
                                  "tracking_number": "1Z999AA10123456784"}},
            },
            response_data={"error": "ReadTimeout", "elapsed_ms": 10003},
            metadata={"service": "notifications", "delivery_attempts": 5,
                      "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
            next_action_hint="Receiver was returning timeouts during its deploy; replay "
                             "once the endpoint answers again.",
            recommended_action="replay",
        )),
        ("charge rejected by the gateway (a poison pill)", "requires_review", dict(
            domain="payment", failure_type="GATEWAY_REJECTED",
            entity_type="order", entity_id=order, user_id=48213,
            error_code="currency_not_supported",
            error_message="The merchant account acct_9Xk2 cannot settle charges in EUR",
            snapshot_data={"order_id": order, "order_status": "awaiting_payment",
                           "total": "149.90", "currency": "EUR", "customer_country": "DE",
                           "payment_method": "pm_card_visa_4242"},
            request_data={"order_id": order, "amount": 14990, "currency": "eur",
                          "merchant_account": "acct_9Xk2",
                          "payment_method": "pm_card_visa_4242",
                          "idempotency_key": f"charge-{order}-1"},
            response_data={"http_status": 400, "error": {
                "type": "invalid_request_error", "code": "currency_not_supported",
                "message": "The merchant account acct_9Xk2 cannot settle charges in EUR",
                "request_id": "req_Q7r1cS0vLz"}},
            metadata={"service": "checkout", "gateway": "psp-eu-1",
                      "trace_id": "00f067aa0ba902b7c3e1f0a9d2b5c8e1"},
            next_action_hint="Retrying will not help: enable EUR settlement on the merchant "
                             "account or re-quote the order in USD, then force-redrive.",
            recommended_action="replay",
        )),
        ("stock update conflict; needs a manual check", "pending", dict(
            domain="inventory", failure_type="STOCK_UPDATE_CONFLICT",
            entity_type="sku", entity_id="SKU-TSHIRT-BLK-M",
            error_code="VERSION_CONFLICT",
            error_message="stock row SKU-TSHIRT-BLK-M@WH-BER-1 changed concurrently "
                          "(expected version 311, found 313)",
            snapshot_data={"sku": "SKU-TSHIRT-BLK-M", "warehouse": "WH-BER-1", "on_hand": 42,
                           "reserved": 5, "version": 311},
            request_data={"sku": "SKU-TSHIRT-BLK-M", "warehouse": "WH-BER-1", "delta": -2,
                          "reason": "order_shipped", "order_id": order,
                          "expected_version": 311},
            response_data={"rows_updated": 0, "current_version": 313, "current_on_hand": 39},
            metadata={"service": "fulfilment", "consumer": "stock-events",
                      "kafka_offset": 1843321},
            next_action_hint="Two shipments raced for the same row; confirm the count in "
                             "the warehouse system before re-applying the -2.",
            recommended_action="manual_check",
        )),
    ]


def produce(service: DLQService | None = None, *, config: DLQConfig | None = None,
            order_id: str = "ord_7HcQ2m") -> list[DemoEntry]:
    """Store the demo failures (``mode="sync"``) and return what was stored.

    A DLQ worker that imports this module must be running, or the stores time out.

    Args:
        service: The service to store through; one built from ``config`` (and
            closed afterwards) if None.
        config: Configuration of that service; ``DLQ_*`` variables with a
            ``retry_delay`` of :data:`DEMO_RETRY_DELAY` seconds if None.
        order_id: Order the demo failures are about.

    Returns:
        The stored entries, in the order they were stored.

    Raises:
        RuntimeError: A store did not succeed; the message says why.
    """
    own = service is None
    if service is None:
        service = DLQService(config or replace(DLQConfig.from_settings(),
                                               retry_delay=DEMO_RETRY_DELAY))
    stored: list[DemoEntry] = []
    try:
        for label, expected, kwargs in _failures(order_id):
            result = service.store_failure(**kwargs, mode="sync")
            if not result.success or not result.dlq_id:
                raise RuntimeError(f"storing the demo {label!r} failed: {result.error}")
            stored.append(DemoEntry(label=label, dlq_id=result.dlq_id,
                                    domain=kwargs["domain"], expected_status=expected))
    finally:
        if own:
            service.close()
    return stored


if __name__ == "__main__":
    for demo in produce():
        print(f"{demo.dlq_id}  {demo.domain:<10} {demo.label} (settles {demo.expected_status})")
