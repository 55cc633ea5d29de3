"""Benchmark: DLQ ``store_failure`` throughput against a bare Temporal workflow.

One run starts one Temporal dev server and one worker process (see
:mod:`bench._stack`), then measures, with the same client-side concurrency:

1. baseline: ``client.execute_workflow(BareWorkflow)``: start a workflow
   that runs one no-op activity and wait for its result;
2. DLQ, features on: ``AsyncDLQService.store_failure(..., mode="sync")``:
   update-with-start of a ``DLQEntryWorkflow`` that returns once the entry's
   SQL row is written, with what a production deployment runs
   (:mod:`bench._features`): the worker counts the ``dlq_*`` metrics and
   serves ``/metrics`` (scraped every second during the phase, as Prometheus
   would, faster), failure grouping, redaction (the data holds a token) and
   encryption (a throw-away key ring);
3. DLQ, features off: the same stores to a second DLQ worker in the same
   process with all of them off (``DLQ_METRICS_PORT=0``,
   ``DLQ_GROUPING_ENABLED=false``, ``DLQ_REDACT_ENABLED=false``, no
   ``DLQ_ENCRYPTION_KEYS``), on a read model of its own.

Phases 2 and 3 run interleaved in ``--rounds`` rounds (the machine is
shared; see :func:`feature_rounds`). ``--only metrics|grouping|security``
turns that feature alone on in phase 2, to see what each costs.

It prints the rates (successful operations per wall-clock second), p50/p95
latencies, the CPU each process used, ``ratio features on/off`` (goal >= 0.9)
and ``ratio store/bare`` (features on; goal >= 0.8). The exit code is 1 if
any operation failed, 2 if the stack did not start or nothing worked, else 0
(a missed goal is a figure, not an error).

Usage::

    python bench/store.py [--n 1000] [--concurrency 64] [--warmup 20] [--rounds 3]
                          [--only metrics|grouping|security] [--store-timeout 5]
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
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dlq import AsyncDLQService, DLQConfig
from dlq._connect import connect

if __package__ in (None, ""):
    # Run as `python bench/store.py`: `bench` is not installed, so import it
    # from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._bare import BareWorkflow
from bench._features import FEATURES, Side, feature_settings, side_config
from bench._features import GOAL as FEATURES_GOAL
from bench._stack import (
    Stack,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    running_stack,
    scrape_forever,
)
from bench._store_support import (
    PhaseResult,
    close_service,
    count_leaked_cancellations,
    loadavg,
    merge,
    settled_row_count,
)

GOAL = 0.8
# Cores other processes may use during a phase before its figures are flagged.
BUSY_MACHINE = 0.2
BARE_TASK_QUEUE = "bare-bench"

# Entry ids and workflow ids differ per error; strip them so equal errors group.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# One operation; returns None on success, else why it failed.
Op = Callable[[], Awaitable[str | None]]

# Rich assumes 80 columns when not on a terminal, which squeezes the table.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


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
                      side: Side, expected_rows: int) -> tuple[PhaseResult, int]:
    """DLQ: ``store_failure(mode="sync")`` through one service, as an application would.

    Args:
        side: The DLQ worker stored to; the service gets its settings too.
            Its ``/metrics``, if served, is scraped every second meanwhile.
        expected_rows: Rows its read model should hold afterwards.

    Returns:
        The phase result and the number of rows in its read model afterwards.
    """
    service = AsyncDLQService(side_config(DLQConfig(
        temporal_address=stack.address, task_queue=side.task_queue,
        database_url=side.database_url, store_timeout=args.store_timeout,
        temporal_envconfig=False,
        # A timed-out store falls back to the local outbox; keep it in the
        # throw-away folder, not in the shared default under the working directory.
        outbox_path=str(stack.tmpdir / f"outbox-{side.name}.db"),
    ), side.settings))
    orders = itertools.count(1)

    async def op() -> str | None:
        result = await service.store_failure(
            domain="payment", failure_type="PG_TIMEOUT", entity_type="order",
            entity_id=f"order-{next(orders)}", error_code="57014",
            error_message="canceling statement due to statement timeout",
            # The token is what redaction, when on, replaces.
            snapshot_data={"amount": 1250, "currency": "EUR", "attempt": 3,
                           "api_token": "tok_bench_0123456789"},
            recommended_action="manual_check", mode="sync",
        )
        return None if result.success else (result.error or "success=False without error")

    scraper = (asyncio.create_task(scrape_forever(side.metrics_port))
               if side.metrics_port else None)
    try:
        result = await run_phase(side_label(side, args.only), op, n=args.n,
                                 concurrency=args.concurrency, warmup=args.warmup, pids=pids)
    finally:
        if scraper is not None:
            scraper.cancel()
        await close_service(service)
    return result, await settled_row_count(side.database_url, expected_rows)


def side_label(side: Side, only: str | None) -> str:
    """The report's name of a side's phase."""
    return f"DLQ store, {only or 'features'} {side.name}"


def make_sides(only: str | None) -> tuple[Side, Side]:
    """Features on (all, or ``only``) and all off, each on its own task queue."""
    on = feature_settings(FEATURES if only is None else (only,), metrics_port=free_port())
    return (Side("on", "dlq-bench-on", on), Side("off", "dlq-bench-off", feature_settings(())))


async def feature_rounds(stack: Stack, args: argparse.Namespace,
                         pids: dict[str, int]) -> tuple[PhaseResult, PhaseResult, int]:
    """Stores with the features on and off, interleaved in ``args.rounds`` rounds.

    The machine is shared: other load comes and goes within seconds, so one
    phase each would compare two different machines. Each round runs both
    (alternating which goes first) on n/rounds stores; the first round warms
    both up. Returns both merged phases and the rows in both read models.
    """
    merged: dict[str, list[PhaseResult]] = {side.name: [] for side in stack.sides}
    stored = dict.fromkeys(merged, 0)
    rows = dict.fromkeys(merged, 0)
    for i in range(args.rounds):
        n = args.n // args.rounds + (1 if i < args.n % args.rounds else 0)
        part = argparse.Namespace(**{**vars(args), "n": n, "warmup": args.warmup if i == 0 else 0})
        for side in stack.sides if i % 2 else reversed(stack.sides):
            stored[side.name] += part.warmup + n
            result, rows[side.name] = await store_phase(
                stack, part, pids, side=side, expected_rows=stored[side.name])
            merged[side.name].append(result)
    return merge(merged["on"]), merge(merged["off"]), sum(rows.values())


def _fmt_cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(bare: PhaseResult, store: PhaseResult, args: argparse.Namespace,
           off: PhaseResult) -> None:
    """Print the table, the errors if any, and the ratio line last."""
    table = Table(title=f"store benchmark: n={args.n}, concurrency={args.concurrency}, "
                        f"warm-up={args.warmup} (not counted)")
    table.add_column("phase")
    for name in ("ok", "failed", "wall s", "rate /s", "p50 ms", "p95 ms", "max ms"):
        table.add_column(name, justify="right")
    for proc in bare.cores:
        table.add_column(f"CPU {proc}", justify="right")
    phases = (bare, store, off)
    for phase in phases:
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
    for phase in phases:
        other = phase.cores.get("other")
        if other is not None and other > BUSY_MACHINE:
            console.print(f"[yellow]{phase.name}: other processes used {other:.2f} cores "
                          f"meanwhile; its figures are disturbed, run again on a quiet "
                          f"machine[/]")
        grouped = Counter(_UUID.sub("<id>", error) for error in phase.errors)
        for error, count in grouped.most_common(5):
            console.print(f"[red]{phase.name}: {count} x {error}[/]")
    # CPU per store is what the features add; it is steadier than rates when
    # other processes take cores from the phases unevenly.
    for proc in ("worker", "client"):
        per_store = {p.name: (p.cores.get(proc) or 0.0) * p.elapsed / p.ok * 1000
                     for p in (store, off) if p.ok}
        console.print(f"{proc} CPU per store: " + ", ".join(
            f"{name} {ms:.1f} ms" for name, ms in per_store.items()))
    on_off = store.rate / off.rate if off.rate else 0.0
    # Plain prints: the last lines are meant to be grepped.
    print(f"rates: bare {bare.rate:.1f}/s, {store.name} {store.rate:.1f}/s, "
          f"{off.name} {off.rate:.1f}/s")
    print(f"ratio {args.only or 'features'} on/off = {on_off:.2f} (goal >= {FEATURES_GOAL})")
    ratio = store.rate / bare.rate if bare.rate else 0.0
    print(f"ratio store/bare = {ratio:.2f} (goal >= {GOAL}; {store.name})")


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
    async with running_stack(bare_task_queue=BARE_TASK_QUEUE,
                             sides=make_sides(args.only)) as stack:
        console.print(f"stack ready in {time.perf_counter() - started:.1f}s: Temporal "
                      f"{stack.address}, worker pid {stack.worker_pid}, read models in "
                      f"{stack.tmpdir}; load average {loadavg()}")
        for side in stack.sides:
            names = ", ".join(f"{k}={'<key ring>' if 'KEYS' in k else v}"
                              for k, v in side.settings.items())
            console.print(f"  side {side.name}: {names}")
        pids = {"server": stack.server_pid, "worker": stack.worker_pid, "client": os.getpid()}
        bare = await bare_phase(stack, args, pids)
        store, off, rows = await feature_rounds(stack, args, pids)
    gc.collect()  # let abandoned SDK futures report now, not after the summary
    console.print(f"load average at the end {loadavg()}")
    failed = bool(bare.errors or store.errors or off.errors)
    succeeded = store.warmup_ok + store.ok + off.warmup_ok + off.ok
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
    report(bare, store, args, off)
    return 1 if failed else 0


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
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds interleaving the features-on and features-off stores")
    parser.add_argument("--only", choices=FEATURES, default=None,
                        help="turn on this feature alone (vs all off) instead of all of them")
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
