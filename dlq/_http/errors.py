"""Errors as the HTTP service answers them: ``{"error": ..., "type": ...}`` with the right status.

The public errors map as the reference maps them (``DLQEntryNotFoundError``
404, ``DLQStateConflictError`` 409, ``DLQReplayError`` 500,
``DLQUnavailableError`` 503, ``DLQInvalidInputError`` and other ``DLQError``
400, ``DLQCommandPendingError`` 202 with ``"pending": true``), bad input is 422, an
unknown or missing token 401 and too low a role 403. SQL or Temporal that
cannot be reached become ``DLQUnavailableError``. Anything else is a 500
whose body names no internals; the log has the traceback (never payloads).
Console pages (outside ``/api``) get an HTML page instead of JSON, and a 401
sends the browser to the sign-in page.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dlq._errors import DLQCommandPendingError, as_public_error, http_status
from dlq._http.auth import AuthError
from dlq._redact import redact_text

__all__ = ["error_body", "install_error_handlers"]

log = logging.getLogger("dlq.http")


def error_body(message: str, kind: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": message, "type": kind, **extra}


def _is_api(request: Request) -> bool:
    # /metrics is for Prometheus: JSON errors, never the login page.
    return request.url.path.startswith(("/api", "/metrics"))


def _answer(request: Request, status: int, message: str, kind: str,
            **extra: Any) -> Response:
    if _is_api(request) or request.url.path.startswith(("/docs", "/openapi")):
        return JSONResponse(error_body(message, kind, **extra), status_code=status)
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    from dlq._http.pages import render_error

    return render_error(request, status, message, kind)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the routers raise to its status and body."""

    @app.exception_handler(AuthError)
    async def _auth(request: Request, err: AuthError) -> Response:
        kind = "Unauthorized" if err.status == 401 else "Forbidden"
        response = _answer(request, err.status, str(err), kind)
        if err.status == 401 and _is_api(request):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in err.errors()]
        return _answer(request, 422, "; ".join(problems) or "invalid request",
                       "ValidationError")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        return _answer(request, err.status_code, str(err.detail), "HTTPError")

    async def _any(request: Request, err: Exception) -> Response:
        config = request.app.state.config
        public = as_public_error(err, database_url=config.database_url,
                                 temporal_address=config.temporal_address)
        if public is not None:
            # A command sent but not yet confirmed is 202 Accepted, not an error.
            extra = public.details() if isinstance(public, DLQCommandPendingError) else {}
            return _answer(request, http_status(public), str(public), type(public).__name__,
                           **extra)
        if isinstance(err, ValueError):
            return _answer(request, 422, str(err).splitlines()[0] if str(err) else "bad input",
                           "ValueError")
        # The traceback's messages may quote request data: filtered first.
        trace = redact_text("".join(traceback.format_exception(err)))
        log.error("unexpected error on %s %s\n%s", request.method, request.url.path, trace)
        return _answer(request, 500, "internal error; the server log has the details",
                       "InternalError")

    # The DLQ's errors, bad input and unreachable SQL or Temporal are answers,
    # not crashes: handled by class (Starlette would log and re-raise a
    # handler registered for Exception itself, which stays the last resort).
    import sqlalchemy.exc
    from temporalio.service import RPCError

    from dlq._errors import DLQError

    for cls in (DLQError, ValueError, sqlalchemy.exc.DBAPIError, RPCError, Exception):
        app.add_exception_handler(cls, _any)
