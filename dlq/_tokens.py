"""API tokens of ``dlq serve``: who may call it, and with which role.

``DLQ_API_TOKENS`` is a comma-separated list of ``name:role:token``. The role
is ``viewer``, ``operator`` or ``admin``; the token is either the secret itself
or ``sha256:<hex>``, the SHA-256 of the secret, so the configuration need not
hold the secret. Only digests are kept in memory. Nothing here imports the
HTTP stack: the settings class parses tokens at start-up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["ROLES", "ApiToken", "find_token", "parse_api_tokens", "role_allows", "token_digest"]

# In increasing order of power: each role may do what the ones before it may.
ROLES = ("viewer", "operator", "admin")
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# A secret shorter than this is too easy to guess over HTTP.
MIN_SECRET = 16


def token_digest(secret: str) -> str:
    """The SHA-256 hex digest of a token secret (what ``sha256:<hex>`` holds)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiToken:
    """One configured token.

    Attributes:
        name: Who holds it; recorded as the actor of what they do.
        role: ``viewer``, ``operator`` or ``admin``.
        digest: SHA-256 hex digest of the secret.
    """

    name: str
    role: str
    digest: str

    def __repr__(self) -> str:
        # Never print even the digest in logs or tracebacks.
        return f"ApiToken(name={self.name!r}, role={self.role!r})"


def _parse_one(item: str) -> ApiToken:
    parts = item.strip().split(":", 2)
    if len(parts) != 3:
        raise ValueError(f"DLQ_API_TOKENS item {parts[0]!r}... must be name:role:token")
    name, role, secret = (p.strip() for p in parts)
    if not _NAME.match(name):
        raise ValueError(f"DLQ_API_TOKENS: token name {name!r} must be 1-100 of letters, "
                         "digits and ._@+-")
    if role not in ROLES:
        raise ValueError(f"DLQ_API_TOKENS: token {name!r} has role {role!r}; "
                         f"use one of {', '.join(ROLES)}")
    if secret.startswith("sha256:"):
        digest = secret[len("sha256:"):].lower()
        if not _DIGEST.match(digest):
            raise ValueError(f"DLQ_API_TOKENS: token {name!r}: sha256: must be followed by "
                             "64 hex digits")
    elif len(secret) < MIN_SECRET:
        raise ValueError(f"DLQ_API_TOKENS: token {name!r} is shorter than {MIN_SECRET} "
                         "characters")
    else:
        digest = token_digest(secret)
    return ApiToken(name=name, role=role, digest=digest)


def parse_api_tokens(value: Any) -> tuple[ApiToken, ...]:
    """Parse ``DLQ_API_TOKENS`` (a string, or already-parsed tokens).

    Raises:
        ValueError: Naming the malformed item, a duplicate name or a duplicate token.
    """
    if value is None or value == "":
        return ()
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    tokens = [item if isinstance(item, ApiToken) else _parse_one(str(item))
              for item in items if not (isinstance(item, str) and not item.strip())]
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ValueError(f"DLQ_API_TOKENS: duplicate token name(s) "
                         f"{sorted({n for n in names if names.count(n) > 1})}")
    if len({t.digest for t in tokens}) != len(tokens):
        raise ValueError("DLQ_API_TOKENS: two names share one token")
    return tuple(tokens)


def find_token(tokens: Iterable[ApiToken], secret: str | None) -> ApiToken | None:
    """The token whose secret is ``secret``, or None."""
    if not secret:
        return None
    digest = token_digest(secret)
    return next((t for t in tokens if t.digest == digest), None)


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what needs ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)
