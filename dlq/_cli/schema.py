"""``dlq migrate``: the SQL schema."""

from __future__ import annotations

from dlq._blocking import DLQService
from dlq._cli._common import app, console, run
from dlq._db import create_db_engine, migrate


@app.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the SQL schema (the worker also does this at start)."""

    def call(service: DLQService) -> str:
        url = service.config.database_url
        engine = create_db_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        return engine.url.render_as_string(hide_password=True)

    console.print(f"schema at head on {run(call)}")
