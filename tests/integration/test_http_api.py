"""``dlq serve``'s JSON API against the real dev server, worker, SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from dlq import DLQConfig, DLQService, workflow_id_for
from dlq._temporal import dedup_workflow_id
from tests.support.api import api_client, auth
from tests.support.handlers import seen

pytestmark = pytest.mark.integration

ENTRY = "00000000-0000-4000-8000-000000000000"  # no such entry
# (method, path, body, the lowest role allowed)
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/entries", None, "viewer"),
    ("GET", f"/api/entries/{ENTRY}", None, "viewer"),
    ("GET", "/api/facets", None, "viewer"),
    ("GET", "/api/stats", None, "viewer"),
    ("GET", "/api/sla-breaches", None, "viewer"),
    ("GET", "/api/cleanup-stats", None, "viewer"),
    ("GET", "/api/maintenance/purges", None, "viewer"),
    ("GET", "/api/redrives/feedfacefeedfacefeedfacefeedface", None, "viewer"),
    ("POST", f"/api/entries/{ENTRY}/retry", None, "operator"),
    ("POST", f"/api/entries/{ENTRY}/resolve", {"notes": "x"}, "operator"),
    ("POST", "/api/entries/resolve", {"ids": [ENTRY]}, "operator"),
    ("PATCH", f"/api/entries/{ENTRY}/data", {"request_data": {"a": 1}}, "operator"),
    ("POST", "/api/redrives", {"failure_type": "NOTHING", "dry_run": True}, "operator"),
    ("POST", "/api/redrives/feedfacefeedfacefeedfacefeedface/pause", None, "operator"),
    ("POST", f"/api/entries/{ENTRY}/force-redrive", {"reason": "r"}, "admin"),
    ("POST", "/api/maintenance/archive", {"dry_run": True}, "admin"),
    ("POST", "/api/maintenance/purge", {"older_than_days": 90}, "admin"),
]
HOLDERS = {"viewer": "vera", "operator": "olga", "admin": "adam"}
ORDER = ("viewer", "operator", "admin")


def store(config: DLQConfig, domain: str, **kw: Any) -> str:
    with DLQService(config) as svc:
        result = svc.store_failure(domain, kw.pop("failure_type", "PG_TIMEOUT"),
                                   recommended_action="manual_check",
                                   error_message="original failure", **kw)
    assert result.success, result
    return result.dlq_id


def audit(client, pk: str, action: str) -> list[dict[str, Any]]:
    entry = client.get(f"/api/entries/{pk}", headers=auth("vera")).json()
    return [e for e in entry["audit_events"] if e["action"] == action]


def test_every_endpoint_refuses_missing_unknown_and_low_roles(config: DLQConfig) -> None:
    with api_client(config) as client:
        for method, path, body, needed in ENDPOINTS:
            no_token = client.request(method, path, json=body)
            assert no_token.status_code == 401, (method, path, no_token.text)
            assert no_token.json()["type"] == "Unauthorized"
            bad = client.request(method, path, json=body,
                                 headers={"Authorization": "Bearer not-a-real-token-123"})
            assert bad.status_code == 401, (method, path)
            for role in ORDER:
                answer = client.request(method, path, json=body, headers=auth(HOLDERS[role]))
                if ORDER.index(role) < ORDER.index(needed):
                    assert answer.status_code == 403, (method, path, role, answer.text)
                    assert answer.json()["type"] == "Forbidden"
                else:
                    assert answer.status_code not in (401, 403), (method, path, role,
                                                                  answer.text)


def test_reads_list_facets_stats_sla_cleanup(config: DLQConfig) -> None:
    kind = f"H{uuid.uuid4().hex[:8]}"
    ids = [store(config, "t-fail", failure_type=kind) for _ in range(3)]
    with api_client(config) as client:
        viewer = auth("vera")
        page = client.get("/api/entries", params={"failure_type": kind, "page_size": 2},
                          headers=viewer).json()
        assert (page["total_count"], page["total_pages"], page["has_next"]) == (3, 2, True)
        assert set(page) == {"results", "page", "page_size", "total_pages", "total_count",
                             "has_next", "has_previous"}
        assert {r["id"] for r in page["results"]} <= set(ids)
        two = client.get("/api/entries", params={"failure_type": kind, "page": 2,
                                                 "page_size": 2}, headers=viewer).json()
        assert len(two["results"]) == 1 and two["has_previous"]
        several = client.get("/api/entries", params=[("status", "pending"),
                                                     ("status", "resolved"),
                                                     ("failure_type", kind)], headers=viewer)
        assert several.json()["total_count"] == 3
        one = client.get(f"/api/entries/{ids[0]}", headers=viewer).json()
        assert one["id"] == ids[0] and one["audit_events"][0]["action"] == "created"
        assert client.get(f"/api/entries/{workflow_id_for(ids[0])}",
                          headers=viewer).json()["id"] == ids[0]
        facets = client.get("/api/facets", params={"domain": "t-fail"}, headers=viewer).json()
        assert facets["by_status"]["pending"] >= 3
        stats = client.get("/api/stats", headers=viewer).json()
        assert stats["by_domain"]["t-fail"] >= 3 and stats["open"] >= 3
        assert isinstance(client.get("/api/sla-breaches", headers=viewer).json(), list)
        cleanup = client.get("/api/cleanup-stats", headers=viewer).json()
        assert {"archivable", "purgeable", "can_archive", "closed_by_age"} <= set(cleanup)


def test_actor_is_the_token_name_never_the_body(config: DLQConfig) -> None:
    pk = store(config, "t-fail")
    with api_client(config) as client:
        out = client.post(f"/api/entries/{pk}/retry", json={"actor": "mallory"},
                          headers=auth("olga"))
        assert out.status_code == 200 and out.json()["success"] is False
        assert [e["actor"] for e in audit(client, pk, "replay_started")] == ["olga"]
        client.post(f"/api/entries/{pk}/retry", headers=auth("olga"))
        refused = client.post(f"/api/entries/{pk}/force-redrive",
                              json={"reason": "PG fixed"}, headers=auth("olga"))
        assert refused.status_code == 403
        no_reason = client.post(f"/api/entries/{pk}/force-redrive", json={},
                                headers=auth("adam"))
        assert no_reason.status_code == 422 and no_reason.json()["type"] == "ValidationError"
        forced = client.post(f"/api/entries/{pk}/force-redrive",
                             json={"reason": "PG fixed", "ticket_url": "https://t/1",
                                   "actor_id": "someone-else@example.com"},
                             headers=auth("adam"))
        assert forced.status_code == 200, forced.text
        event = audit(client, pk, "force_redrive")[0]
        assert (event["actor"], event["reason"], event["ticket_url"]) == (
            "adam", "PG fixed", "https://t/1")
        resolved = client.post(f"/api/entries/{pk}/resolve",
                               json={"notes": "by hand", "status": "discarded",
                                     "actor": "mallory"}, headers=auth("olga"))
        assert resolved.json()["current_status"] == "discarded"
        assert audit(client, pk, "discard")[0]["actor"] == "olga"


def test_batch_resolve_gives_per_id_results(config: DLQConfig) -> None:
    a, b = store(config, "payment"), store(config, "payment")
    with api_client(config) as client:
        out = client.post("/api/entries/resolve",
                          json={"ids": [a, workflow_id_for(b), "nope"], "notes": "bulk"},
                          headers=auth("olga")).json()
        assert (out["total"], out["resolved"], out["failed"]) == (3, 2, 1)
        by_id = {r["id"]: r for r in out["results"]}
        assert by_id["nope"]["error_type"] == "DLQEntryNotFoundError"
        assert audit(client, b, "resolve")[0]["actor"] == "olga"


def test_edit_before_replay(config: DLQConfig) -> None:
    pk = store(config, "t-echo", request_data={"amount": 100, "currency": "eur"},
               snapshot_data={"order": "o-1"})
    with api_client(config) as client:
        edit = client.patch(f"/api/entries/{pk}/data", headers=auth("olga"), json={
            "request_data": {"currency": "EUR", "note": "fixed by hand"},
            "snapshot_data": {"fixed": True}, "reason": "currency was lower case",
            "actor": "mallory"})
        assert edit.status_code == 200, edit.text
        assert {(d["path"], d["op"]) for d in edit.json()["diff"]} == {
            ("request_data.currency", "replace"), ("request_data.note", "add"),
            ("snapshot_data.fixed", "add")}
        entry = client.get(f"/api/entries/{pk}", headers=auth("vera")).json()
        assert entry["request_data"] == {"amount": 100, "currency": "EUR",
                                         "note": "fixed by hand"}
        assert entry["original_data"]["request_data"] == {"amount": 100, "currency": "eur"}
        assert entry["data_edits"] == 1
        event = audit(client, pk, "edit_data")[0]
        assert event["actor"] == "olga" and event["reason"] == "currency was lower case"
        assert {"path": "request_data.currency", "op": "replace", "old": "eur",
                "new": "EUR"} in event["details"]["diff"]
        retried = client.post(f"/api/entries/{pk}/retry", headers=auth("olga")).json()
        assert retried["success"] is True, retried
        assert seen[pk] == [({"amount": 100, "currency": "EUR", "note": "fixed by hand"},
                             {"order": "o-1", "fixed": True})]
        # A closed entry takes no edit; a bad patch is bad input.
        closed = client.patch(f"/api/entries/{pk}/data", headers=auth("olga"),
                              json={"request_data": {"a": 1}})
        assert closed.status_code == 409 and closed.json()["type"] == "DLQStateConflictError"
        other = store(config, "t-echo", request_data={"a": 1})
        for body in ({}, {"request_data": {"a": 1}}, {"request_data": [1]}):
            bad = client.patch(f"/api/entries/{other}/data", headers=auth("olga"), json=body)
            assert bad.status_code == 422, (body, bad.text)


def test_archive_and_purge_keep_a_record(config: DLQConfig) -> None:
    pk = store(config, "payment")
    with api_client(config) as client:
        client.post(f"/api/entries/{pk}/resolve", headers=auth("olga"))
        dry = client.post("/api/maintenance/archive", json={"older_than_days": 0},
                          headers=auth("adam")).json()
        assert dry["dry_run"] is True and dry["archived"] >= 1
        assert client.get(f"/api/entries/{pk}", headers=auth("vera")).json()["status"] == (
            "resolved")
        done = client.post("/api/maintenance/archive",
                           json={"older_than_days": 0, "dry_run": False}, headers=auth("adam"))
        assert done.json()["archived"] >= 1
        assert audit(client, pk, "archive")[0]["actor"] == "adam"
        preview = client.post("/api/maintenance/purge", json={"ids": [pk]},
                              headers=auth("adam")).json()
        assert preview == {"dry_run": True, "purged": 1}
        purged = client.post("/api/maintenance/purge",
                             json={"ids": [workflow_id_for(pk)], "dry_run": False,
                                   "reason": "GDPR request 42"}, headers=auth("adam")).json()
        assert purged == {"dry_run": False, "purged": 1}
        gone = client.get(f"/api/entries/{pk}", headers=auth("vera"))
        assert gone.status_code == 404 and "purged" in gone.json()["error"]
        assert "by adam" in gone.json()["error"]
        record = client.get("/api/maintenance/purges", headers=auth("vera")).json()
        mine = next(r for r in record if r["reason"] == "GDPR request 42")
        assert (mine["actor"], mine["count"]) == ("adam", 1)
        detail = client.get(f"/api/maintenance/purges/{mine['purge_id']}",
                            headers=auth("vera")).json()
        assert [e["id"] for e in detail["entries"]] == [pk]
        assert client.get("/api/maintenance/purges/nope", headers=auth("vera")).status_code == 404
        refused = client.post("/api/maintenance/purge", json={}, headers=auth("adam"))
        assert refused.status_code == 422 and "refusing to purge all" in refused.json()["error"]


def test_id_forms_dedup_and_bulk(config: DLQConfig) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    first = store(config, "payment", failure_type="DUP", dedup_key=key)
    wid = dedup_workflow_id("payment", "DUP", key)
    with api_client(config) as client:
        viewer = auth("vera")
        assert client.get(f"/api/entries/{wid}", headers=viewer).json()["id"] == first
        assert client.get("/api/entries/dlq-dedup-0000", headers=viewer).status_code == 404
        kind = f"R{uuid.uuid4().hex[:8]}"
        for _ in range(2):
            store(config, "t-ok", failure_type=kind)
        preview = client.post("/api/redrives", json={"failure_type": kind, "dry_run": True},
                              headers=auth("olga"))
        assert preview.status_code == 200 and preview.json()["count"] == 2
        started = client.post("/api/redrives", json={"failure_type": kind, "reason": "back",
                                                     "actor_id": "mallory"},
                              headers=auth("olga"))
        assert started.status_code == 202, started.text
        run = started.json()
        deadline = time.monotonic() + 30
        while True:
            progress = client.get(f"/api/redrives/{run['bulk_id']}", headers=viewer).json()
            if progress["status"] == "completed" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (progress["status"], progress["succeeded"]) == ("completed", 2)
        assert client.get(f"/api/redrives/{run['workflow_id']}",
                          headers=viewer).json()["done"] == 2
        ended = client.post(f"/api/redrives/{run['bulk_id']}/cancel", headers=auth("olga"))
        assert ended.status_code == 409 and ended.json()["type"] == "DLQStateConflictError"
        missing = client.get("/api/redrives/feedfacefeedfacefeedfacefeedface", headers=viewer)
        assert missing.status_code == 404
        entry = client.get("/api/entries", params={"failure_type": kind},
                           headers=viewer).json()["results"][0]
        started_by = audit(client, entry["id"], "replay_started")[0]
        assert started_by["actor"] == "olga"
        bad = client.post("/api/redrives", json={"failure_type": kind}, headers=auth("olga"))
        assert bad.status_code == 422 and "reason" in bad.json()["error"]


def test_error_mapping(config: DLQConfig) -> None:
    pk = store(config, "t-typed", failure_type="NOT_THIS")  # no handler for this type
    with api_client(config) as client:
        operator = auth("olga")
        no_handler = client.post(f"/api/entries/{pk}/retry", headers=operator)
        assert no_handler.status_code == 500
        assert no_handler.json()["type"] == "DLQReplayError"
        client.post(f"/api/entries/{pk}/resolve", headers=operator)
        conflict = client.post(f"/api/entries/{pk}/retry", headers=operator)
        assert (conflict.status_code, conflict.json()["type"]) == (409, "DLQStateConflictError")
        bad_filter = client.get("/api/entries", params={"status": "bogus"}, headers=operator)
        assert bad_filter.status_code == 422 and "bogus" in bad_filter.json()["error"]
        assert client.get("/api/entries", params={"page_size": 500},
                          headers=operator).status_code == 422
        assert client.post("/api/test-entries", headers=operator).status_code == 404
    with api_client(config, temporal_address="127.0.0.1:9", store_timeout=1.0) as down:
        out = down.post(f"/api/entries/{pk}/retry", headers=auth("olga"))
        assert out.status_code == 503 and out.json()["type"] == "DLQUnavailableError"
        assert "127.0.0.1:9" in out.json()["error"]


def test_test_entries_exist_only_in_debug_mode(config: DLQConfig) -> None:
    with api_client(config, debug=True) as client:
        created = client.post("/api/test-entries", json={"domain": "checkout"},
                              headers=auth("olga"))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["success"] and body["created_by"] == "olga"
        entry = client.get(f"/api/entries/{body['dlq_id']}", headers=auth("vera")).json()
        assert entry["domain"] == "checkout" and entry["metadata"]["test_entry"] is True
        assert client.post("/api/test-entries", headers=auth("vera")).status_code == 403


def test_openapi_lists_the_api(config: DLQConfig) -> None:
    with api_client(config) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/entries", "/api/entries/{ref}/data", "/api/redrives",
                "/api/maintenance/purge"} <= set(paths)
        assert client.get("/docs").status_code == 200
