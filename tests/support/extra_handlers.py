"""Handlers only a worker started with ``--handlers tests.support.extra_handlers`` knows."""

import dlq


@dlq.replay_handler("t-cli-flag")
def from_flag(entry: dlq.FailedOperationData) -> None:
    """Succeeds; proves the --handlers module was imported."""
