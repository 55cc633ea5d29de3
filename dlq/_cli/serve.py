"""``dlq serve``: the HTTP API, its OpenAPI docs and the web console (needs the server extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlq._cli._common import BAD_INPUT, app, console, describe, fail

DEFAULT_PORT = 8000


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    insecure_local: Annotated[bool, typer.Option(
        "--insecure-local",
        help="Without DLQ_API_TOKENS: serve on 127.0.0.1 only, everyone an admin named "
             "'local' (what `make run` uses).")] = False,
) -> None:
    """Serve the JSON API (/api, OpenAPI at /docs) and the web console (/) with uvicorn."""
    try:
        import uvicorn

        from dlq._http import create_app
    except ImportError as err:
        raise fail(f"dlq serve needs the [server] extra ({err.name} is not installed); run: "
                   "pip install 'temporal-dlq[server]'", BAD_INPUT) from None
    from dlq._config import DLQConfig

    try:
        config = DLQConfig.from_settings()
        if not config.api_tokens:
            if not insecure_local:
                raise ValueError("no DLQ_API_TOKENS configured: set tokens "
                                 "(name:role:token,...) or pass --insecure-local to serve "
                                 "127.0.0.1 only")
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise ValueError(f"--insecure-local serves 127.0.0.1 only, not {host}")
            host = "127.0.0.1"
        application = create_app(config, insecure_local=not config.api_tokens)
    except ValueError as err:
        raise fail(describe(err), BAD_INPUT) from None
    console.print(f"DLQ console and API on http://{host}:{port}/ (OpenAPI: /docs)",
                  soft_wrap=True)
    uvicorn.run(application, host=host, port=port, log_level="info", access_log=False)
