"""Who is calling ``dlq serve``, what their role allows, and CSRF protection.

A caller is identified by an API token from ``DLQ_API_TOKENS``: in an
``Authorization: Bearer <token>`` header (scripts), or in the ``dlq_token``
cookie the console's sign-in sets (HttpOnly, SameSite=Strict). No or an
unknown token is a 401, too low a role a 403. The token's name is the actor
recorded in the audit trail; an actor sent in a request body is ignored.

Requests that change something and are not authenticated by a bearer header
(the console's cookie, or ``--insecure-local``) must come from the console
itself: a cross-site ``Origin`` or ``Sec-Fetch-Site`` is refused, and a cookie
session must send its CSRF token (``X-CSRF-Token`` header or ``csrf_token``
form field). ``--insecure-local`` (no tokens configured) makes every caller an
admin named ``local``, on 127.0.0.1 only, and refuses other ``Host`` headers
(DNS rebinding).

Other routers (#10's codec server, #12's metrics) reuse :func:`require` and
:class:`Identity`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from dlq._tokens import ROLES, find_token, role_allows

__all__ = ["COOKIE", "AuthError", "Identity", "Settings", "csrf_token", "identify", "require"]

COOKIE = "dlq_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class AuthError(Exception):
    """A request refused for who sent it: 401 (no or unknown token) or 403 (role, CSRF)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Identity:
    """The caller.

    Attributes:
        name: The token's name: the actor recorded in audit trails.
        role: ``viewer``, ``operator`` or ``admin``.
        via: How it was authenticated: ``bearer``, ``cookie`` or ``local``.
        secret: The token (cookie sessions), for deriving the CSRF token.
    """

    name: str
    role: str
    via: str
    secret: str = ""

    def can(self, role: str) -> bool:
        """Whether this caller may do what needs ``role``."""
        return role_allows(self.role, role)


@dataclass
class Settings:
    """The app's authentication settings (``app.state.auth``)."""

    tokens: tuple[Any, ...]
    insecure_local: bool
    # Signs the CSRF token of --insecure-local sessions (no token to derive it from).
    local_secret: bytes = b""

    def __post_init__(self) -> None:
        self.local_secret = self.local_secret or secrets.token_bytes(32)


def csrf_token(identity: Identity, settings: Settings) -> str:
    """The CSRF token the console embeds in its forms for ``identity``."""
    key = (hashlib.sha256(identity.secret.encode()).digest() if identity.secret
           else settings.local_secret)
    return hmac.new(key, b"dlq-csrf", "sha256").hexdigest()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _origin_ok(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def identify(request: Request) -> Identity:
    """The caller of ``request``, checked for CSRF when it changes something.

    Raises:
        AuthError: 401 without a known token, 403 for a cross-site or CSRF failure.
    """
    cached = getattr(request.state, "identity", None)
    if cached is not None:
        return cached
    settings: Settings = request.app.state.auth
    bearer = _bearer(request)
    identity: Identity | None = None
    if bearer is not None:
        token = find_token(settings.tokens, bearer)
        if token is None:
            raise AuthError(401, "unknown API token")
        identity = Identity(token.name, token.role, "bearer")
    elif (cookie := request.cookies.get(COOKIE)) is not None:
        token = find_token(settings.tokens, cookie)
        if token is not None:
            identity = Identity(token.name, token.role, "cookie", secret=cookie)
    if identity is None and settings.insecure_local:
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        if host not in LOCAL_HOSTS:
            raise AuthError(403, f"--insecure-local serves localhost only, not {host!r}")
        identity = Identity("local", ROLES[-1], "local")
    if identity is None:
        raise AuthError(401, "sign in with an API token (Authorization: Bearer <token>)")
    if request.method in UNSAFE and identity.via != "bearer":
        await _check_csrf(request, identity, settings)
    request.state.identity = identity
    return identity


async def _check_csrf(request: Request, identity: Identity, settings: Settings) -> None:
    if not _origin_ok(request):
        raise AuthError(403, "cross-site request refused")
    browser = request.headers.get("origin") or request.headers.get("sec-fetch-site")
    if identity.via == "local" and not browser:
        return  # a local script (curl) on --insecure-local: no browser, no CSRF
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form_value = (await request.form()).get("csrf_token")
        sent = form_value if isinstance(form_value, str) else None
    if not isinstance(sent, str) or not hmac.compare_digest(sent,
                                                            csrf_token(identity, settings)):
        raise AuthError(403, "missing or wrong CSRF token; reload the page")


def require(role: str) -> Any:
    """A dependency that gives the caller's :class:`Identity` if their role allows ``role``.

    Raises:
        AuthError: 401 or 403.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    async def dependency(identity: Annotated[Identity, Depends(identify)]) -> Identity:
        if not identity.can(role):
            raise AuthError(403, f"{identity.name} is a {identity.role}; this needs the "
                                 f"{role} role")
        return identity

    return Depends(dependency)
