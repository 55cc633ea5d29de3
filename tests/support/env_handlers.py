"""Handlers only a worker started with ``DLQ_HANDLER_MODULES=tests.support.env_handlers`` knows."""

import dlq


@dlq.replay_handler("t-env-var")
def from_env(entry: dlq.FailedOperationData) -> None:
    """Succeeds; proves the DLQ_HANDLER_MODULES module was imported."""
