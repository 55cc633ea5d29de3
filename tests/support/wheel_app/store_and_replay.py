"""Store an entry, retry it and replay its history, all from the installed wheel.

Prints one JSON object with what it found; configuration from ``DLQ_*``.
"""

import asyncio
import json
import sys

import activities
import dlq
import workflows
from dlq._connect import connect, replayer
from dlq.workflows.entry import DLQEntryWorkflow


async def replay_history(config: dlq.DLQConfig, dlq_id: str) -> int:
    client = await connect(config)
    history = await client.get_workflow_handle(dlq.workflow_id_for(dlq_id)).fetch_history()
    await replayer(config, [DLQEntryWorkflow]).replay_workflow(history)
    return len(history.events)


def main() -> None:
    with dlq.DLQService() as service:
        stored = service.store_failure("shop", "GATEWAY_TIMEOUT", entity_type="order",
                                       entity_id="o-1", error_message="gateway timed out")
        retried = service.retry_entry(stored.dlq_id)
        events = asyncio.run(replay_history(service.config, stored.dlq_id))
    print(json.dumps({
        "dlq_file": dlq.__file__,
        "entry_module_file": sys.modules[DLQEntryWorkflow.__module__].__file__,
        "shop_workflows": workflows.SHOP, "shop_activities": activities.SHOP,
        "stored": stored.success, "dlq_id": stored.dlq_id, "retry": retried,
        "replayed_events": events,
    }))


if __name__ == "__main__":
    main()
