"""``dlq serve``'s sign-in, cookie and CSRF rules, on a SQLite read model (no Temporal needed)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from dlq import DLQConfig
from dlq._db import create_db_engine, migrate
from dlq._http import create_app
from tests.support.api import API_TOKENS, TOKENS, auth

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def config(tmp_path: Path) -> DLQConfig:
    cfg = DLQConfig(database_url=f"sqlite:///{tmp_path}/read.db", api_tokens=API_TOKENS,
                    temporal_address="127.0.0.1:9", store_timeout=1.0)
    engine = create_db_engine(cfg.database_url)
    migrate(engine)
    engine.dispose()
    return cfg


def sign_in(client: TestClient, name: str) -> str:
    """Sign in through the form; return the CSRF token the console embeds."""
    answer = client.post("/login", data={"token": TOKENS[name][1]}, follow_redirects=False)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = client.get("/")
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)


def test_console_needs_sign_in_and_refuses_unknown_tokens(config: DLQConfig) -> None:
    with TestClient(create_app(config)) as client:
        first = client.get("/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        wrong = client.post("/login", data={"token": "not-a-real-token-123"})
        assert wrong.status_code == 401 and "unknown token" in wrong.text
        sign_in(client, "vera")
        page = client.get("/")
        assert page.status_code == 200 and "vera" in page.text
        assert client.get("/api/entries").status_code == 200  # the cookie works for the API
        assert client.get("/login?next=//evil.example").text.count('value="/"') == 1


def test_cookie_sessions_need_the_csrf_token(config: DLQConfig) -> None:
    with TestClient(create_app(config)) as client:
        csrf = sign_in(client, "olga")
        path = "/api/entries/00000000-0000-4000-8000-000000000000/retry"
        refused = client.post(path)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        assert client.post(path, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
        allowed = client.post(path, headers={"X-CSRF-Token": csrf})
        assert allowed.status_code == 503  # past auth and CSRF; Temporal is down here
        cross = client.post(path, headers={"X-CSRF-Token": csrf,
                                           "Origin": "https://evil.example"})
        assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
        form = client.post("/entries/00000000-0000-4000-8000-000000000000/retry",
                           data={"csrf_token": csrf}, follow_redirects=False)
        assert form.status_code == 303 and "kind=error" in form.headers["location"]
        # A bearer token needs no CSRF token (browsers never send it by themselves).
        assert client.post(path, headers=auth("olga")).status_code == 503


def test_tokens_may_be_given_as_their_sha256(tmp_path: Path, config: DLQConfig) -> None:
    import hashlib
    from dataclasses import replace

    digest = hashlib.sha256(b"hashed-secret-0123456789").hexdigest()
    hashed = replace(config, api_tokens=f"hana:viewer:sha256:{digest}")
    with TestClient(create_app(hashed)) as client:
        ok = client.get("/api/stats", headers={"Authorization": "Bearer hashed-secret-0123456789"})
        assert ok.status_code == 200
        assert client.get("/api/stats", headers={"Authorization": f"Bearer {digest}"}
                          ).status_code == 401


def test_insecure_local_is_localhost_only(config: DLQConfig) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="DLQ_API_TOKENS"):
        create_app(replace(config, api_tokens=()))
    app = create_app(replace(config, api_tokens=()), insecure_local=True)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        page = client.get("/")
        assert page.status_code == 200 and "local" in page.text
        rebinding = client.get("/api/stats", headers={"Host": "evil.example:8000"})
        assert rebinding.status_code == 403
        path = "/api/entries/00000000-0000-4000-8000-000000000000/retry"
        assert client.post(path).status_code == 503  # a local script: no browser, no CSRF
        browser = client.post(path, headers={"Origin": "http://127.0.0.1:8000"})
        assert browser.status_code == 403  # a browser must send the page's CSRF token
        csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', client.get("/").text)
        assert csrf is not None
        with_token = client.post(path, headers={"Origin": "http://127.0.0.1:8000",
                                                "X-CSRF-Token": csrf.group(1)})
        assert with_token.status_code == 503
