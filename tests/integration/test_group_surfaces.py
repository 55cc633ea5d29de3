"""Failure groups end to end: stores through the worker, then the API, CLI and HTTP views.

Runs on the session's dev server and worker, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid

import pytest

from dlq import AsyncDLQService, DLQConfig, DLQService
from dlq._fingerprint import fingerprint
from tests.integration.test_cli import cli  # noqa: F401 - the CLI fixture
from tests.support.api import api_client, auth

pytestmark = pytest.mark.integration


def store_group(config: DLQConfig) -> tuple[str, str, str, list[str]]:
    """Three similar failures and one with another error code, in a domain of their own."""
    domain = f"grp-{uuid.uuid4().hex[:8]}"
    ids = []
    with DLQService(config) as svc:
        for i, code in enumerate(("E42", "E42", "E42", "E43")):
            result = svc.store_failure(domain, "PG_TIMEOUT", error_code=code,
                                       error_message=f"order {1000 + i} timed out after {i}s "
                                                     f"(trace {uuid.uuid4()})",
                                       recommended_action="manual_check")
            assert result.success, result
            ids.append(result.dlq_id)
    fp = fingerprint(domain, "PG_TIMEOUT", "E42", "order 1 timed out after 1s (trace "
                                                  f"{uuid.uuid4()})")
    other = fingerprint(domain, "PG_TIMEOUT", "E43", "order 1 timed out after 1s (trace "
                                                     f"{uuid.uuid4()})")
    return domain, fp, other, ids


async def test_stored_entries_are_grouped_and_the_api_shows_the_groups(
        config: DLQConfig) -> None:
    domain, fp, other, ids = store_group(config)
    with DLQService(config) as svc:
        assert svc.get_entry(ids[0])["fingerprint"] == fp
        assert svc.get_entry(ids[3])["fingerprint"] == other
        assert svc.get_entry_by_id(ids[0]).fingerprint == fp  # the typed read carries it too
        page = svc.list_groups({"domain": domain})
        assert page["total_count"] == 2
        by_fp = {g["fingerprint"]: g for g in page["results"]}
        assert (by_fp[fp]["count"], by_fp[fp]["open_count"], by_fp[fp]["last_hour"]) == (3, 3, 3)
        assert by_fp[fp]["message"] == "order <n> timed out after <n>s (trace <uuid>)"
        assert by_fp[other]["count"] == 1
        assert svc.get_group(fp) == by_fp[fp]
        assert svc.get_group("0" * 16) is None
        with pytest.raises(ValueError, match="fingerprint must be 16 lowercase hex"):
            svc.get_group("nope")
        entries = svc.list_entries({"group": fp})
        assert sorted(r["id"] for r in entries["results"]) == sorted(ids[:3])
        preview = svc.bulk_replay({"group": fp}, dry_run=True, actor_id="ops", reason="fix")
        assert preview["count"] == 3
    aio = AsyncDLQService(config)
    try:
        assert (await aio.list_groups({"domain": domain}))["total_count"] == 2
        assert (await aio.get_group(fp))["entries"] == 3
        assert await aio.list_alerts(limit=5) == []
    finally:
        await aio.close()


def test_cli_groups_list_show_and_alerts(cli, config: DLQConfig) -> None:  # noqa: F811
    domain, fp, _, ids = store_group(config)
    out = cli("groups", "list", "--domain", domain, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["total_count"] == 2
    table = cli("groups", "list", "--domain", domain, "--open")
    assert table.exit_code == 0 and fp in table.output and "2 groups" in table.output
    shown = cli("groups", "show", fp, "--json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["count"] == 3 and sorted(e["id"] for e in body["entries"]) == sorted(ids[:3])
    assert cli("groups", "show", fp).exit_code == 0
    missing = cli("groups", "show", "0" * 16)
    assert missing.exit_code == 4 and "no failure group" in missing.output
    bad = cli("groups", "show", "xyz")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    listed = cli("list", "--group", fp, "--json")
    assert json.loads(listed.output)["total_count"] == 3
    preview = cli("redrive", "--group", fp, "--dry-run")
    assert preview.exit_code == 0 and "3 entries would be replayed" in preview.output
    alerts = cli("alerts", "--json")
    assert alerts.exit_code == 0 and isinstance(json.loads(alerts.output), list)
    none = cli("alerts", "--rule", f"no-such-rule-{domain}")
    assert none.exit_code == 0 and "no alerts raised by rule" in none.output


def test_http_groups_and_alerts(config: DLQConfig) -> None:
    domain, fp, _, ids = store_group(config)
    with api_client(config) as client:
        assert client.get("/api/groups").status_code == 401
        page = client.get("/api/groups", params={"domain": domain, "open": "true"},
                          headers=auth("vera"))
        assert page.status_code == 200 and page.json()["total_count"] == 2
        one = client.get(f"/api/groups/{fp}", headers=auth("vera"))
        assert one.status_code == 200 and one.json()["open_count"] == 3
        missing = client.get(f"/api/groups/{'0' * 16}", headers=auth("vera"))
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
        bad = client.get("/api/groups/xyz", headers=auth("vera"))
        assert bad.status_code == 422 and "fingerprint" in bad.json()["error"]
        entries = client.get("/api/entries", params={"group": fp}, headers=auth("vera"))
        assert sorted(r["id"] for r in entries.json()["results"]) == sorted(ids[:3])
        preview = client.post("/api/redrives", json={"group": fp, "dry_run": True},
                              headers=auth("olga"))
        assert preview.status_code == 200 and preview.json()["count"] == 3
        alerts = client.get("/api/alerts", headers=auth("vera"))
        assert alerts.status_code == 200 and isinstance(alerts.json(), list)


async def test_a_bulk_redrive_of_a_group_replays_that_group_only(service: AsyncDLQService
                                                                 ) -> None:
    ftype = f"G{uuid.uuid4().hex[:8]}"
    ids = {}
    for code in ("E1", "E2"):
        ids[code] = []
        for i in range(3):
            result = await service.store_failure("t-ok", ftype, error_code=code,
                                                 error_message=f"job {i} failed",
                                                 recommended_action="manual_check")
            assert result.success, result
            ids[code].append(result.dlq_id)
    fp = fingerprint("t-ok", ftype, "E1", "job 0 failed")
    started = await service.bulk_replay({"group": fp}, actor_id="ops", reason="fixed")
    assert started["total"] == 3
    final = await service.wait_bulk_replay(started["workflow_id"])
    assert (final.status, final.succeeded) == ("completed", 3)
    for dlq_id in ids["E1"]:
        assert (await service.get_entry(dlq_id))["status"] == "resolved"
    for dlq_id in ids["E2"]:
        assert (await service.get_entry(dlq_id))["status"] == "pending"
    group = await service.get_group(fp)
    assert group is not None and (group["entries"], group["open_count"]) == (3, 0)
