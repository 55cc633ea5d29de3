"""``dlq serve``'s codec server (``/codec``): round trip, tokens, CORS, namespaces (no Temporal)."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from dlq import DLQConfig
from dlq._codec import EncryptionCodec
from dlq._db import create_db_engine, migrate
from dlq._http import create_app
from dlq._keys import generate_key, parse_key_ring
from tests.support.api import API_TOKENS, auth

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY_A, KEY_B = generate_key("a"), generate_key("b")
MARK = "heron-basalt-5521"
UI = "http://localhost:8233"


@pytest.fixture
def config(tmp_path: Path) -> DLQConfig:
    cfg = DLQConfig(database_url=f"sqlite:///{tmp_path}/read.db", api_tokens=API_TOKENS,
                    temporal_address="127.0.0.1:9", store_timeout=1.0, encryption_keys=KEY_A)
    engine = create_db_engine(cfg.database_url)
    migrate(engine)
    engine.dispose()
    return cfg


async def _body(value: object) -> str:
    """JSON Payloads of one value, as the Web UI posts them."""
    payloads = Payloads(payloads=await pydantic_data_converter.encode([value]))
    return json_format.MessageToJson(payloads)


def _payloads(text: str) -> Payloads:
    return json_format.Parse(text, Payloads())


async def test_encode_then_decode_round_trips(config: DLQConfig) -> None:
    body = await _body({"note": MARK})
    with TestClient(create_app(config)) as client:
        encoded = client.post("/codec/encode", content=body,
                              headers={**auth("vera"), "X-Namespace": "default"})
        assert encoded.status_code == 200, encoded.text
        assert MARK not in encoded.text
        [sealed] = _payloads(encoded.text).payloads
        assert sealed.metadata["encoding"] == b"binary/encrypted"
        assert sealed.metadata["encryption-key-id"] == b"a"
        decoded = client.post("/codec/decode", content=encoded.text,
                              headers={**auth("vera"), "X-Namespace": "default"})
        assert decoded.status_code == 200
        [payload] = _payloads(decoded.text).payloads
        assert await pydantic_data_converter.decode([payload]) == [{"note": MARK}]
        # A payload the worker's codec encrypted decodes too (same protocol, same keys).
        ring = parse_key_ring(KEY_A)
        assert ring is not None
        worker_sealed = await EncryptionCodec(ring).encode(_payloads(body).payloads)
        answer = client.post("/codec/decode", headers=auth("vera"),
                             content=json_format.MessageToJson(Payloads(payloads=worker_sealed)))
        assert base64.b64decode(answer.json()["payloads"][0]["data"]).decode() == \
            f'{{"note":"{MARK}"}}'


async def test_wrong_or_missing_token_is_refused(config: DLQConfig) -> None:
    body = await _body({"note": MARK})
    with TestClient(create_app(config)) as client:
        sealed = client.post("/codec/encode", content=body, headers=auth("adam")).text
        for headers in ({}, {"Authorization": "Bearer not-a-real-token-123"},
                        {"Authorization": "Basic abc"}):
            for operation, content in (("decode", sealed), ("encode", body)):
                answer = client.post(f"/codec/{operation}", content=content, headers=headers)
                assert answer.status_code == 401, (operation, headers)
                assert answer.json()["type"] == "Unauthorized" and MARK not in answer.text
        # A console cookie is no codec credential: the Web UI is another origin.
        client.cookies.set("dlq_token", "viewer-secret-0123456789")
        assert client.post("/codec/decode", content=sealed).status_code == 401


async def test_insecure_local_lets_local_callers_decode(config: DLQConfig) -> None:
    from dataclasses import replace

    local = replace(config, api_tokens=())
    with TestClient(create_app(local, insecure_local=True), base_url="http://127.0.0.1:8000"
                    ) as client:
        assert client.post("/codec/encode", content=await _body(1)).status_code == 200
    with TestClient(create_app(local, insecure_local=True), base_url="http://evil.example"
                    ) as client:
        assert client.post("/codec/encode", content=await _body(1)).status_code == 401


def test_cors_preflight_allowed_and_refused_origins(config: DLQConfig) -> None:
    with TestClient(create_app(config)) as client:
        request = {"Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}
        for origin in (UI, "http://127.0.0.1:8233"):
            ok = client.options("/codec/decode", headers={**request, "Origin": origin})
            assert ok.status_code == 204
            assert ok.headers["access-control-allow-origin"] == origin
            assert "POST" in ok.headers["access-control-allow-methods"]
            assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()
        refused = client.options("/codec/decode",
                                 headers={**request, "Origin": "http://evil.example"})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        posted = client.post("/codec/decode", content='{"payloads": []}',
                             headers={**auth("vera"), "Origin": "http://evil.example"})
        assert posted.status_code == 403 and "access-control-allow-origin" not in posted.headers
        allowed = client.post("/codec/decode", content='{"payloads": []}',
                              headers={**auth("vera"), "Origin": UI})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == UI


async def test_other_namespace_bad_body_and_unknown_key_are_json_errors(config: DLQConfig
                                                                        ) -> None:
    from dataclasses import replace

    with TestClient(create_app(config)) as client:
        other = client.post("/codec/decode", content='{"payloads": []}',
                            headers={**auth("vera"), "X-Namespace": "payments"})
        assert other.status_code == 400 and "'payments'" in other.json()["error"]
        huge = client.post("/codec/decode", content=b" " * (8 * 1024 * 1024 + 1),
                           headers=auth("vera"))
        assert huge.status_code == 413
        bad = client.post("/codec/decode", content=f'{{"nope": "{MARK}"', headers=auth("vera"))
        assert bad.status_code == 400 and MARK not in bad.text
        sealed = client.post("/codec/encode", content=await _body(MARK), headers=auth("vera")).text
    with TestClient(create_app(replace(config, encryption_keys=KEY_B))) as client:
        missing = client.post("/codec/decode", content=sealed, headers=auth("vera"))
        assert missing.status_code == 422
        assert missing.json()["type"] == "DLQKeyError" and "key 'a'" in missing.json()["error"]
    with TestClient(create_app(replace(config, encryption_keys=""))) as client:
        off = client.post("/codec/decode", content=sealed, headers=auth("vera"))
        assert off.status_code == 404 and "DLQ_ENCRYPTION_KEYS" in off.json()["error"]
