"""Benchmark: DLQ ``store_failure`` throughput against a bare Temporal workflow.

One run starts one Temporal dev server and one worker process (see
:mod:`bench._stack`), then measures, with the same client-side concurrency:

1. baseline: ``client.execute_workflow(BareWorkflow)``: start a workflow
   that runs one no-op activity and wait for its result;
2. DLQ: ``AsyncDLQService.store_failure(..., mode="sync")``: update-with-start
   of a ``DLQEntryWorkflow`` that returns once the entry's SQL row is written,
   first on a worker with failure grouping off, then with it on (the default:
   every entry counted in one hot group, the worst case for its triggers).

It prints both rates (successful operations per wall-clock second), p50/p95
latencies, the CPU each process used, ``ratio grouping on/off`` and
``ratio store/bare``. The exit code
is 1 if any operation failed, 2 if the stack did not start or nothing
worked, else 0 (a missed goal is a figure, not an error).

Usage::

    python bench/store.py [--n 1000] [--concurrency 64] [--warmup 20] [--rounds 2]
                          [--store-timeout 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import os
import re
import signal
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from dlq import AsyncDLQService, DLQConfig
from dlq._connect import connect
from dlq._db import create_db_engine

if __package__ in (None, ""):
    # Run as `python bench/store.py`: `bench` is not installed, so import it
    # from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._bare import BareWorkflow
from bench._grouping import grouping_rounds
from bench._stack import (
    Stack,
    cpu_seconds,
    machine_busy_seconds,
    running_stack,
)

GOAL = 0.8
# Cores other processes may use during a phase before its figures are flagged.
BUSY_MACHINE = 0.2
# Seconds AsyncDLQService.close() may take before the benchmark cuts it short.
CLOSE_TIMEOUT = 10.0
DLQ_TASK_QUEUE = "dlq-bench"
BARE_TASK_QUEUE = "bare-bench"

# Entry ids and workflow ids differ per error; strip them so equal errors group.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# One operation; returns None on success, else why it failed.
Op = Callable[[], Awaitable[str | None]]

# Rich assumes 80 columns when not on a terminal, which squeezes the table.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


@dataclass
class PhaseResult:
    """The measured part of one phase (warm-up excluded)."""

    name: str
    ok: int
    elapsed: float
    latencies: list[float]
    errors: list[str] = field(default_factory=list)
    cores: dict[str, float | None] = field(default_factory=dict)
    warmup_ok: int = 0

    @property
    def rate(self) -> float:
        """Successful operations per second of wall time."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, pct: int) -> float:
        """Latency percentile of the successful operations, in milliseconds."""
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0] * 1000
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[pct - 1] * 1000


async def run_ops(op: Op, count: int, concurrency: int) -> tuple[list[float], list[str]]:
    """Run ``op`` ``count`` times, at most ``concurrency`` at once.

    Returns:
        Latencies (seconds) of the successful runs, and the errors of the others.
    """
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def one() -> None:
        async with sem:
            start = time.perf_counter()
            try:
                error = await op()
            except Exception as err:  # noqa: BLE001 - counted, not fatal
                error = f"{type(err).__name__}: {err}"
            if error is None:
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(error)

    await asyncio.gather(*(one() for _ in range(count)))
    return latencies, errors


async def run_phase(name: str, op: Op, *, n: int, concurrency: int, warmup: int,
                    pids: dict[str, int]) -> PhaseResult:
    """Warm up, then measure ``n`` operations and the CPU each process used meanwhile."""
    console.print(f"[bold]{name}[/]: warm-up {warmup}, then {n} operations, "
                  f"{concurrency} concurrent")
    warmup_ok = 0
    if warmup:
        warm, errors = await run_ops(op, warmup, concurrency)
        warmup_ok = len(warm)
        if len(errors) == warmup:
            # Nothing at all succeeding means a broken stack, not a slow one.
            raise RuntimeError(f"{name}: all {warmup} warm-up operations failed, "
                               f"first: {errors[0]}")
        if errors:
            console.print(f"[yellow]{name}: {len(errors)}/{warmup} warm-up operations "
                          f"failed, first: {errors[0]}[/]")
    before = _cpu_snapshot(pids)
    start = time.perf_counter()
    latencies, errors = await run_ops(op, n, concurrency)
    elapsed = time.perf_counter() - start
    after = _cpu_snapshot(pids)
    cores = {proc: None if before[proc] is None or after[proc] is None
             else (after[proc] - before[proc]) / elapsed for proc in before}
    return PhaseResult(name=name, ok=len(latencies), elapsed=elapsed, latencies=latencies,
                       errors=errors, cores=cores, warmup_ok=warmup_ok)


