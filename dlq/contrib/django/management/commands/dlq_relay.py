"""``manage.py dlq_relay``: deliver this host's DLQ outbox (stores made with ``mode="async"``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dlq.contrib.django.conf import dlq_config


class Command(BaseCommand):
    """Deliver the outbox at ``settings.DLQ['OUTBOX_PATH']`` until SIGTERM (or ``--once``)."""

    help = ("Deliver the DLQ outbox of this host to Temporal until SIGTERM/SIGINT, or "
            "once with --once. A DLQ worker on the host drains it too.")

    def add_arguments(self, parser: CommandParser) -> None:
        """``--once``: deliver what is there and exit."""
        parser.add_argument("--once", action="store_true",
                            help="Deliver what the outbox holds now, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the relay."""
        from dlq._worker import serve_relay

        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        delivered = asyncio.run(serve_relay(dlq_config(), once=options["once"]))
        self.stdout.write(f"delivered {delivered} outbox records")
