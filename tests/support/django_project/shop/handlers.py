"""The replay handler of the shop's failed charges: the gateway is back, charging works."""

import os

import dlq


@dlq.replay_handler("shop", "GATEWAY_TIMEOUT")
def recharge(entry: dlq.FailedOperationData) -> None:
    """Succeeds, and notes the process that ran it (the worker, not a web process)."""
    entry.metadata["replayed_in"] = os.getpid()
