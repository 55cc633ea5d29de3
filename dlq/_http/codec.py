"""``/codec``: the remote codec server the Temporal Web UI and ``temporal`` CLI call.

It speaks Temporal's remote codec protocol: ``POST /codec/encode`` and
``POST /codec/decode`` take and return JSON ``Payloads``
(``{"payloads": [{"metadata": {...}, "data": "<base64>"}]}``, protobuf JSON)
with the namespace in the ``X-Namespace`` header, and run them through the
DLQ's encryption codec (:mod:`dlq._codec`) with ``DLQ_ENCRYPTION_KEYS``.

* **Who.** With ``DLQ_API_TOKENS`` set, every call needs a bearer token
  (any role: decoding is reading); with ``--insecure-local`` calls from this
  host are let through as for the rest of ``dlq serve``. Cookies do not
  count: the Web UI is another origin, and a cross-site request must not
  ride on a console session.
* **Browsers.** CORS is answered only for ``DLQ_CODEC_CORS_ORIGINS`` (by
  default the local Web UI, ``http://localhost:8233`` and
  ``http://127.0.0.1:8233``): a preflight or request from any other origin
  is refused with 403 and no CORS headers.
* **Which namespace.** A namespace other than ``DLQ_NAMESPACE`` is refused:
  the key ring belongs to this deployment's namespace.

Errors are JSON (``{"error": ..., "type": ...}``) here, never the console's
HTML pages, and never contain payload contents.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from dlq._errors import DLQKeyError
from dlq._http.auth import LOCAL_HOSTS, Settings
from dlq._tokens import find_token

__all__ = ["router"]

router = APIRouter(prefix="/codec", tags=["codec"])
_ALLOW_HEADERS = "Authorization, Content-Type, X-Namespace"
# Protobuf JSON of Payloads: a request larger than this is refused (the server
# itself refuses payloads over 2 MiB, and gRPC messages over 4 MiB).
MAX_BODY = 8 * 1024 * 1024


def _error(status: int, message: str, kind: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"error": message, "type": kind}, status_code=status, headers=headers)


def _cors(request: Request) -> dict[str, str] | None:
    """CORS headers for the request's origin: {} without an Origin, None if it is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return {}
    if origin not in request.app.state.config.codec_cors_origins:
        return None
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin"}


def _authorized(request: Request) -> str | None:
    """None if the caller may use the codec, else why not."""
    settings: Settings = request.app.state.auth
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        if find_token(settings.tokens, token.strip()) is not None:
            return None
        return "unknown API token"
    if settings.insecure_local and not settings.tokens:
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        return None if host in LOCAL_HOSTS else f"--insecure-local serves localhost only, not " \
                                                 f"{host!r}"
    return "the codec needs an API token (Authorization: Bearer <token>)"


@router.options("/{operation}", include_in_schema=False)
async def preflight(operation: str, request: Request) -> Response:
    """The CORS preflight of a browser (the Web UI) before it posts payloads."""
    headers = _cors(request)
    if headers is None or request.headers.get("origin") is None:
        return _error(403, "origin not allowed (DLQ_CODEC_CORS_ORIGINS)", "Forbidden", {})
    if operation not in ("encode", "decode"):
        return _error(404, f"no codec operation {operation!r}", "NotFound", headers)
    # An allowed origin may send the headers it asks for (the Web UI's set
    # varies between versions); the token is still checked on the request.
    asked = request.headers.get("access-control-request-headers", "")
    return Response(status_code=204, headers={
        **headers, "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": asked or _ALLOW_HEADERS,
        "Access-Control-Max-Age": "600"})


async def _run(request: Request, operation: str) -> Response:
    headers = _cors(request)
    if headers is None:
        return _error(403, "origin not allowed (DLQ_CODEC_CORS_ORIGINS)", "Forbidden", {})
    refused = _authorized(request)
    if refused is not None:
        return _error(401, refused, "Unauthorized", {**headers, "WWW-Authenticate": "Bearer"})
    config = request.app.state.config
    namespace = request.headers.get("x-namespace")
    if namespace and namespace != config.namespace:
        return _error(400, f"this codec serves namespace {config.namespace!r}, not "
                           f"{namespace!r}", "DLQError", headers)
    if config.key_ring is None:
        return _error(404, "encryption is off (DLQ_ENCRYPTION_KEYS is not set)", "NotFound",
                      headers)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:  # refused before reading it
        return _error(413, f"request over {MAX_BODY} bytes", "ValueError", headers)
    body = await request.body()
    if len(body) > MAX_BODY:
        return _error(413, f"request over {MAX_BODY} bytes", "ValueError", headers)
    payloads = Payloads()
    try:
        json_format.Parse(body or b"{}", payloads, ignore_unknown_fields=True)
    except json_format.ParseError:
        # The parser's message may quote the body: say only what is wrong.
        return _error(400, "the body must be JSON Payloads: {\"payloads\": [...]}",
                      "ValueError", headers)
    codec = _codec(request)
    try:
        result: Any = await (codec.encode(payloads.payloads) if operation == "encode"
                             else codec.decode(payloads.payloads))
    except DLQKeyError as err:
        return _error(422, str(err), "DLQKeyError", headers)
    text = json_format.MessageToJson(Payloads(payloads=result))
    return Response(text, media_type="application/json", headers=headers)


def _codec(request: Request) -> Any:
    codec = getattr(request.app.state, "codec", None)
    if codec is None:
        from dlq._codec import EncryptionCodec

        codec = request.app.state.codec = EncryptionCodec(request.app.state.config.key_ring)
    return codec


@router.post("/encode", summary="Encrypt payloads (Temporal remote codec protocol)")
async def encode(request: Request) -> Response:
    """Encrypt JSON ``Payloads`` with the current key."""
    return await _run(request, "encode")


@router.post("/decode", summary="Decrypt payloads (Temporal remote codec protocol)")
async def decode(request: Request) -> Response:
    """Decrypt JSON ``Payloads`` (any key of the ring)."""
    return await _run(request, "decode")
