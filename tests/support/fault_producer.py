"""A producing process for the fault tests: ``python -m tests.support.fault_producer``.

It stores ``--count`` failures with ``mode="async"`` (configuration from the
``DLQ_*`` variables), writes their ids to ``--ids-file`` (fsynced), prints
``stored`` and then sleeps, so its relay runs until the test kills it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from dlq import AsyncDLQService, DLQConfig


async def produce(count: int, ids_file: Path, domain: str) -> None:
    """Store ``count`` entries asynchronously, record their ids, announce it, then wait."""
    service = AsyncDLQService(DLQConfig.from_settings())
    ids = []
    for i in range(count):
        result = await service.store_failure(domain, "FAULT_PRODUCER", entity_type="order",
                                             entity_id=str(i), error_message=f"failure {i}",
                                             snapshot_data={"n": i},
                                             recommended_action="manual_check", mode="async")
        if not result.success or not result.dlq_id:
            raise SystemExit(f"store {i} failed: {result}")
        ids.append(result.dlq_id)
    partial = ids_file.with_suffix(".partial")
    with partial.open("w") as out:
        out.write("\n".join(ids) + "\n")
        out.flush()
        os.fsync(out.fileno())
    partial.rename(ids_file)
    print(f"stored {len(ids)}", flush=True)
    await asyncio.sleep(3600)  # the relay keeps going until the test kills this process


def main() -> None:
    """Parse the arguments and run :func:`produce`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--ids-file", type=Path, required=True)
    parser.add_argument("--domain", default="f-producer")
    args = parser.parse_args()
    asyncio.run(produce(args.count, args.ids_file, args.domain))


if __name__ == "__main__":
    main()