def _cpu_snapshot(pids: dict[str, int]) -> dict[str, float | None]:
    """CPU seconds of each benchmark process, and of everything else on the machine."""
    snapshot = {proc: cpu_seconds(pid) for proc, pid in pids.items()}
    busy = machine_busy_seconds()
    ours = [value for value in snapshot.values() if value is not None]
    snapshot["other"] = None if busy is None or len(ours) < len(pids) else busy - sum(ours)
    return snapshot


async def bare_phase(stack: Stack, args: argparse.Namespace,
                     pids: dict[str, int]) -> PhaseResult:
    """Baseline: start a ``BareWorkflow`` and wait for its result."""
    client = await connect(stack.address)

    async def op() -> str | None:
        await client.execute_workflow(BareWorkflow.run, id=f"bare-{uuid.uuid4().hex}",
                                      task_queue=stack.bare_task_queue)
        return None

    return await run_phase("bare workflow", op, n=args.n, concurrency=args.concurrency,
                           warmup=args.warmup, pids=pids)


async def store_phase(stack: Stack, args: argparse.Namespace, pids: dict[str, int], *,
                      grouping: bool = True) -> tuple[PhaseResult, int]:
    """DLQ: ``store_failure(mode="sync")`` through one service, as an application would.

    ``grouping=False`` stores through the worker that has failure grouping off.

    Returns:
        The phase result and the number of rows in the SQL read model afterwards.
    """
    service = AsyncDLQService(DLQConfig(
        temporal_address=stack.address,
        task_queue=stack.dlq_task_queue if grouping else stack.ungrouped_task_queue,
        database_url=stack.database_url, store_timeout=args.store_timeout,
        # A timed-out store falls back to the local outbox; keep it in the
        # throw-away folder, not in the shared default under the working directory.
        outbox_path=str(stack.tmpdir / "outbox.db"),
    ))
    orders = itertools.count(1)

    async def op() -> str | None:
        order = next(orders)
        result = await service.store_failure(
            domain="payment", failure_type="PG_TIMEOUT", entity_type="order",
            entity_id=f"order-{order}", error_code="57014",
            error_message=f"order {order}: canceling statement due to statement timeout",
            snapshot_data={"amount": 1250, "currency": "EUR", "attempt": 3},
            recommended_action="manual_check", mode="sync",
        )
        return None if result.success else (result.error or "success=False without error")

    try:
        name = "DLQ store (sync)" if grouping else "DLQ store, grouping off"
        result = await run_phase(name, op, n=args.n,
                                 concurrency=args.concurrency, warmup=args.warmup, pids=pids)
    finally:
        await close_service(service)
    # Both configurations write the same database (see bench._grouping).
    total = getattr(args, "expected", args.warmup + args.n)
    return result, await settled_row_count(stack.database_url, total)


async def close_service(service: AsyncDLQService) -> None:
    """``service.close()``, bounded by ``CLOSE_TIMEOUT``.

    After stores fell back to the outbox, ``close()`` was seen waiting
    forever for its relay task, which had not ended on ``cancel()``. Our own
    cancellation from ``wait_for`` gets it out; say so when that was needed.
    """
    start = time.perf_counter()
    try:
        await asyncio.wait_for(service.close(), timeout=CLOSE_TIMEOUT)
    except TimeoutError:
        pass
    if time.perf_counter() - start >= CLOSE_TIMEOUT:
        console.print(f"[yellow]AsyncDLQService.close() did not return within "
                      f"{CLOSE_TIMEOUT:g}s (its outbox relay did not stop); cut short[/]")


