from dlq import AsyncDLQService


async def test_store_and_retry(service: AsyncDLQService) -> None:
    res = await service.store_failure("t-ok", "PG_TIMEOUT", entity_type="order", entity_id="1",
                                      error_message="boom", recommended_action="manual_check")
    assert res.success, res
    entry = await service.get_entry(res.dlq_id)
    assert entry["status"] == "pending"
    out = await service.retry_entry(res.dlq_id)
    assert out["success"] is True, out
    entry = await service.get_entry(res.dlq_id)
    assert entry["status"] == "resolved", entry
    print(entry)
