"""One definition of a failure's fields: every model, signature and column list derives from it."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import dlq
from dlq import AsyncDLQService, DLQConfig, DLQService, FailureFields
from dlq._db import DLQEntry
from dlq._fields import FAILURE_FIELDS
from dlq._messages import EntryInput
from dlq._models import EntryState, FailedOperationData
from dlq._sql.writes import DATA_COLUMNS

# Every field of a failure, with a value that differs from its default.
EVERY_FIELD: dict[str, Any] = {
    "domain": "payment", "failure_type": "PG_TIMEOUT", "entity_type": "order",
    "entity_id": "o-1", "user_id": 7, "error_code": "504", "error_message": "timed out",
    "snapshot_data": {"a": 1}, "request_data": {"b": 2}, "response_data": {"c": 3},
    "metadata": {"d": 4}, "next_action_hint": "look", "recommended_action": "replay",
    "dedup_key": "k-1",
}


def test_the_fixture_covers_every_failure_field() -> None:
    assert set(EVERY_FIELD) == set(FAILURE_FIELDS)


def _keywords(function: Any) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.mark.parametrize("entry_point", [
    dlq.store_to_dlq, DLQService.store_failure, AsyncDLQService.store_failure,
    dlq.new_entry_input,
], ids=["store_to_dlq", "DLQService.store_failure", "AsyncDLQService.store_failure",
        "new_entry_input"])
def test_every_store_entry_point_shows_the_same_failure_keywords(entry_point: Any) -> None:
    names = _keywords(entry_point)
    assert names[:len(FAILURE_FIELDS) - 1] == [f for f in FAILURE_FIELDS if f != "dedup_key"]
    assert "dedup_key" in names and "request" in names


def test_the_blocking_and_async_stores_take_every_keyword() -> None:
    config = DLQConfig(enabled=False)  # answers without a server once the arguments bind
    with DLQService(config) as svc:
        assert svc.store_failure(**EVERY_FIELD, request=None, mode="sync").error == "DLQ disabled"

    async def store() -> dlq.DLQEntryResult:
        return await AsyncDLQService(config).store_failure(**EVERY_FIELD, mode="sync")

    assert asyncio.run(store()).error == "DLQ disabled"


def test_store_to_dlq_takes_every_keyword(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_ENABLED", "false")
    dlq.reset_dlq_service()
    try:
        assert dlq.store_to_dlq(**EVERY_FIELD, mode="sync").error == "DLQ disabled"
    finally:
        dlq.reset_dlq_service()


def test_new_entry_input_keeps_every_field() -> None:
    entry = dlq.new_entry_input(**EVERY_FIELD, config=DLQConfig())
    assert {f: getattr(entry, f) for f in FAILURE_FIELDS} == EVERY_FIELD


def test_an_unknown_keyword_is_a_type_error_everywhere() -> None:
    with pytest.raises(TypeError, match="colour"):
        dlq.new_entry_input("payment", "X", colour="red")
    with DLQService(DLQConfig(enabled=False)) as svc, pytest.raises(TypeError, match="colour"):
        svc.store_failure("payment", "X", colour="red")
    with pytest.raises(TypeError, match="mode"):
        dlq.new_entry_input("payment", "X", mode="sync")


@pytest.mark.parametrize("model", [FailedOperationData, EntryState, EntryInput])
def test_entry_models_extend_the_failure_fields(model: type) -> None:
    assert issubclass(model, FailureFields)
    assert set(FAILURE_FIELDS) <= set(model.model_fields)


def test_the_entry_table_has_a_column_for_every_failure_field() -> None:
    columns = set(DLQEntry.__table__.c.keys())
    assert set(FAILURE_FIELDS) <= columns
    assert set(DATA_COLUMNS) <= columns