async def settled_row_count(database_url: str, attempted: int, *,
                            timeout: float = 15.0) -> int:
    """Rows in ``dlq_entries`` once all ``attempted`` are there or the count stops growing.

    A store that timed out may still have started its workflow, whose row
    then lands later; waiting a little shows whether that happened.
    """
    engine = create_db_engine(database_url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous = -1
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT COUNT(*) FROM dlq_entries")).scalar_one()
            if rows >= attempted or rows == previous or loop.time() > deadline:
                return rows
            previous = rows
            await asyncio.sleep(1.0)
    finally:
        engine.dispose()


def _fmt_cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(bare: PhaseResult, ungrouped: PhaseResult, store: PhaseResult,
           args: argparse.Namespace) -> None:
    """Print the table, the errors if any, and the ratio line last."""
    table = Table(title=f"store benchmark: n={args.n}, concurrency={args.concurrency}, "
                        f"warm-up={args.warmup} (not counted)")
    table.add_column("phase")
    for name in ("ok", "failed", "wall s", "rate /s", "p50 ms", "p95 ms", "max ms"):
        table.add_column(name, justify="right")
    for proc in bare.cores:
        table.add_column(f"CPU {proc}", justify="right")
    for phase in (bare, ungrouped, store):
        table.add_row(
            phase.name, str(phase.ok), str(len(phase.errors)), f"{phase.elapsed:.2f}",
            f"{phase.rate:.1f}", f"{phase.percentile_ms(50):.0f}",
            f"{phase.percentile_ms(95):.0f}",
            f"{max(phase.latencies) * 1000:.0f}" if phase.latencies else "-",
            *(_fmt_cores(phase.cores[proc]) for proc in bare.cores),
        )
    console.print(table)
    console.print("Rates and latencies count successful operations only. CPU columns: cores "
                  f"used on average during the measured part, out of {os.cpu_count()}; "
                  "'other' is every other process on the machine.")
    for phase in (bare, ungrouped, store):
        other = phase.cores.get("other")
        if other is not None and other > BUSY_MACHINE:
            console.print(f"[yellow]{phase.name}: other processes used {other:.2f} cores "
                          f"meanwhile; its figures are disturbed, run again on a quiet "
                          f"machine[/]")
        grouped = Counter(_UUID.sub("<id>", error) for error in phase.errors)
        for error, count in grouped.most_common(5):
            console.print(f"[red]{phase.name}: {count} x {error}[/]")
    grouping = store.rate / ungrouped.rate if ungrouped.rate else 0.0
    print(f"ratio grouping on/off = {grouping:.2f} (goal >= 0.9)")
    ratio = store.rate / bare.rate if bare.rate else 0.0
    # Plain print: the last line is meant to be grepped.
    print(f"ratio store/bare = {ratio:.2f} (goal >= {GOAL})")


async def bench(args: argparse.Namespace) -> int:
    """Run both phases on one stack; the exit code."""
    # SIGTERM gets the same clean shutdown as Ctrl-C (asyncio.run handles SIGINT).
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    leaked = count_leaked_cancellations(loop)
    # The service logs a warning per failed store; the report counts them instead.
    logging.getLogger("dlq").setLevel(logging.ERROR)

    started = time.perf_counter()
    async with running_stack(dlq_task_queue=DLQ_TASK_QUEUE,
                             bare_task_queue=BARE_TASK_QUEUE) as stack:
        console.print(f"stack ready in {time.perf_counter() - started:.1f}s: Temporal "
                      f"{stack.address}, worker pid {stack.worker_pid}, {stack.database_url}")
        pids = {"server": stack.server_pid, "worker": stack.worker_pid, "client": os.getpid()}
        bare = await bare_phase(stack, args, pids)
        ungrouped, store, rows = await grouping_rounds(store_phase, stack, args, pids,
                                                       args.rounds)
    gc.collect()  # let abandoned SDK futures report now, not after the summary
    failed = bool(bare.errors or ungrouped.errors or store.errors)
    succeeded = store.warmup_ok + store.ok + ungrouped.warmup_ok + ungrouped.ok
    if rows < succeeded:
        # A store that said success must have its row.
        console.print(f"[red]SQL read model has {rows} rows but {succeeded} stores "
                      f"succeeded (warm-up included)[/]")
        failed = True
    else:
        console.print(f"SQL read model: {rows} rows; {succeeded} stores succeeded "
                      f"(warm-up included)")
    if rows > succeeded:
        console.print(f"[yellow]{rows - succeeded} stores returned success=False but their "
                      f"entry was stored all the same (its row landed after the store "
                      f"timeout)[/]")
    if leaked[0]:
        console.print(f"[yellow]{leaked[0]} 'Future exception was never retrieved' "
                      f"(CancelledError) from timed-out update-with-start calls, not printed[/]")
    report(bare, ungrouped, store, args)
    return 1 if failed else 0


def count_leaked_cancellations(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Count, instead of printing, futures abandoned with a CancelledError.

    When ``store_timeout`` cancels ``execute_update_with_start_workflow``, the
    SDK leaves an inner future holding the CancelledError, and asyncio prints
    a full traceback per store when it is garbage-collected. Everything else
    goes to the default handler.

    Returns:
        A one-item list holding the count so far.
    """
    count = [0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if (isinstance(context.get("exception"), asyncio.CancelledError)
                and "never retrieved" in str(context.get("message", ""))):
            count[0] += 1
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="DLQ store_failure throughput vs a bare Temporal workflow, on one dev server."
    )
    parser.add_argument("--n", type=int, default=1000, help="measured operations per phase")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="operations in flight at once")
    parser.add_argument("--warmup", type=int, default=20,
                        help="operations per phase run first and not counted")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds of the grouping off/on stores (n split)")
    parser.add_argument("--store-timeout", type=float, default=DLQConfig.store_timeout,
                        help="DLQConfig.store_timeout in seconds (default: the DLQ's own)")
    args = parser.parse_args(argv)
    for name in ("n", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.store_timeout <= 0:
        parser.error("--store-timeout must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; the stack is always stopped, even on Ctrl-C."""
    args = parse_args(argv)
    try:
        return asyncio.run(bench(args))
    except RuntimeError as err:
        # The stack did not start, or nothing worked: the message says why.
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: worker and server stopped, temporary files removed",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
