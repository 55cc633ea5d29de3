"""``dlq migrate``: the SQL schema."""

from __future__ import annotations

from dlq._cli._common import app, console
from dlq._config import DLQConfig
from dlq._db import create_db_engine, migrate


@app.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the SQL schema (the worker also does this at start)."""
    url = DLQConfig.from_settings().database_url
    migrate(create_db_engine(url))
    console.print(f"schema at head on {url}")
