"""``manage.py dlq_migrate``: create or upgrade the DLQ read model's schema."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from dlq.contrib.django.conf import dlq_config


class Command(BaseCommand):
    """Run the DLQ's Alembic migrations on ``settings.DLQ['DATABASE_URL']``."""

    help = "Create or upgrade the DLQ read model (the worker also does this at start)."

    def handle(self, *args: Any, **options: Any) -> None:
        """Migrate to the newest schema."""
        from sqlalchemy.engine import make_url

        from dlq._db import create_db_engine, migrate

        url = dlq_config().database_url
        engine = create_db_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        self.stdout.write(f"DLQ schema at head on {make_url(url).render_as_string()}")
