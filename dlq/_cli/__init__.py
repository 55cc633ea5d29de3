"""``dlq``: operator commands (configuration from ``DLQ_*`` variables).

Each module adds the commands of one area to the shared :data:`app`.
"""

from dlq._cli import (  # noqa: F401 - they register commands
    entries,
    groups,
    keys,
    maintenance,
    outbox,
    queries,
    redrive,
    schema,
    serve,
    worker,
)
from dlq._cli._common import app

__all__ = ["app"]
