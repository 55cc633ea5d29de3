"""Pure parts of the operator surfaces: API tokens, edit patches and diffs, id forms."""

from __future__ import annotations

import hashlib

import pytest

from dlq import AsyncDLQService, DLQConfig
from dlq._patch import apply_edit, data_diff, merge_patch, parse_assignments
from dlq._tokens import find_token, parse_api_tokens, role_allows


def test_api_tokens_parse_and_refuse_what_is_wrong() -> None:
    tokens = parse_api_tokens("alice:admin:a-long-secret-000000, bob:viewer:sha256:"
                              + hashlib.sha256(b"bob-secret-00000000").hexdigest())
    assert [(t.name, t.role) for t in tokens] == [("alice", "admin"), ("bob", "viewer")]
    assert find_token(tokens, "bob-secret-00000000").name == "bob"
    assert find_token(tokens, "a-long-secret-000000").name == "alice"
    assert find_token(tokens, "nope") is None and find_token(tokens, "") is None
    assert "secret" not in repr(tokens)
    for bad, match in [("alice:root:x" * 1, "role"), ("alice:admin", "name:role:token"),
                       ("alice:admin:short", "shorter"), ("a b:admin:a-long-secret-000000",
                                                          "token name"),
                       ("a:admin:sha256:xyz", "64 hex"),
                       ("a:admin:a-long-secret-000000,a:viewer:another-secret-0000",
                        "duplicate")]:
        with pytest.raises(ValueError, match=match):
            parse_api_tokens(bad)
    with pytest.raises(ValueError, match="DLQ_API_TOKENS"):
        DLQConfig(api_tokens="x:god:a-long-secret-000000")
    assert role_allows("admin", "operator") and not role_allows("viewer", "operator")


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}  # not changed in place
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_edit_gives_a_diff_and_refuses_no_change_and_oversize() -> None:
    data = {"request_data": {"amount": 1, "currency": "eur"}, "snapshot_data": {"x": 1}}
    edited, diff = apply_edit(data, {"request_data": {"currency": "EUR", "amount": None,
                                                      "note": "n"}}, max_bytes=10_000)
    assert edited == {"request_data": {"currency": "EUR", "note": "n"}}
    assert diff == [{"path": "request_data.amount", "op": "remove", "old": 1},
                    {"path": "request_data.currency", "op": "replace", "old": "eur",
                     "new": "EUR"},
                    {"path": "request_data.note", "op": "add", "new": "n"}]
    with pytest.raises(ValueError, match="changes nothing"):
        apply_edit(data, {"snapshot_data": {"x": 1}}, max_bytes=10_000)
    with pytest.raises(ValueError, match="over the 100 byte limit"):
        apply_edit(data, {"snapshot_data": {"blob": "x" * 200}}, max_bytes=100)
    with pytest.raises(ValueError, match="cannot edit 'metadata'"):
        apply_edit(data, {"metadata": {"a": 1}}, max_bytes=10_000)
    long = data_diff({"a": "x"}, {"a": "y" * 2000}, "snapshot_data")[0]["new"]
    assert long["truncated"] and long["chars"] == 2002


def test_set_assignments_become_a_patch() -> None:
    assert parse_assignments(["request_data.amount=1299", "request_data.meta.ok=true",
                              "snapshot_data.note=plain text", "snapshot_data.gone=null"]) == {
        "request_data": {"amount": 1299, "meta": {"ok": True}},
        "snapshot_data": {"note": "plain text", "gone": None}}
    for bad in ("request_data", "metadata.a=1", "request_data.=1"):
        with pytest.raises(ValueError):
            parse_assignments([bad])


def test_bulk_id_forms() -> None:
    svc = AsyncDLQService(DLQConfig(database_url="sqlite://"))
    assert svc.bulk_workflow_id("abc") == "dlq-bulk-abc"
    assert svc.bulk_workflow_id(" dlq-bulk-abc ") == "dlq-bulk-abc"


async def test_entry_id_forms_without_sql() -> None:
    svc = AsyncDLQService(DLQConfig(database_url="sqlite://"))
    assert await svc.resolve_entry_id("dlq-1234") == "1234"
    assert await svc.resolve_entry_id("1234") == "1234"
    from dlq import DLQEntryNotFoundError

    for bad in ("", "dlq-bulk-ab12"):
        with pytest.raises(DLQEntryNotFoundError):
            await svc.resolve_entry_id(bad)


def test_home_makes_paths_absolute(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = DLQConfig(home="state")
    assert config.home == str(tmp_path / "state")
    assert config.database_url == f"sqlite:///{tmp_path}/state/dlq.db"
    assert config.outbox_path == str(tmp_path / "state" / "outbox.db")
    explicit = DLQConfig(home="state", database_url="sqlite:///x.db", outbox_path="/o.db")
    assert (explicit.database_url, explicit.outbox_path) == ("sqlite:///x.db", "/o.db")
