"""The app factory of ``dlq serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dlq._config import DLQConfig
from dlq._http import (
    codec,
    debug,
    entries,
    group_pages,
    groups,
    maintenance,
    metrics,
    pages,
    redrives,
)
from dlq._http.auth import Settings
from dlq._http.errors import install_error_handlers
from dlq._service import AsyncDLQService

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
DESCRIPTION = """The DLQ's operations over HTTP, and the web console at `/`.

Authenticate with `Authorization: Bearer <token>` (tokens come from
`DLQ_API_TOKENS`: `name:role:token`). Viewers read; operators retry, resolve,
edit and run bulk redrives; admins also force-redrive, archive and purge. The
actor recorded in the audit trail is the token's name. Every `{id}` takes the
bare entry id, `dlq-<id>` or a deduplicated entry's `dlq-dedup-<hex>`. Errors
are `{"error": ..., "type": ...}`.
"""


def create_app(config: DLQConfig | None = None, *, service: AsyncDLQService | None = None,
               insecure_local: bool = False) -> FastAPI:
    """Build the HTTP service.

    Args:
        config: Configuration (tokens, debug mode, Web UI link); from ``DLQ_*``
            variables if None.
        service: The service the routes call; one on ``config`` if None
            (closed when the app shuts down).
        insecure_local: No tokens: every caller is an admin named ``local``
            (serve on 127.0.0.1 only; ``dlq serve --insecure-local``).

    Raises:
        ValueError: No tokens configured and not ``insecure_local``.
    """
    config = config or DLQConfig.from_settings()
    if not config.api_tokens and not insecure_local:
        raise ValueError("no DLQ_API_TOKENS configured (use insecure_local for 127.0.0.1)")
    owned = service is None
    service = service or AsyncDLQService(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await service.close()

    app = FastAPI(title="Temporal DLQ", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.config = config
    app.state.service = service
    app.state.auth = Settings(tokens=config.api_tokens, insecure_local=insecure_local)
    install_error_handlers(app)
    for module in (entries, redrives, maintenance, groups):
        app.include_router(module.router, prefix="/api")
    if config.debug:
        # Outside debug mode the route does not exist (404, as the reference gates it).
        app.include_router(debug.router, prefix="/api")
    app.include_router(metrics.router)
    app.include_router(group_pages.router)
    app.include_router(pages.router)
    app.include_router(codec.router)  # /codec: the Web UI's and temporal CLI's codec server
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
