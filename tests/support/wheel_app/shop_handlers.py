"""The shop's replay handler, imported by ``dlq-worker --handlers shop_handlers``."""

import dlq
import workflows  # the shop's own top-level package, next to the DLQ's

assert workflows.SHOP, "the shop's workflows package was shadowed"


@dlq.replay_handler("shop", "GATEWAY_TIMEOUT")
def recharge(entry: dlq.FailedOperationData) -> None:
    """The gateway is back: succeeds."""
