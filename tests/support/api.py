"""The HTTP service in tests: tokens for each role and a TestClient on a real stack."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from dlq import DLQConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from dlq._http import create_app

# name -> (role, secret); the secrets are long enough for DLQ_API_TOKENS.
TOKENS = {
    "vera": ("viewer", "viewer-secret-0123456789"),
    "olga": ("operator", "operator-secret-0123456789"),
    "adam": ("admin", "admin-secret-0123456789"),
}
API_TOKENS = ",".join(f"{name}:{role}:{secret}" for name, (role, secret) in TOKENS.items())


def auth(name: str) -> dict[str, str]:
    """The Authorization header of a token holder."""
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


@contextmanager
def api_client(config: DLQConfig, **changes: object) -> Iterator[TestClient]:
    """A TestClient of ``dlq serve``'s app on ``config`` with the test tokens."""
    app = create_app(replace(config, api_tokens=API_TOKENS, **changes))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
