"""Both sides of ``bench/replay.py``: a replay handler that succeeds at once, and the baseline.

Imported by two worker processes:

* the real DLQ worker, ``python worker.py --handlers bench._replay_handlers``,
  where importing it registers :func:`succeed_at_once` for the benchmark's
  domains;
* the bare worker (``python -m bench._replay_support``), which runs
  :class:`BareUpdateWorkflow`: a workflow that waits for one ``replay``
  update, whose handler runs one no-op activity, then completes; the
  smallest Temporal twin of an entry workflow receiving one ``retry``.

The workflow sandbox imports this module too, so it imports only the
standard library, ``temporalio`` and (passed through) the handler registry.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from bench._bare import bare_noop

with workflow.unsafe.imports_passed_through():
    from dlq._handlers import replay_handler

__all__ = ["BENCH_DOMAIN", "WARMUP_DOMAIN", "BareUpdateWorkflow", "bare_noop", "succeed_at_once"]

BENCH_DOMAIN = "bench_replay"
WARMUP_DOMAIN = "bench_replay_warmup"


@replay_handler(WARMUP_DOMAIN)
@replay_handler(BENCH_DOMAIN)
async def succeed_at_once(entry: object) -> None:
    """Replay handler of the benchmark domains: succeeds without doing anything."""


@workflow.defn(name="BareUpdateWorkflow")
class BareUpdateWorkflow:
    """Waits for one ``replay`` update that runs one no-op activity, then completes."""

    def __init__(self) -> None:
        self._replayed = False

    @workflow.run
    async def run(self) -> None:
        """Complete once the update ran (like an entry that a replay resolved)."""
        await workflow.wait_condition(
            lambda: self._replayed and workflow.all_handlers_finished())

    @workflow.update(name="replay")
    async def replay(self) -> bool:
        """Run the no-op activity and answer True."""
        await workflow.execute_activity(bare_noop, start_to_close_timeout=timedelta(seconds=30))
        self._replayed = True
        return True
