"""``manage.py dlq_worker``: the DLQ worker with this project's settings and replay handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dlq.contrib.django.conf import dlq_config


class Command(BaseCommand):
    """Run the DLQ worker until SIGTERM or SIGINT (graceful: see ``DLQ_SHUTDOWN_GRACE``)."""

    help = ("Run the DLQ worker with settings.DLQ; replay handlers registered by the "
            "project's apps are served. SIGTERM/SIGINT stop it gracefully.")

    def add_arguments(self, parser: CommandParser) -> None:
        """``--handlers``: more modules that register replay handlers."""
        parser.add_argument("--handlers", default="",
                            help="Comma-separated modules that register replay handlers "
                                 "(added to settings.DLQ['HANDLER_MODULES']).")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the worker."""
        from dlq._worker import serve

        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        modules = [m.strip() for m in options["handlers"].split(",") if m.strip()]
        asyncio.run(serve(dlq_config(), modules))
